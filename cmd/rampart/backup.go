package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "base backup with pg_basebackup, from a standby by default, checked with pg_verifybackup",
		Description: "Without --host, on a database node, it asks Pacemaker for a streaming standby (an\n" +
			"asynchronous one first) and backs up from it. A primary is refused unless --allow-primary:\n" +
			"a backup reads every data file and forces a checkpoint, load better kept off the server\n" +
			"that takes the writes. The password of --user comes from ~/.pgpass (or PGPASSFILE).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Required: true, Usage: "new or empty `FOLDER` for the backup"},
			&cli.StringFlag{Name: "host", Usage: "`SERVER` to back up from (default: a standby Pacemaker knows)"},
			&cli.IntFlag{Name: "port", Usage: "its port (default: the resource's pgport)"},
			&cli.StringFlag{Name: "user", Usage: "replication `ROLE` (default: the resource's repuser)"},
			&cli.BoolFlag{Name: "allow-primary", Usage: "back up from a primary too"},
			&cli.StringFlag{Name: "bindir", Usage: "`FOLDER` of pg_basebackup and pg_verifybackup (default: the resource's bindir)"},
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.App.ErrWriter, false)
			req := ops.BackupRequest{
				Host: c.String("host"), Port: c.Int("port"), User: c.String("user"), Dir: c.String("dir"), BinDir: c.String("bindir"),
				AllowPrimary: c.Bool("allow-primary"), Progress: c.App.ErrWriter,
			}
			if req.Host == "" || req.Port == 0 || req.User == "" || req.BinDir == "" {
				v := ops.Assemble(ops.Gather(c.Context, pacemaker.Local, http.DefaultClient, nil, c.String("resource"), time.Now))
				if req.Host == "" {
					if v.Pacemaker == nil {
						return cli.Exit("backup: no --host, and no Pacemaker here to ask for a standby", 1)
					}
					node, err := ops.ChooseBackupSource(v)
					if err != nil {
						return cli.Exit("backup refused: "+err.Error(), 1)
					}
					req.Host = v.Host(node)
					log.Info("backup: chose a standby", "node", node, "host", req.Host)
				}
				var err error
				if req, err = ops.BackupDefaults(req, v); err != nil {
					return cli.Exit("backup refused: "+err.Error(), 1)
				}
			}
			res, err := ops.Backup(c.Context, req, log)
			if err != nil {
				return refusedExit("backup", err)
			}
			from := "the primary"
			if res.Standby {
				from = "a standby"
			}
			fmt.Fprintf(c.App.Writer, "backup of %s (%s) in %s: %s in %s, verified with pg_verifybackup\n",
				req.Host, from, c.String("dir"), ops.Bytes(res.Bytes), res.Took.Round(100*time.Millisecond))
			return nil
		},
	}
}

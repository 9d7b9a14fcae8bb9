package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/pooler"
)

func poolerCommand() *cli.Command {
	configFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/rampart/pooler.ini", Usage: "configuration `FILE`"}
	return &cli.Command{
		Name:  "pooler",
		Usage: "PostgreSQL router and pool: writes to the primary, reads to the standbys",
		Description: "The configuration file is pgbouncer.ini-like: [pooler] (listen_addr, listen_port, auth_file,\n" +
			"health_check_user, pool_mode, default_pool_size, max_lag_bytes, max_lag_time, read_your_writes, …)\n" +
			"and [nodes] (NAME = host=… port=… weight=…). The auth file has `\"user\" \"password\"` lines.\n" +
			"A pair adds [watchdog] (self, key_file, heartbeat, vip, vip_interface) and [members]\n" +
			"(ID = ADDRESS:PORT [priority=N] [witness]); the leader holds the vip (see rampart witness).",
		Subcommands: []*cli.Command{
			{
				Name:  "run",
				Usage: "serve clients until SIGTERM or SIGINT (systemd: Type=notify)",
				Flags: []cli.Flag{configFlag, &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more"}},
				Action: func(c *cli.Context) error {
					return pooler.Run(c.Context, c.String("config"), newLogger(c.App.ErrWriter, c.Bool("verbose")))
				},
			},
			{
				Name:  "check",
				Usage: "validate the configuration and its auth file, change nothing",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, pc, err := pooler.Load(c.String("config"), newLogger(c.App.ErrWriter, false))
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					fmt.Fprintf(c.App.Writer, "%s: ok: %d nodes, %d users, pool_mode %s, listening on %s:%d\n",
						c.String("config"), len(pc.Nodes), len(pc.Users), cfg.PoolMode, cfg.ListenAddr, cfg.ListenPort)
					return nil
				},
			},
		},
	}
}

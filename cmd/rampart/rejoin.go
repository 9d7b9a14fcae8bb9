package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

func rejoinCommand() *cli.Command {
	return &cli.Command{
		Name:  "rejoin",
		Usage: "make this host's failed old primary a streaming standby of the current primary",
		Description: "Run it as root on the old primary's host when the agent refused to start it (\"it may\n" +
			"have diverged\"). It first waits until Pacemaker has nothing left to do (crm_resource\n" +
			"--wait: a node just back is probed, and a crashed primary found there is stopped first).\n" +
			"With the resource's rewind_user it runs pg_rewind (after a checkpoint on the primary),\n" +
			"else, or when that fails, a fresh pg_basebackup (the old data directory is kept beside\n" +
			"it). Then Pacemaker starts it as a standby (crm_resource --cleanup) and rejoin waits\n" +
			"until it streams. Refuses when this host is the primary or no primary runs.\n" +
			"The agent's auto_rejoin=true does the same by itself at start.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "for the rewind or copy, and again for the start"},
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.App.ErrWriter, false)
			gather := func(ctx context.Context) ops.Observed {
				return ops.Gather(ctx, pacemaker.Local, http.DefaultClient, nil, c.String("resource"), time.Now)
			}
			runAgent := func(ctx context.Context, environ []string) int {
				// The agent runs as the resource's system user, with an
				// environment like Pacemaker's: none of the caller's PG*
				// variables (its ~/.pgpass is the system user's).
				return pgsql.Main(ctx, []string{"pgsql", pgsql.RejoinAction}, append([]string{"PATH=" + os.Getenv("PATH")}, environ...),
					c.App.Writer, c.App.ErrWriter, log.With("agent", "pgsql"))
			}
			took, err := ops.Rejoin(c.Context, pacemaker.Local, gather, runAgent, c.Duration("timeout"), log)
			if err != nil {
				return refusedExit("rejoin", err)
			}
			fmt.Fprintf(c.App.Writer, "rejoined in %s: streaming from the primary\n", took.Round(100*time.Millisecond))
			return nil
		},
	}
}

package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

func failoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "failover",
		Usage: "promote a standby that may miss acknowledged commits, when none that has them can come back",
		Description: "While no primary runs, the agent promotes only a node that holds every acknowledged\n" +
			"commit (the primary and synchronous standbys it recorded; rampart status names them).\n" +
			"When none of them can come back, this makes --to the one the agent's election\n" +
			"promotes, accepting the loss of the commits only they had. It refuses, changing\n" +
			"nothing, while a primary runs (use switchover), while a recorded node runs, without\n" +
			"quorum, or without --accept-data-loss; then it waits until Pacemaker has promoted it.\n" +
			"Run it on a database node.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Required: true, Usage: "the standby `NODE` to promote"},
			&cli.BoolFlag{Name: "accept-data-loss", Usage: "promote it although it may miss acknowledged commits"},
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long to wait for the promotion"},
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.App.ErrWriter, false)
			look := clusterLook(c)
			took, err := ops.Failover(c.Context, pacemaker.Local, look, c.String("to"), c.Bool("accept-data-loss"), c.Duration("timeout"), log)
			if err != nil {
				return refusedExit("failover", err)
			}
			fmt.Fprintf(c.App.Writer, "%s promoted in %s\n", c.String("to"), took.Round(10*time.Millisecond))
			return nil
		},
	}
}

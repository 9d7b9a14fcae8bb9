package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

func switchoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "switchover",
		Usage: "planned primary change to a synchronous standby, through Pacemaker, losing no commit",
		Description: "Checks that the cluster is healthy and that --to is a synchronous standby on the\n" +
			"primary's timeline (so it has every acknowledged commit), then moves the promoted role\n" +
			"there with a Pacemaker move constraint, waits until the old primary streams from the new\n" +
			"one, and clears the constraint. Refuses, changing nothing, when any check fails.\n" +
			"Run it on a database node.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Required: true, Usage: "the `NODE` to promote"},
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up (and clear the constraint) after this long"},
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.App.ErrWriter, false)
			look := clusterLook(c)
			took, err := ops.Switchover(c.Context, pacemaker.Local, look, c.String("to"), c.Duration("timeout"), log)
			if err != nil {
				return refusedExit("switchover", err)
			}
			fmt.Fprintf(c.App.Writer, "switchover to %s done in %s\n", c.String("to"), took.Round(10*time.Millisecond))
			return nil
		},
	}
}

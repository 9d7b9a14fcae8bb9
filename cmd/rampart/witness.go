package main

import (
	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/pooler"
)

func witnessCommand() *cli.Command {
	return &cli.Command{
		Name:  "witness",
		Usage: "the pooler pair's third vote: lets two poolers tell a dead peer from a cut link",
		Description: "The configuration file has [watchdog] (self, key_file, heartbeat) and [members]\n" +
			"(ID = ADDRESS:PORT [priority=N] [witness]), the same members as the poolers' files;\n" +
			"this member's line says witness.",
		Subcommands: []*cli.Command{{
			Name:  "run",
			Usage: "vote until SIGTERM or SIGINT (systemd: Type=notify, WatchdogSec)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/rampart/witness.ini", Usage: "configuration `FILE`"},
				&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more"},
			},
			Action: func(c *cli.Context) error {
				return pooler.RunWitness(c.Context, c.String("config"), newLogger(c.App.ErrWriter, c.Bool("verbose")))
			},
		}},
	}
}

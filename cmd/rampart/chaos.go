package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/test/chaos"
	"github.com/rampart-ha/rampart/test/lab"
)

func labChaosCommand() *cli.Command {
	return &cli.Command{
		Name:  "chaos",
		Usage: "a seeded campaign of faults under a recorded workload, its history checked (issue 19)",
		Description: "Builds the seed's lab (four database hosts under Pacemaker with ocf:rampart:pgsql,\n" +
			"auto_rejoin on, fencing through BMCs, the database VIP; the pooler pair with its witness)\n" +
			"and runs clients on the client host through the database VIP and the pooler pair's address:\n" +
			"appends to and reads of a few lists, reads, writes and compare-and-sets of a few registers,\n" +
			"each recorded with its outcome (ok, failed, unknown) and the server that answered.\n" +
			"Meanwhile it injects --faults faults drawn from --seed over --kinds, one at a time (two when\n" +
			"overlap is among the kinds), each on a role resolved when it runs, held a few seconds,\n" +
			"healed, then waits for convergence (`rampart status` exit 0 on a database host) within\n" +
			"--converge-timeout. At the end it reads every node's lists and checks the history: split\n" +
			"brain, lost writes, linearizable registers, read-your-writes through the pooler, no read\n" +
			"from a standby the leading pooler had marked down or lagging, garbage reads, list order.\n" +
			"A convergence miss stops the injections. Writes report.md, report.json, history.json and\n" +
			"timeline.svg in --out (and the hosts' logs in --out/logs when it found something); exits 1\n" +
			"on any violation or convergence miss. The same seed replays the same plan.\n\n" +
			"Kinds: postmaster-kill, host-crash, freeze, link-cut (a database host, the pooler leader or\n" +
			"the witness), partition (the primary alone), partition-sync (the primary and its synchronous\n" +
			"standby against the rest), client-partition (the primary and the client host against the\n" +
			"rest), pooler-freeze, pooler-kill, bmc-down (a host loses power with its BMC: no fencing\n" +
			"until it is back), packet-loss (25 % of a host's database link, each way), slow-link (a host's\n" +
			"database link throttled to 128 kbit/s with a one-second queue: the lab's delay), switchover (not a\n" +
			"fault: rampart switchover to the synchronous standby, for an overlapping fault to land in),\n" +
			"overlap (two faults at once), recovering (the next fault a few seconds after a heal, while\n" +
			"the cluster recovers).\n\n" +
			"--early-ack builds a broken cluster on purpose (synchronous_commit = local: commits are\n" +
			"acknowledged before the synchronous standby has them), to show that the checker catches\n" +
			"what it must: a client-partition of such a primary loses acknowledged commits.\n\n" +
			"Reads are durable by default: the pooler pair runs with durable_reads = on, and clients on\n" +
			"the database VIP end each read with a barrier commit. --plain-reads leaves both out, to\n" +
			"show reads of commits a failover takes back (PostgreSQL shows them before its synchronous\n" +
			"standby has them when a commit's wait is cancelled).",
		Flags: append(labFlags(),
			&cli.Uint64Flag{Name: "seed", Usage: "the plan's `SEED` (default: random, printed)"},
			&cli.IntFlag{Name: "faults", Value: 8, Usage: "number of faults"},
			&cli.StringFlag{Name: "kinds", Value: "all", Usage: "comma-separated fault `KINDS`, or all"},
			&cli.DurationFlag{Name: "duration", Value: time.Hour, Usage: "overall cap: no fault starts after this long"},
			&cli.DurationFlag{Name: "converge-timeout", Value: time.Minute, Usage: "bound of each wait for convergence"},
			&cli.StringFlag{Name: "out", Value: "chaos-report", Usage: "`FOLDER` for history.json and report.md"},
			&cli.BoolFlag{Name: "keep", Usage: "leave the lab running at the end"},
			&cli.BoolFlag{Name: "early-ack", Usage: "test the checker: a cluster that acknowledges commits before the synchronous standby has them"},
			&cli.BoolFlag{Name: "plain-reads", Usage: "reads without durable_reads in the pooler and without a barrier on the VIP: they may see commits a failover takes back"},
		),
		Action: func(c *cli.Context) error {
			kinds, err := chaos.ParseKinds(c.String("kinds"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			seedValue := c.Uint64("seed")
			if !c.IsSet("seed") {
				seedValue = rand.Uint64()
			}
			if c.Int("faults") < 1 {
				return cli.Exit("--faults: at least 1", 2)
			}
			cfg, err := ownLab(c, chaos.LabConfig(lab.DefaultConfig()), "chaos")
			if err != nil {
				return err
			}
			cfg.EarlyAck = c.Bool("early-ack")
			cfg.DurableReads = !c.Bool("plain-reads")
			out, err := filepath.Abs(c.String("out"))
			if err != nil {
				return err
			}
			o := chaos.Options{
				Seed: seedValue, Faults: c.Int("faults"), Kinds: kinds,
				Duration: c.Duration("duration"), ConvergeTimeout: c.Duration("converge-timeout"),
				Bin: cfg.Agent, Progress: c.App.Writer, Now: time.Now,
				ClientsPerPath: 2, Pace: 50 * time.Millisecond, EarlyAck: cfg.EarlyAck, PlainReads: !cfg.DurableReads,
			}
			fmt.Fprintf(c.App.Writer, "seed %d (replay: %s)\n", o.Seed, chaos.Replay(o))
			log := newLogger(c.App.ErrWriter, c.Bool("verbose"))
			start := time.Now()
			// Building the lab, then each fault's hold and convergence.
			ctx, cancel := context.WithTimeout(c.Context, 10*time.Minute+o.Duration+2*o.ConvergeTimeout)
			defer cancel()
			l, down, err := upLab(ctx, c, cfg, log, chaos.Prepare)
			defer down()
			if err != nil {
				return err
			}
			res, runErr := chaos.Run(ctx, l, o, log)
			if err := chaos.Write(out, res, o, time.Since(start)); err != nil {
				return err
			}
			if runErr != nil || res.Failed() {
				// The lab goes with down(): keep what its hosts logged.
				if err := l.SaveLogs(filepath.Join(out, "logs")); err != nil {
					log.Warn("saving the hosts' logs", "err", err)
				}
				fmt.Fprintf(c.App.Writer, "hosts' logs: %s\n", filepath.Join(out, "logs"))
			}
			fmt.Fprintf(c.App.Writer, "report: %s (%s)\n", filepath.Join(out, "report.md"), time.Since(start).Round(time.Second))
			if runErr != nil {
				return fmt.Errorf("chaos (seed %d): %w", o.Seed, runErr)
			}
			if res.Failed() {
				return cli.Exit(fmt.Sprintf("chaos: %d violations, %d convergence misses; replay: %s",
					len(res.Report.Violations), len(res.Misses), chaos.Replay(o)), 1)
			}
			return nil
		},
	}
}

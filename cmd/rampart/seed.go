package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/test/lab"
	"github.com/rampart-ha/rampart/test/seed"
)

func labSeedCommand() *cli.Command {
	return &cli.Command{
		Name:  "seed",
		Usage: "the 2013 field test's seven experiments on a fresh lab, with a report and a plot per experiment",
		Description: "Builds a lab (four database hosts under Pacemaker with ocf:rampart:pgsql, fencing and a\n" +
			"VIP; the pooler pair with its witness), runs a steady mixed read/write load from the client\n" +
			"host, and runs each experiment under it: the fault, the recovery, the figures the seed\n" +
			"asked for next to its 2013 ones. Writes --out/report.md and --out/experiment-N.svg.\n" +
			"About 4 minutes on two cores.",
		Flags: append(labFlags(),
			&cli.StringFlag{Name: "out", Value: "seed-report", Usage: "`FOLDER` for report.md and the plots"},
			&cli.StringSliceFlag{Name: "only", Usage: "run only experiment `N` (repeat; 1, 2, 2b, 3, 3b, …, 7)"},
			&cli.IntFlag{Name: "writers", Value: 2, Usage: "writing clients"},
			&cli.DurationFlag{Name: "pace", Value: 10 * time.Millisecond, Usage: "each client's pace (one statement per PACE at most)"},
			&cli.BoolFlag{Name: "keep", Usage: "leave the lab running at the end"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := ownLab(c, seed.LabConfig(lab.DefaultConfig()), "seed")
			if err != nil {
				return err
			}
			out, err := filepath.Abs(c.String("out"))
			if err != nil {
				return err
			}
			log := newLogger(c.App.ErrWriter, c.Bool("verbose"))
			start := time.Now()
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Minute)
			defer cancel()
			log.Info("seed: building the lab", "id", cfg.ID)
			l, down, err := upLab(ctx, c, cfg, log, seed.Prepare)
			defer down()
			if err != nil {
				return err
			}
			log.Info("seed: lab ready; running the experiments", "elapsed", time.Since(start).Round(time.Second))
			results, runErr := seed.RunAll(ctx, l, seed.Options{
				Bin: l.Config().Agent, Out: out, Only: c.StringSlice("only"), Pace: c.Duration("pace"), Writers: c.Int("writers"),
			}, log)
			notes := []string{
				fmt.Sprintf("`rampart lab seed`, %s, %s in all. Lab: %d database hosts (PostgreSQL 15, Pacemaker with `ocf:rampart:pgsql`, `sync_count=1`, `sync_policy=durability`, fencing through each host's BMC, `ocf:rampart:vip`), a pooler pair (p1, p2) with a witness (w), a client host; 2 cores.",
					time.Now().UTC().Format("2006-01-02"), time.Since(start).Round(time.Second), cfg.DBHosts),
				fmt.Sprintf("Load: %d writers (one INSERT per transaction through the database VIP, or the pooler pair's for experiments 3 to 6; every acknowledged id kept and checked on the primary at the end) and a reader per standby (each preferring its own standby, or through the pooler), each at most one statement per %s.",
					c.Int("writers"), c.Duration("pace")),
			}
			report := seed.Markdown("The seed's experiments on rampart", results, notes)
			if err := os.WriteFile(filepath.Join(out, "report.md"), []byte(report), 0o644); err != nil {
				return err
			}
			for _, r := range results {
				fmt.Fprintf(c.App.Writer, "%-3s %-44s %s\n", r.N, r.Title, firstNonEmpty(r.Err, r.Skipped, r.Verdict))
			}
			fmt.Fprintf(c.App.Writer, "report: %s (%s)\n", filepath.Join(out, "report.md"), time.Since(start).Round(time.Second))
			if runErr != nil {
				return runErr
			}
			var failed []string
			for _, r := range results {
				if r.Err != "" {
					failed = append(failed, r.N)
				}
			}
			if len(failed) > 0 {
				return cli.Exit("seed: experiments did not finish: "+strings.Join(failed, ", "), 1)
			}
			return nil
		},
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

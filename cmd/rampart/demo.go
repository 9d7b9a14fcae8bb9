package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/test/lab"
)

func labDemoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build a lab, show it, run a short write load through it, and tear it down",
		Flags: append(labFlags(),
			&cli.DurationFlag{Name: "load", Value: 10 * time.Second, Usage: "how long the write load runs"},
			&cli.BoolFlag{Name: "keep", Usage: "leave the lab running at the end (remove it with `rampart lab down`)"},
		),
		Action: func(c *cli.Context) error {
			cfg := lab.DefaultConfig()
			cfg.ID, cfg.Root = c.String("id"), c.String("root")
			if err := cfg.Validate(); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			out := c.App.Writer
			log := newLogger(c.App.ErrWriter, c.Bool("verbose"))
			step := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }

			start := time.Now()
			step("building lab %q: %d database hosts and a client in network namespaces (about 20 s)", cfg.ID, cfg.DBHosts)
			upCtx, cancel := context.WithTimeout(c.Context, 3*time.Minute)
			defer cancel()
			l, err := lab.Up(upCtx, cfg, log)
			if !c.Bool("keep") {
				defer func() {
					step("tearing the lab down")
					if err := lab.Destroy(context.WithoutCancel(c.Context), cfg.Root, cfg.ID, log); err != nil {
						fmt.Fprintln(c.App.ErrWriter, "rampart: lab down:", err)
					}
				}()
			}
			if err != nil {
				return err
			}
			upTime := time.Since(start)
			step("the lab, %s after start", upTime.Round(100*time.Millisecond))
			l.Status(c.Context).Format(out)

			primary := l.Hosts()[0]
			pgbench := filepath.Join(cfg.PGBin, "pgbench")
			conn := []string{"-h", primary.Addr.String(), "-U", lab.AppUser, lab.AppDatabase}
			step("client: pgbench -i against the primary %s (%s)", primary.Name, primary.Addr)
			if err := runIn(c, l, "client", append([]string{pgbench, "-i", "-s", "2", "-q"}, conn...)...); err != nil {
				return err
			}
			step("client: %s of writes (pgbench, 4 clients), progress every second", c.Duration("load"))
			secs := fmt.Sprint(int(c.Duration("load").Seconds()))
			if err := runIn(c, l, "client", append([]string{pgbench, "-n", "-c", "4", "-j", "2", "-T", secs, "-P", "1"}, conn...)...); err != nil {
				return err
			}
			step("after the load: the standbys have replayed the primary's WAL")
			waitCtx, cancelWait := context.WithTimeout(c.Context, time.Minute)
			defer cancelWait()
			if err := l.WaitCaughtUp(waitCtx, primary.Name, l.DBHosts()[1:]); err != nil {
				return err
			}
			l.Status(c.Context).Format(out)
			step("next: `rampart lab up`, then `rampart lab fault --help` to break it yourself")
			return nil
		},
	}
}

func runIn(c *cli.Context, l *lab.Lab, host string, argv ...string) error {
	cmd, err := l.Exec(c.Context, host, argv...)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = c.App.Writer, c.App.Writer
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s on %s: %w", filepath.Base(argv[0]), host, err)
	}
	return nil
}

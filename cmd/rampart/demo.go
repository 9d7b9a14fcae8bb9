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
)

func labDemoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build a lab, show it, run a write load, kill the primary under it, and tear it down",
		Flags: append(labFlags(),
			&cli.DurationFlag{Name: "load", Value: 10 * time.Second, Usage: "how long the write load runs"},
			&cli.BoolFlag{Name: "keep", Usage: "leave the lab running at the end (remove it with `rampart lab down`)"},
		),
		Action: func(c *cli.Context) error {
			cfg := lab.DefaultConfig()
			cfg.ID, cfg.Root = c.String("id"), c.String("root")
			var err error
			if cfg.Agent, err = os.Executable(); err != nil {
				return err
			}
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
			if err := demoFailover(c, l, step); err != nil {
				return err
			}
			step("next: `rampart lab up --agent`, then `rampart lab fault --help` to break it yourself")
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

// demoFailover hands PostgreSQL to Pacemaker under ocf:rampart:pgsql, runs a
// write load that records every acknowledged commit, kills the primary's
// postmaster and shows what happened.
func demoFailover(c *cli.Context, l *lab.Lab, step func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(c.Context, 3*time.Minute)
	defer cancel()
	out := c.App.Writer
	step("handing PostgreSQL to Pacemaker: ocf:rampart:pgsql as the promotable clone pgsql-clone")
	if err := l.ManagePostgres(ctx, nil); err != nil {
		return err
	}
	showCrmMon(c, l)

	var hosts []string
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			hosts = append(hosts, h.Addr.String())
		}
	}
	step("client: one write every 20 ms to whichever host accepts writes (target_session_attrs=read-write); every acknowledged commit is recorded")
	w, err := l.NewWriter("client", "host="+strings.Join(hosts, ",")+" target_session_attrs=read-write", 20*time.Millisecond)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer w.Stop()
	if err := lab.WaitFor(ctx, "50 acknowledged writes", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(time.Time{}, "")
		return n >= 50, fmt.Sprint(n), nil
	}); err != nil {
		return err
	}
	sync, err := l.WaitSyncStandby(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %s is the synchronous standby: it has every acknowledged commit (promotion score 100)\n", sync)
	s, err := l.Cluster(ctx, l.DBHosts()[0])
	if err != nil {
		return err
	}
	primary := s.Promoted(lab.PgsqlResource)
	if len(primary) != 1 {
		return fmt.Errorf("promoted: %v", primary)
	}
	old := primary[0]
	step("fault: SIGKILL to the postmaster of the primary, %s", old)
	if _, err := l.KillPostmaster(ctx, old); err != nil {
		return err
	}
	fault := time.Now()
	var newPrimary string
	shown := -1
	err = lab.WaitFor(ctx, "a new primary", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		for _, h := range l.DBHosts() {
			if h == old {
				continue
			}
			s, err := l.Cluster(ctx, h)
			if err != nil {
				continue
			}
			if p := s.Promoted(lab.PgsqlResource); len(p) == 1 && p[0] != old {
				newPrimary = p[0]
				return true, "", nil
			}
			break // one observer is enough
		}
		if half := int(time.Since(fault) / (500 * time.Millisecond)); half > shown {
			shown = half
			n, _ := w.AckedSince(fault, "")
			fmt.Fprintf(out, "  %4.1fs  no primary yet: %d writes acknowledged since the kill, %d attempts failed\n", time.Since(fault).Seconds(), n, w.Errors())
		}
		return false, "", nil
	})
	if err != nil {
		return err
	}
	promoted := time.Since(fault)
	if err := lab.WaitFor(ctx, "writes on the new primary", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(fault, "")
		return n >= 50, "", nil
	}); err != nil {
		return err
	}
	_, first := w.AckedSince(fault, "")
	w.Stop()
	lost, err := w.Missing(ctx)
	if err != nil {
		return err
	}
	step("result: %s promoted %.1f s after the kill; first write acknowledged after %.1f s; %d commits acknowledged in all, %d lost",
		newPrimary, promoted.Seconds(), first.Sub(fault).Seconds(), len(w.IDs()), len(lost))
	step("the remaining standby streams from %s and becomes synchronous; the old primary stays down (it may have diverged)", newPrimary)
	if err := lab.WaitFor(ctx, "the new primary's synchronous standby", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st, err := l.NodeAttr(ctx, newPrimary, "rampart-"+lab.PgsqlResource+"-state")
		return err == nil && st == "primary", st, nil
	}); err != nil {
		return err
	}
	showCrmMon(c, l)
	return nil
}

// showCrmMon prints Pacemaker's view with node attributes (the agent's
// rampart-pgsql-state and the promotion scores).
func showCrmMon(c *cli.Context, l *lab.Lab) {
	for _, h := range l.DBHosts() {
		cmd, err := l.Exec(c.Context, h, "crm_mon", "--one-shot", "--show-node-attributes", "--exclude=summary")
		if err != nil {
			continue
		}
		cmd.Stdout, cmd.Stderr = c.App.Writer, c.App.Writer
		if cmd.Run() == nil {
			return
		}
	}
}

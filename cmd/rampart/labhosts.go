package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/test/lab"
)

// `rampart lab hosts`: the deployment guide's five hosts, each booted by
// systemd from a Debian release's root (lab.Site). `up` runs in the
// foreground and answers the other subcommands on a socket in the
// site's folder.

func hostsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "id", Value: "hosts", Usage: "site `ID`: names its namespaces (rampart-ID-…) and folder"},
		&cli.StringFlag{Name: "root", Value: lab.DefaultConfig().Root, Usage: "`DIR` that holds one folder per lab"},
	}
}

func hostsSocket(c *cli.Context) string {
	return filepath.Join(c.String("root"), c.String("id"), "control.sock")
}

func labHostsCommand() *cli.Command {
	request := func(name, usage string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "HOST", Flags: hostsFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("name one host", 2)
				}
				return lab.SiteRequest(hostsSocket(c), []string{name, c.Args().First()}, c.App.Writer)
			},
		}
	}
	return &cli.Command{
		Name:  "hosts",
		Usage: "the deployment guide's hosts (db1–db3, pooler1, pooler2), booted by systemd from a Debian root",
		Description: "`up` builds (once) a Debian 12 or 13 root with debootstrap, boots five hosts from it with\n" +
			"systemd-nspawn, each in a network namespace on a database network (10.0.0.0/24) and the database\n" +
			"hosts on a management network with simulated BMCs (10.1.0.111–113, fence_rampart_ipmi), and\n" +
			"with --deb and --guide installs the package and runs docs/deploy.md on them. It stays in the\n" +
			"foreground until interrupted; the other subcommands reach it on its socket.",
		Subcommands: []*cli.Command{
			labHostsUpCommand(),
			request("crash", "power a host off at once (every process killed, its added addresses gone)"),
			request("boot", "power a host on"),
			request("freeze", "SIGSTOP every process of a host (an OS hang)"),
			request("thaw", "SIGCONT every process of a frozen host"),
			request("cut", "take a host's database link down"),
			request("restore", "bring a cut link back"),
			{
				Name: "partition", Usage: "split the database network: each GROUP on a bridge of its own",
				ArgsUsage: "GROUP [/ GROUP …]   (host names separated by commas, e.g. db1 / db2,pooler1)", Flags: hostsFlags(),
				Action: func(c *cli.Context) error {
					return lab.SiteRequest(hostsSocket(c), append([]string{"partition"}, c.Args().Slice()...), c.App.Writer)
				},
			},
			{
				Name: "heal", Usage: "join a partitioned network again", Flags: hostsFlags(),
				Action: func(c *cli.Context) error { return lab.SiteRequest(hostsSocket(c), []string{"heal"}, c.App.Writer) },
			},
			{
				Name: "exec", Usage: "run a command on a host as root (a login's environment)", ArgsUsage: "HOST [COMMAND [ARG…]]", Flags: hostsFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return cli.Exit("name a host", 2)
					}
					var pid strings.Builder
					if err := lab.SiteRequest(hostsSocket(c), []string{"leader", c.Args().First()}, &pid); err != nil {
						return err
					}
					argv := c.Args().Tail()
					if len(argv) == 0 {
						argv = []string{"bash", "-l"}
					}
					cmd := exec.CommandContext(c.Context, "nsenter", append([]string{"--target", strings.TrimSpace(pid.String()), "--all", "--wd=/root", "--"}, lab.RootLogin(argv...)...)...)
					cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
					if err := cmd.Run(); err != nil {
						if e, ok := err.(*exec.ExitError); ok {
							return cli.Exit("", e.ExitCode())
						}
						return err
					}
					return nil
				},
			},
			{
				Name: "chassis", Hidden: true, Usage: "a site BMC's power request (run by ipmi_sim)", ArgsUsage: "HOST WORD…",
				Action: func(c *cli.Context) error {
					if code := lab.ChassisClient(os.Getenv(lab.ChassisSocketEnv), c.Args().Slice(), c.App.Writer); code != 0 {
						return cli.Exit("", code)
					}
					return nil
				},
			},
		},
	}
}

func labHostsUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "boot the hosts (and deploy on them with --deb and --guide); stays in the foreground",
		Flags: append(hostsFlags(),
			&cli.StringFlag{Name: "release", Value: "debian13", Usage: "`RELEASE` the hosts run: debian12 (PostgreSQL 15, Pacemaker 2.1) or debian13 (PostgreSQL 17, Pacemaker 3.0)"},
			&cli.StringFlag{Name: "deb", Usage: "rampart's .deb `FILE` (make packages) to put in each host's /root"},
			&cli.StringFlag{Name: "guide", Usage: "run the deployment guide `FILE` (docs/deploy.md) on the hosts; needs --deb"},
		),
		Action: func(c *cli.Context) error {
			release, err := lab.ReleaseNamed(c.String("release"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			if c.String("guide") != "" && c.String("deb") == "" {
				return cli.Exit("--guide needs --deb: the guide installs the package", 2)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
			dir := filepath.Join(c.String("root"), c.String("id"))
			sock := hostsSocket(c)
			if err := lab.CleanSite(ctx, c.String("id")); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(dir, "site")); err != nil {
				return err
			}
			cfg := lab.SiteConfig{
				ID: c.String("id"), Dir: filepath.Join(dir, "site"), Cache: "/var/cache/rampart/roots", Release: release,
				Hosts: lab.GuideHosts(), Client: lab.GuideClient,
				// ipmi_sim runs it through sh, from inside a quoted string.
				Chassis: fmt.Sprintf("%s=%s %s lab hosts chassis", lab.ChassisSocketEnv, sock, self),
			}
			if strings.ContainsAny(cfg.Chassis, "\"'\\$`;&|<>") {
				return cli.Exit(fmt.Sprintf("%q: --root and the binary's path must be plain paths (no quotes or shell characters)", cfg.Chassis), 2)
			}
			fmt.Fprintf(c.App.Writer, "booting %d %s hosts (the root is built once, a minute or two)…\n", len(cfg.Hosts), release.Name)
			site, err := lab.StartSite(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(c.App.Writer, "removing the hosts…")
				if err := site.Close(context.Background()); err != nil {
					fmt.Fprintln(c.App.ErrWriter, err)
					return
				}
				// Nothing left for `rampart lab leftovers` to find.
				if err := os.RemoveAll(dir); err != nil {
					fmt.Fprintln(c.App.ErrWriter, err)
				}
			}()
			if err := site.Serve(ctx, sock); err != nil {
				return err
			}
			if deb := c.String("deb"); deb != "" {
				if err := site.PrepareForGuide(ctx, deb); err != nil {
					return err
				}
			}
			if path := c.String("guide"); path != "" {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				steps, err := lab.ParseGuide(f)
				f.Close()
				if err != nil {
					return err
				}
				for i, st := range lab.ForRelease(steps, release.PostgreSQL) {
					start := time.Now()
					fmt.Fprintf(c.App.Writer, "[%d/%d] %s…", i+1, len(steps), st)
					out, err := site.RunStep(ctx, st)
					if err != nil {
						fmt.Fprintf(c.App.Writer, "\n%s\n", out)
						return err
					}
					fmt.Fprintf(c.App.Writer, " %s\n", time.Since(start).Round(100*time.Millisecond))
				}
			}
			fmt.Fprintf(c.App.Writer, "up: db1 db2 db3 pooler1 pooler2 (database network 10.0.0.0/24; this side is %s)\n"+
				"  rampart lab hosts exec db1 rampart status      a command on a host\n"+
				"  rampart lab hosts crash|boot|freeze|thaw|cut|restore HOST, partition, heal\n"+
				"Ctrl-C removes the hosts.\n", lab.GuideClient.Addr())
			<-ctx.Done()
			return nil
		},
	}
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/test/lab"
)

func labFlags() []cli.Flag {
	d := lab.DefaultConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: "id", Value: d.ID, Usage: "lab `ID`: names its namespaces (rampart-ID-…) and folder; labs with different ids coexist"},
		&cli.StringFlag{Name: "root", Value: d.Root, Usage: "`DIR` that holds one folder per lab"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more"},
	}
}

func labCommand() *cli.Command {
	return &cli.Command{
		Name:  "lab",
		Usage: "a whole cluster in network namespaces on this machine: build it, break it, tear it down",
		Description: "The lab builds database hosts n1…nN (PostgreSQL 15: n1 primary, the others streaming\n" +
			"standbys; Corosync + Pacemaker on each) and a client host, each a network, mount and UTS\n" +
			"namespace on one bridge that lives in a namespace of its own. Nothing reaches the real\n" +
			"network. Needs root and the packages of `make deps`.",
		Subcommands: []*cli.Command{
			labUpCommand(),
			labStatusCommand(),
			labDownCommand(),
			labLeftoversCommand(),
			labFaultCommand(),
			labExecCommand(),
			labDemoCommand(),
			labSeedCommand(),
			labChaosCommand(),
			labHostsCommand(),
			labBMCPowerCommand(),
		},
	}
}

func labUpCommand() *cli.Command {
	d := lab.DefaultConfig()
	return &cli.Command{
		Name:  "up",
		Usage: "build and start a lab, wait until it is ready, print its status",
		Flags: append(labFlags(),
			&cli.IntFlag{Name: "db-hosts", Value: d.DBHosts, Usage: fmt.Sprintf("number of database hosts (1–%d)", lab.MaxDBHosts)},
			&cli.IntFlag{Name: "poolers", Usage: "number of pooler hosts p1 … (0–9), for the pooler pair"},
			&cli.BoolFlag{Name: "witness", Usage: "add the pooler pair's witness host w"},
			&cli.StringFlag{Name: "subnet", Value: d.Subnet.String(), Usage: "IPv4 `PREFIX` used only inside the lab"},
			&cli.StringFlag{Name: "management-subnet", Value: d.Management.String(), Usage: "IPv4 `PREFIX` of the lab's management network (hosts' eth1 and their BMCs)"},
			&cli.DurationFlag{Name: "token", Value: d.Token, Usage: "Corosync token timeout"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Minute, Usage: "give up when not ready after this long"},
			&cli.BoolFlag{Name: "agent", Usage: "hand PostgreSQL to Pacemaker as the promotable clone pgsql-clone (ocf:rampart:pgsql)"},
			&cli.BoolFlag{Name: "installed", Usage: "hosts run the installed package's " + lab.InstalledBinary + " and its agent links, not this binary"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := labConfig(c)
			if err != nil {
				return err
			}
			log := newLogger(c.App.ErrWriter, c.Bool("verbose"))
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			// This binary is the hosts' OCF provider "rampart", their fence
			// agents and their BMCs' power program.
			if cfg.Agent, err = os.Executable(); err != nil {
				return err
			}
			if c.Bool("installed") {
				cfg.Agent, cfg.Installed = lab.InstalledBinary, true
			}
			l, err := lab.Up(ctx, cfg, log)
			if err == nil && c.Bool("agent") {
				log.Info("handing PostgreSQL to Pacemaker", "resource", lab.PgsqlResource+"-clone")
				err = l.ManagePostgres(ctx, nil)
			}
			if err != nil {
				return fmt.Errorf("%w\nlogs: %s/hosts/*/log and .../var-log-pacemaker; remove the partial lab with `rampart lab down --id %s`", err, cfg.Dir(), cfg.ID)
			}
			l.Status(c.Context).Format(c.App.Writer)
			return nil
		},
	}
}

func labConfig(c *cli.Context) (lab.Config, error) {
	cfg := lab.DefaultConfig()
	cfg.ID, cfg.Root = c.String("id"), c.String("root")
	cfg.DBHosts, cfg.Token = c.Int("db-hosts"), c.Duration("token")
	cfg.Poolers, cfg.Witness = c.Int("poolers"), c.Bool("witness")
	p, err := netip.ParsePrefix(c.String("subnet"))
	if err != nil {
		return cfg, cli.Exit(fmt.Sprintf("--subnet: %v", err), 2)
	}
	cfg.Subnet = p
	if p, err = netip.ParsePrefix(c.String("management-subnet")); err != nil {
		return cfg, cli.Exit(fmt.Sprintf("--management-subnet: %v", err), 2)
	}
	cfg.Management = p
	if err := cfg.Validate(); err != nil {
		return cfg, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func openLab(c *cli.Context) (*lab.Lab, error) {
	return lab.Open(c.String("root"), c.String("id"), newLogger(c.App.ErrWriter, c.Bool("verbose")))
}

func labStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show hosts, PostgreSQL roles and replication, Corosync and Pacemaker membership, faults in force",
		Flags: labFlags(),
		Action: func(c *cli.Context) error {
			l, err := openLab(c)
			if err != nil {
				return err
			}
			l.Status(c.Context).Format(c.App.Writer)
			return nil
		},
	}
}

func labDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "remove a lab and everything it left (processes, namespaces, bridge, folder), also after a crash",
		Flags: labFlags(),
		Action: func(c *cli.Context) error {
			// Cleanup must finish even when the user presses Ctrl-C again.
			ctx := context.WithoutCancel(c.Context)
			return lab.Destroy(ctx, c.String("root"), c.String("id"), newLogger(c.App.ErrWriter, c.Bool("verbose")))
		},
	}
}

// ownLab is cfg with --id and --root, an id of its own (own) unless one
// was given, and this binary as the agent the hosts run.
func ownLab(c *cli.Context, cfg lab.Config, own string) (lab.Config, error) {
	cfg.ID, cfg.Root = c.String("id"), c.String("root")
	if cfg.ID == lab.DefaultConfig().ID {
		cfg.ID = own
	}
	var err error
	if cfg.Agent, err = os.Executable(); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

// upLab builds the lab cfg describes and prepares it (the seed's and the
// chaos campaign's shape); down tears it down unless --keep, and is to be
// deferred whatever the error.
func upLab(ctx context.Context, c *cli.Context, cfg lab.Config, log *slog.Logger, prepare func(context.Context, *lab.Lab) error) (l *lab.Lab, down func(), err error) {
	l, err = lab.Up(ctx, cfg, log)
	down = func() {
		if c.Bool("keep") {
			return
		}
		if err := lab.Destroy(context.WithoutCancel(ctx), cfg.Root, cfg.ID, log); err != nil {
			fmt.Fprintln(c.App.ErrWriter, "rampart: lab down:", err)
		}
	}
	if err != nil {
		return nil, down, err
	}
	if err := prepare(ctx, l); err != nil {
		return nil, down, err
	}
	return l, down, nil
}

func labLeftoversCommand() *cli.Command {
	d := lab.DefaultConfig()
	return &cli.Command{
		Name:  "leftovers",
		Usage: "list what any lab left on this machine (namespaces, their processes, folders, mounts); exit 1 if anything",
		Description: "`make test` ends with it: a test that leaves a lab behind fails the run.\n" +
			"Remove what it lists with `rampart lab down --id ID`.",
		Flags: []cli.Flag{&cli.StringFlag{Name: "root", Value: d.Root, Usage: "`DIR` that holds one folder per lab"}},
		Action: func(c *cli.Context) error {
			left, err := lab.AllLeftovers(c.String("root"))
			if err != nil {
				return err
			}
			if len(left) == 0 {
				fmt.Fprintln(c.App.Writer, "no lab left on this machine")
				return nil
			}
			for _, id := range slices.Sorted(maps.Keys(left)) {
				fmt.Fprintf(c.App.Writer, "lab %s: %s (remove: rampart lab down --id %s)\n", id, strings.Join(left[id], "; "), id)
			}
			return cli.Exit("", 1)
		},
	}
}

func labExecCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command inside a lab host (its network, mount and UTS namespaces)",
		ArgsUsage: "HOST -- COMMAND [ARG…]",
		Description: "Example: rampart lab exec client -- psql -h n1 -U app lab\n" +
			"PGPASSFILE is set to the lab's password file, so psql connects without asking.",
		Flags: labFlags(),
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) < 2 {
				return cli.Exit("usage: rampart lab exec HOST -- COMMAND [ARG…]", 2)
			}
			l, err := openLab(c)
			if err != nil {
				return err
			}
			cmd, err := l.Exec(c.Context, args[0], args[1:]...)
			if err != nil {
				return err
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
			if err := cmd.Run(); err != nil {
				if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() > 0 {
					return cli.Exit("", cmd.ProcessState.ExitCode())
				}
				return err
			}
			return nil
		},
	}
}

// faultVerbs are the lab's faults; each takes one host unless it says otherwise.
func labFaultCommand() *cli.Command {
	oneHost := func(name, usage string, do func(ctx context.Context, l *lab.Lab, host string) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "HOST", Flags: labFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit(fmt.Sprintf("usage: rampart lab fault %s HOST", name), 2)
				}
				l, err := openLab(c)
				if err != nil {
					return err
				}
				if err := do(c.Context, l, c.Args().First()); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "%s %s: done\n", name, c.Args().First())
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "fault",
		Usage: "inject a fault into a lab host, or undo it",
		Subcommands: []*cli.Command{
			oneHost("kill-postmaster", "SIGKILL the host's postmaster", func(ctx context.Context, l *lab.Lab, h string) error {
				_, err := l.KillPostmaster(ctx, h)
				return err
			}),
			oneHost("crash", "kill every process of the host and take its link down (power loss)", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.Crash(ctx, h)
			}),
			bootCommand(oneHost),
			oneHost("freeze", "SIGSTOP every process of the host (an OS hang; its kernel still answers ARP)", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.Freeze(ctx, h)
			}),
			oneHost("thaw", "SIGCONT every process of a frozen host", func(_ context.Context, l *lab.Lab, h string) error {
				return l.Thaw(h)
			}),
			oneHost("bmc-down", "stop the host's BMC: fencing the host fails until bmc-up", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.BMCDown(ctx, h)
			}),
			oneHost("bmc-up", "start the host's BMC again", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.BMCUp(ctx, h)
			}),
			oneHost("hold-wal", "drop every packet from a PostgreSQL port to the host: its walreceiver gets no WAL", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.HoldWAL(ctx, h)
			}),
			oneHost("release-wal", "undo hold-wal", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.ReleaseWAL(ctx, h)
			}),
			oneHost("cut", "take the host's link down (carrier lost on both sides)", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.Cut(ctx, h)
			}),
			oneHost("restore", "bring a cut link back", func(ctx context.Context, l *lab.Lab, h string) error {
				return l.Restore(ctx, h)
			}),
			{
				Name:      "partition",
				Usage:     "split the lab: each GROUP becomes a network of its own, the other hosts stay together",
				ArgsUsage: "GROUP [/ GROUP …]   (a GROUP is host names separated by commas or spaces, e.g. n1 / n2,client)",
				Flags:     labFlags(),
				Action: func(c *cli.Context) error {
					groups := parseGroups(c.Args().Slice())
					l, err := openLab(c)
					if err != nil {
						return err
					}
					if err := l.Partition(c.Context, groups); err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, "partitioned; undo with `rampart lab fault heal`")
					return nil
				},
			},
			{
				Name: "heal", Usage: "join a partitioned lab again", Flags: labFlags(),
				Action: func(c *cli.Context) error {
					l, err := openLab(c)
					if err != nil {
						return err
					}
					return l.Heal(c.Context)
				},
			},
		},
	}
}

// parseGroups turns `n1 / n2,n3 client` into [[n1] [n2 n3 client]].
func parseGroups(args []string) [][]string {
	var groups [][]string
	var cur []string
	for _, a := range args {
		for _, part := range strings.SplitAfter(a, "/") {
			end := strings.HasSuffix(part, "/")
			for _, name := range strings.Split(strings.TrimSuffix(part, "/"), ",") {
				if name = strings.TrimSpace(name); name != "" {
					cur = append(cur, name)
				}
			}
			if end {
				groups = append(groups, cur)
				cur = nil
			}
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// labBMCPowerCommand is the chassis_control program of the lab's simulated
// BMCs (ipmi_sim runs "PROG get power" and "PROG set power 0|1").
func labBMCPowerCommand() *cli.Command {
	return &cli.Command{
		Name:      "bmc-power",
		Usage:     "power control of a lab host's simulated BMC (run by ipmi_sim)",
		ArgsUsage: "HOST get NAME… | HOST set NAME VALUE…",
		Hidden:    true,
		Flags:     labFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() < 3 {
				return cli.Exit("usage: rampart lab bmc-power HOST get NAME… | HOST set NAME VALUE…", 2)
			}
			l, err := openLab(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			return l.ChassisControl(ctx, c.Args().First(), c.Args().Tail(), c.App.Writer)
		},
	}
}

func bootCommand(oneHost func(name, usage string, do func(ctx context.Context, l *lab.Lab, host string) error) *cli.Command) *cli.Command {
	var post time.Duration
	cmd := oneHost("boot", "start a crashed host again with its services", func(ctx context.Context, l *lab.Lab, h string) error {
		return l.BootAfter(ctx, h, post)
	})
	cmd.Flags = append(cmd.Flags, &cli.DurationFlag{
		Name: "post", Destination: &post,
		Usage: "wait this long between power on and the host's services, like a real machine's firmware and kernel",
	})
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ra/pg"
	"github.com/rampart-ha/rampart/vip"
)

// exitNotHeld is `rampart vip status`'s answer "not held" (systemctl's
// is-active uses 3 for inactive).
const exitNotHeld = 3

func vipFlags() []cli.Flag {
	d := vip.DefaultAnnounce
	return []cli.Flag{
		&cli.StringFlag{Name: "ip", Required: true, Usage: "the virtual `ADDRESS` (IPv4 or IPv6)"},
		&cli.StringFlag{Name: "nic", Usage: "`INTERFACE` to use (default: that of the directly connected subnet holding the address)"},
		&cli.IntFlag{Name: "prefix", Usage: "prefix `LENGTH` (default: that of the subnet)"},
		&cli.StringFlag{Name: "label", Usage: "IPv4 address label suffix (INTERFACE:LABEL)"},
		&cli.IntFlag{Name: "count", Value: d.Count, Usage: "announcements per burst (IPv4: request+reply pairs)"},
		&cli.DurationFlag{Name: "interval", Value: d.Interval, Usage: "between announcements"},
		&cli.DurationFlag{Name: "repeat-after", Value: d.RepeatAfter, Usage: "a second burst this long after taking the address (run only; 0: none)"},
		&cli.BoolFlag{Name: "probe", Usage: "RFC 5227 probe first: refuse when another host answers for the address (IPv4; IPv6 has duplicate address detection)"},
		&cli.BoolFlag{Name: "nodad", Usage: "IPv6: no duplicate address detection"},
		&cli.BoolFlag{Name: "allow-outside-subnet", Usage: "allow an address outside every subnet of the interface"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more"},
	}
}

func vipConfig(c *cli.Context) (vip.Config, error) {
	a, err := netip.ParseAddr(c.String("ip"))
	if err != nil {
		return vip.Config{}, cli.Exit(fmt.Sprintf("--ip %q: not an IP address", c.String("ip")), 2)
	}
	cfg := vip.Config{
		Addr: a, Bits: c.Int("prefix"), Interface: c.String("nic"), Label: c.String("label"),
		AllowOutsideSubnet: c.Bool("allow-outside-subnet"), NoDAD: c.Bool("nodad"),
		Announce: vip.Announce{Count: c.Int("count"), Interval: c.Duration("interval"), RepeatAfter: c.Duration("repeat-after")},
	}
	if c.Bool("probe") {
		cfg.Probe = vip.DefaultProbe
		cfg.Probe.Enabled = true
	}
	if err := cfg.Validate(); err != nil {
		return cfg, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func openVIP(c *cli.Context) (*vip.VIP, error) {
	cfg, err := vipConfig(c)
	if err != nil {
		return nil, err
	}
	return vip.New(cfg, newLogger(c.App.ErrWriter, c.Bool("verbose")))
}

func vipCommand() *cli.Command {
	return &cli.Command{
		Name:  "vip",
		Usage: "move a virtual IP address: take, release, check, or hold it while a condition holds",
		Description: "The address is added with netlink and announced with gratuitous ARP (a request and a reply\n" +
			"per announcement) or, for IPv6, unsolicited neighbour advertisements after duplicate address\n" +
			"detection. Needs CAP_NET_ADMIN and CAP_NET_RAW (root). In a Pacemaker cluster use\n" +
			"ocf:rampart:vip instead; `rampart vip run` is for hosts without one.",
		Subcommands: []*cli.Command{
			{
				Name: "up", Usage: "take the address here and announce it", Flags: vipFlags(),
				Action: func(c *cli.Context) error {
					v, err := openVIP(c)
					if err != nil {
						return err
					}
					if err := v.Acquire(c.Context); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%s held on %s\n", v.Placement().Prefix, v.Placement().Interface)
					return nil
				},
			},
			{
				Name: "down", Usage: "release the address here (absent already: nothing to do)", Flags: vipFlags(),
				Action: func(c *cli.Context) error {
					v, err := openVIP(c)
					if err != nil {
						return err
					}
					return v.Release()
				},
			},
			{
				Name: "status", Usage: "say whether this host holds the address (exit 0 held, 3 not held, 1 cannot tell)", Flags: vipFlags(),
				Action: func(c *cli.Context) error {
					v, err := openVIP(c)
					if err != nil {
						return err
					}
					st, err := v.Held()
					fmt.Fprintf(c.App.Writer, "%s on %s: %s\n", v.Placement().Prefix, v.Placement().Interface, st)
					switch st {
					case vip.NotHeld:
						return cli.Exit("", exitNotHeld)
					case vip.Unknown:
						return err
					}
					return nil
				},
			},
			vipRunCommand(),
		},
	}
}

func vipRunCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "hold the address while a condition holds; release it on every way out",
		Description: "Looks every --every: takes the address when the condition holds, releases it when it\n" +
			"does not or cannot be told, and on SIGTERM, SIGINT or any error. Conditions:\n" +
			"  primary  the PostgreSQL reached with --pg is a writable primary.\n" +
			"WARNING: without fencing this is not safe. A primary host that hangs (or is cut off) and\n" +
			"comes back still holds the address and still believes it is primary: two hosts then answer\n" +
			"for it. Use it with a cluster manager that fences, or with the pooler's quorum.\n" +
			"Under systemd (Type=notify) it reports READY and STATUS and, with WatchdogSec=, WATCHDOG.",
		Flags: fromEnvironment("RAMPART_VIP_", append(vipFlags(),
			&cli.StringFlag{Name: "when", Required: true, Usage: "`CONDITION`: primary"},
			&cli.StringFlag{Name: "pg", Value: "host=/run/postgresql port=5432 user=postgres dbname=postgres connect_timeout=2",
				Usage: "`CONNINFO` of the local PostgreSQL (run as its OS user for peer authentication, with CAP_NET_ADMIN and CAP_NET_RAW)"},
			&cli.DurationFlag{Name: "every", Value: time.Second, Usage: "between looks"},
			&cli.DurationFlag{Name: "reannounce", Usage: "a burst this often while held (0: never)"},
		)),
		Action: func(c *cli.Context) error {
			if c.String("when") != "primary" {
				return cli.Exit(fmt.Sprintf("--when %q: the condition known is primary", c.String("when")), 2)
			}
			pgCfg, err := pgx.ParseConfig(c.String("pg"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("--pg: %v", err), 2)
			}
			v, err := openVIP(c)
			if err != nil {
				return err
			}
			log := newLogger(c.App.ErrWriter, c.Bool("verbose"))
			log.Warn("holding the address while PostgreSQL is a writable primary: without fencing, a primary that hangs and comes back holds it beside the new one")
			err = v.Hold(c.Context, primaryCondition(pgCfg), vip.HoldOptions{
				Every: c.Duration("every"), Reannounce: c.Duration("reannounce"),
				Report: systemdReport(log), Alive: systemdAlive(log),
			})
			if errors.Is(err, context.Canceled) {
				return nil // SIGTERM or SIGINT: released, a clean stop
			}
			return err
		},
	}
}

// primaryCondition asks the PostgreSQL at cfg whether it is a writable
// primary, on a fresh connection each time (a held one would hide a
// restart behind a pooled answer).
func primaryCondition(cfg *pgx.ConnConfig) vip.Condition {
	return func(ctx context.Context) (bool, string, error) {
		conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
		if err != nil {
			return false, "", fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return pg.WritablePrimary(ctx, conn)
	}
}

// systemdReport tells systemd READY after the first look and STATUS on
// every change (no-ops outside systemd).
func systemdReport(log *slog.Logger) func(string, bool) {
	return func(status string, first bool) {
		state := "STATUS=" + status
		if first {
			state = daemon.SdNotifyReady + "\n" + state
		}
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
}

// systemdAlive pets systemd's watchdog when WatchdogSec= is set.
func systemdAlive(log *slog.Logger) func() {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return nil
	}
	return func() {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
			log.Warn("sd_notify WATCHDOG", "err", err)
		}
	}
}

// fromEnvironment lets each flag come from the variable PREFIX+NAME too
// (--repeat-after from RAMPART_VIP_REPEAT_AFTER): the systemd unit reads
// them from its EnvironmentFile. A flag on the command line wins.
func fromEnvironment(prefix string, flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Names()[0], "-", "_"))
		switch f := f.(type) {
		case *cli.StringFlag:
			f.EnvVars = []string{name}
		case *cli.IntFlag:
			f.EnvVars = []string{name}
		case *cli.DurationFlag:
			f.EnvVars = []string{name}
		case *cli.BoolFlag:
			f.EnvVars = []string{name}
		default:
			panic(fmt.Sprintf("fromEnvironment: flag %s of type %T", name, f))
		}
	}
	return flags
}

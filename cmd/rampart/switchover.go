package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

func switchoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "switchover",
		Usage: "planned primary change to a synchronous standby, through Pacemaker, losing no commit; with the poolers holding, clients see a pause, not an error",
		Description: "Checks that the cluster is healthy and that --to is a synchronous standby on the\n" +
			"primary's timeline (so it has every acknowledged commit). A --to that streams\n" +
			"asynchronously (an old primary after rampart rejoin: a failback) is first made the\n" +
			"synchronous standby: the primary is asked to prefer it, and the switchover waits until it\n" +
			"is. Then every pooler named with --pooler holds: running transactions finish (within\n" +
			"--hold-timeout, else everything resumes and nothing changes), new ones wait. The\n" +
			"promoted role moves with a Pacemaker move constraint; once the new primary is promoted\n" +
			"with everything the old one had when the poolers held, the poolers resume onto it. Then\n" +
			"it waits until the old primary streams from the new one and clears the constraint.\n" +
			"Refuses, changing nothing, when any check fails; --ignore NODE sets aside the problems of\n" +
			"a node that cannot affect the target (a dead third node), each named in the output.\n" +
			"Run it on a database node, as root. The poolers' console password comes from ~/.pgpass.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Required: true, Usage: "the `NODE` to promote"},
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up (and clear the constraint) after this long"},
			&cli.StringSliceFlag{Name: "pooler", Usage: "a pooler's console `URI` to hold during the move (postgres://ADMIN@HOST:6432/rampart); repeat for a pair (default: this host's pooler.ini, if any)"},
			&cli.StringFlag{Name: "pooler-config", Value: "/etc/rampart/pooler.ini", Usage: "where the local pooler's configuration is, for --pooler's default"},
			&cli.DurationFlag{Name: "hold-timeout", Value: 10 * time.Second, Usage: "how long the poolers wait for running transactions before the switchover is refused"},
			&cli.StringSliceFlag{Name: "ignore", Usage: "set aside the problems of `NODE` (repeat)"},
		},
		Action: func(c *cli.Context) error {
			log := newLogger(c.App.ErrWriter, false)
			uris := c.StringSlice("pooler")
			if len(uris) == 0 {
				uris = localConsole(c.String("pooler-config"))
			}
			var consoles []ops.Console
			for _, u := range uris {
				pc, err := newPoolerConsole(u)
				if err != nil {
					return cli.Exit("switchover: --pooler "+u+": "+err.Error(), 2)
				}
				consoles = append(consoles, pc)
			}
			seams := ops.SwitchoverSeams{Run: pacemaker.Local, Look: clusterLook(c), History: nodeHistory, Poolers: consoles}
			opts := ops.SwitchoverOptions{Target: c.String("to"), Ignore: c.StringSlice("ignore"),
				Timeout: c.Duration("timeout"), HoldTimeout: c.Duration("hold-timeout")}
			took, err := ops.Switchover(c.Context, seams, opts, log)
			if err != nil {
				return refusedExit("switchover", err)
			}
			fmt.Fprintf(c.App.Writer, "switchover to %s done in %s\n", c.String("to"), took.Round(10*time.Millisecond))
			return nil
		},
	}
}

// nodeHistory asks node's PostgreSQL for its timeline and position over a
// replication connection, as the agent does: the resource's repuser, the
// node's address from node_hosts, and the system user's ~/.pgpass.
func nodeHistory(ctx context.Context, v ops.View, node string) (pg.History, error) {
	extra, err := pg.ParseConninfo(v.Params.String("conninfo_opts"))
	if err != nil {
		return pg.History{}, fmt.Errorf("conninfo_opts: %w", err)
	}
	if _, ok := extra["passfile"]; !ok {
		if u, err := user.Lookup(v.Params.String("system_user")); err == nil {
			extra["passfile"] = filepath.Join(u.HomeDir, ".pgpass")
		}
	}
	ci := pgsql.PrimaryConninfo("rampart-switchover", node, v.Port, v.Params.String("repuser"), v.Hosts, extra)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pg.ReadHistory(ctx, ci)
}

// localConsole is the console of this host's pooler, if it has one: its
// port on 127.0.0.1, as its first admin user.
func localConsole(path string) []string {
	cfg, ok := localPoolerConfig(path)
	if !ok || len(cfg.AdminUsers) == 0 {
		return nil
	}
	u := url.URL{Scheme: "postgres", User: url.User(cfg.AdminUsers[0]), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ListenPort)), Path: "/rampart"}
	return []string{u.String()}
}

// poolerConsole is a session on a pooler's console (ops.Console).
type poolerConsole struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn
}

func newPoolerConsole(uri string) (*poolerConsole, error) {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, err
	}
	if cfg.Database != "rampart" && cfg.Database != "pgbouncer" {
		return nil, fmt.Errorf("the console's database is rampart (or pgbouncer), not %q", cfg.Database)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.ConnectTimeout = 5 * time.Second
	return &poolerConsole{cfg: cfg}, nil
}

func (p *poolerConsole) Name() string {
	return net.JoinHostPort(p.cfg.Host, strconv.Itoa(int(p.cfg.Port)))
}

func (p *poolerConsole) Hold(ctx context.Context, limit time.Duration) error {
	// A pooler that hangs (its host frozen) must not hold the switchover.
	ctx, cancel := context.WithTimeout(ctx, limit+p.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		return err
	}
	p.conn = conn
	_, err = conn.Exec(ctx, "HOLD "+limit.String())
	return err
}

func (p *poolerConsole) Resume(ctx context.Context) error {
	if p.conn == nil {
		return errors.New("no console session")
	}
	_, err := p.conn.Exec(ctx, "RESUME")
	return err
}

func (p *poolerConsole) Close() {
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

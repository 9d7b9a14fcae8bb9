package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ra/pg"
)

// poolCommand talks to a running pooler's console: the same commands as
// `psql -d rampart`, without psql.
func poolCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "the pooler's `HOST`"},
		&cli.IntFlag{Name: "port", Value: 6432, Usage: "the pooler's `PORT`"},
		&cli.StringFlag{Name: "user", Aliases: []string{"U"}, EnvVars: []string{"PGUSER"}, Usage: "an admin_users `NAME` (password from PGPASSWORD or ~/.pgpass)"},
	}
	console := func(verb string, args string) *cli.Command {
		return &cli.Command{
			Name: strings.ToLower(verb), Usage: consoleUsage[verb], ArgsUsage: args, Flags: flags,
			Action: func(c *cli.Context) error {
				want := 0
				if args != "" {
					want = 1
				}
				if c.NArg() != want {
					return cli.Exit(fmt.Sprintf("usage: rampart pool %s %s", strings.ToLower(verb), args), 2)
				}
				return runConsole(c, strings.TrimSpace(verb+" "+c.Args().First()))
			},
		}
	}
	return &cli.Command{
		Name:  "pool",
		Usage: "drive a running rampart pooler through its console (database rampart)",
		Subcommands: []*cli.Command{
			console("SHOW", "NODES|POOLS|SERVERS|CLIENTS|STATS|CONFIG|WATCHDOG"),
			{
				Name: "status", Usage: "the pooler pair: members, leader, quorum, last heartbeats (SHOW WATCHDOG)", Flags: flags,
				Action: func(c *cli.Context) error { return runConsole(c, "SHOW WATCHDOG") },
			},
			console("DRAIN", "NODE"), console("DETACH", "NODE"), console("ATTACH", "NODE"),
			console("PAUSE", ""), console("RESUME", ""), console("RELOAD", ""),
		},
	}
}

var consoleUsage = map[string]string{
	"SHOW":   "show the pooler's nodes, pools, server connections, clients, statistics or configuration",
	"DRAIN":  "send no new transaction to a node; running ones finish",
	"DETACH": "drain a node and wait until nothing runs there; it stays out until attach",
	"ATTACH": "put a drained or detached node back in rotation",
	"PAUSE":  "hold new transactions until resume",
	"RESUME": "let held transactions go on",
	"RELOAD": "re-read the configuration file (a bad one changes nothing)",
}

func runConsole(c *cli.Context, command string) error {
	ci := pg.Conninfo{"host": c.String("host"), "port": strconv.Itoa(c.Int("port")), "dbname": "rampart", "sslmode": "prefer"}
	if u := c.String("user"); u != "" {
		ci["user"] = u // before parsing: ~/.pgpass is looked up for it
	}
	cfg, err := pgx.ParseConfig(ci.String())
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(c.Context, cfg)
	if err != nil {
		return fmt.Errorf("pooler console at %s:%d: %w", c.String("host"), c.Int("port"), err)
	}
	defer conn.Close(c.Context)
	rows, err := conn.Query(c.Context, command)
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	defer rows.Close()
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	var names []string
	for _, f := range rows.FieldDescriptions() {
		names = append(names, strings.ToUpper(f.Name))
	}
	if len(names) > 0 {
		fmt.Fprintln(w, strings.Join(names, "\t"))
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		var cells []string
		for _, v := range vals {
			cells = append(cells, fmt.Sprint(v))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	if len(names) == 0 {
		fmt.Fprintf(w, "%s: done\n", command)
	}
	return w.Flush()
}

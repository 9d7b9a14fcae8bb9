package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/pooler"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// exitProblems is `rampart status`'s answer "problems found" (1 stays
// "could not tell").
const exitProblems = 2

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "the cluster in one view: nodes, roles, timelines, LSNs and lag, sync set, addresses, poolers, and what is wrong",
		Description: "Run on a database node (it reads Pacemaker: crm_mon, the CIB and the agent's node\n" +
			"attributes) or anywhere with --pooler. Positions are as each node's agent last reported\n" +
			"them (every monitor, a few seconds). Exit 0: no problem; 2: problems listed; 1: nothing\n" +
			"could be read. --json prints the same view for scripts.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resource", Usage: "the ocf:rampart:pgsql `PRIMITIVE` (default: the cluster's only one)"},
			&cli.StringSliceFlag{Name: "pooler", Usage: "a pooler's http_listen `URL` (http://HOST:PORT); repeat for a pair (default: the local pooler.ini's)"},
			&cli.StringFlag{Name: "pooler-config", Value: "/etc/rampart/pooler.ini", Usage: "where the local pooler's configuration is, for --pooler's default"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			poolers := c.StringSlice("pooler")
			if len(poolers) == 0 {
				poolers = localPooler(c.String("pooler-config"))
			}
			client := &http.Client{Timeout: 3 * time.Second}
			o := ops.Gather(c.Context, pacemaker.Local, client, poolers, c.String("resource"), time.Now)
			v := ops.Assemble(o)
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else if err := v.Format(c.App.Writer); err != nil {
				return err
			}
			answered := slices.ContainsFunc(o.Poolers, func(p ops.PoolerView) bool { return p.Error == "" })
			switch {
			case o.Cluster == nil && !answered:
				return cli.Exit("status: neither Pacemaker nor a pooler could be read here", 1)
			case !v.Healthy:
				return cli.Exit("", exitProblems)
			}
			return nil
		},
	}
}

// localPoolerConfig is this host's pooler configuration, if it has a
// readable one.
func localPoolerConfig(path string) (pooler.Config, bool) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return pooler.Config{}, false
	}
	cfg, err := pooler.LoadConfig(path)
	return cfg, err == nil
}

// localPooler is the http_listen of this host's pooler, if it has one.
func localPooler(path string) []string {
	cfg, ok := localPoolerConfig(path)
	if !ok || cfg.HTTPListen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(cfg.HTTPListen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "" || host == "*" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return []string{"http://" + net.JoinHostPort(host, port)}
}

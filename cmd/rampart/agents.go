package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/fence"
	"github.com/rampart-ha/rampart/fence/ipmi"
	"github.com/rampart-ha/rampart/ra/pgsql"
	"github.com/rampart-ha/rampart/ra/vip"
)

// fenceAgents are the fence agents the binary runs by their names
// (/usr/sbin/fence_rampart_ipmi a link to it).
var fenceAgents = map[string]func() *fence.Agent{
	ipmi.Name: ipmi.New,
}

// agentMains runs each agent of ra.Agents (a test checks they match).
var agentMains = map[string]func(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int{
	"pgsql": pgsql.Main,
	"vip":   vip.Main,
}

// agentMain runs the agent named by the program's name (a link such as
// /usr/lib/ocf/resource.d/rampart/pgsql to this binary); ok is false when
// the name is no agent's.
func agentMain(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	name := filepath.Base(args[0])
	if newAgent, ok := fenceAgents[name]; ok {
		// Pacemaker's fencer passes options on stdin and reads stderr.
		return newAgent().Run(ctx, args[1:], os.Stdin, stdout, stderr, newLogger(stderr, true)), true
	}
	run, ok := agentMains[name]
	if !ok {
		return 0, false
	}
	environ := os.Environ()
	return run(ctx, args, environ, stdout, stderr, agentLogger(filepath.Base(args[0]), environ, stderr)), true
}

// Where Pacemaker looks for agents: OCF agents of provider rampart, and
// fence agents (the fencer runs /usr/sbin/fence_*).
const (
	ocfProviderDir = "/usr/lib/ocf/resource.d/rampart"
	fenceAgentDir  = "/usr/sbin"
)

// agentLink is one agent the binary runs when called by a link's name.
type agentLink struct {
	Agent string // as Pacemaker names it: ocf:rampart:pgsql, fence_rampart_ipmi
	Path  string // where the packages put the link to the binary
}

// agentLinks lists the links the dispatch table answers to, in a stable
// order: the one list the packages follow.
func agentLinks() []agentLink {
	var links []agentLink
	for _, name := range slices.Sorted(maps.Keys(agentMains)) {
		links = append(links, agentLink{"ocf:rampart:" + name, path.Join(ocfProviderDir, name)})
	}
	for _, name := range slices.Sorted(maps.Keys(fenceAgents)) {
		links = append(links, agentLink{name, path.Join(fenceAgentDir, name)})
	}
	return links
}

func agentsCommand() *cli.Command {
	return &cli.Command{
		Name:  "agents",
		Usage: "list the agents this binary provides and where their links go; --check that they are installed",
		Description: "Each agent is this binary called by another name: Pacemaker runs\n" +
			"/usr/lib/ocf/resource.d/rampart/NAME as ocf:rampart:NAME, and its fencer runs /usr/sbin/fence_*.\n" +
			"The packages install exactly these links.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "exit 1 unless every link exists and leads to this binary"},
			// make packages appends these entries to packaging/nfpm.yaml.
			&cli.BoolFlag{Name: "nfpm", Hidden: true, Usage: "print nfpm contents entries for the links"},
		},
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			links := agentLinks()
			if c.Bool("nfpm") {
				for _, l := range links {
					target, err := filepath.Rel(filepath.Dir(l.Path), "/usr/bin/rampart")
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "  - src: %s\n    dst: %s\n    type: symlink\n", target, l.Path)
				}
				return nil
			}
			if !c.Bool("check") {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "AGENT\tLINK")
				for _, l := range links {
					fmt.Fprintf(tw, "%s\t%s\n", l.Agent, l.Path)
				}
				return tw.Flush()
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("agents --check: %w", err)
			}
			var bad []string
			for _, l := range links {
				if same, err := sameFile(l.Path, self); err != nil || !same {
					reason := fmt.Sprintf("leads elsewhere than %s", self)
					if err != nil {
						reason = err.Error()
					}
					bad = append(bad, fmt.Sprintf("%s: %s", l.Agent, reason))
					continue
				}
				fmt.Fprintf(w, "%s: %s ok\n", l.Agent, l.Path)
			}
			if len(bad) > 0 {
				return cli.Exit(fmt.Sprintf("agents not installed: %s\n(install the rampart package, or link each path to %s)", strings.Join(bad, "; "), self), 1)
			}
			return nil
		},
	}
}

// sameFile says whether path leads to the file at target.
func sameFile(path, target string) (bool, error) {
	a, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	b, err := os.Stat(target)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

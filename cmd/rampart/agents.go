package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"

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

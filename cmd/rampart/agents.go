package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rampart-ha/rampart/ra/pgsql"
	"github.com/rampart-ha/rampart/ra/vip"
)

// agentMains runs each agent of ra.Agents (a test checks they match).
var agentMains = map[string]func(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int{
	"pgsql": pgsql.Main,
	"vip":   vip.Main,
}

// agentMain runs the agent named by the program's name (a link such as
// /usr/lib/ocf/resource.d/rampart/pgsql to this binary); ok is false when
// the name is no agent's.
func agentMain(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	run, ok := agentMains[filepath.Base(args[0])]
	if !ok {
		return 0, false
	}
	environ := os.Environ()
	return run(ctx, args, environ, stdout, stderr, agentLogger(filepath.Base(args[0]), environ, stderr)), true
}

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/rampart-ha/rampart/ra/pgsql"
)

// agentMain runs the agent named by the program's name (a link such as
// /usr/lib/ocf/resource.d/rampart/pgsql to this binary); ok is false when
// the name is no agent's.
func agentMain(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	switch filepath.Base(args[0]) {
	case "pgsql":
		// Pacemaker records an agent's stderr in its log.
		return pgsql.Main(ctx, args, os.Environ(), stdout, stderr, newLogger(stderr, false)), true
	}
	return 0, false
}

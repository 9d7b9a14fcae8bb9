package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if code, ok := agentMain(ctx, os.Args, os.Stdout, os.Stderr); ok {
		stop()
		os.Exit(code)
	}
	err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode is the one place where errors become exit codes.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	// An exit code alone (status's "problems found") says nothing more.
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "rampart:", msg)
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// newApp builds the command tree; nothing here runs at import time.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "rampart",
		Usage: "PostgreSQL high availability with Pacemaker: agents, VIP, fencing, pooler, lab",
		Description: "rampart keeps a PostgreSQL streaming-replication cluster writable, consistent and\n" +
			"reachable through host failures. Start with `rampart lab up` to build a test cluster\n" +
			"on this machine, or see `rampart COMMAND --help`.",
		Version:         version,
		HideVersion:     false,
		Writer:          stdout,
		ErrWriter:       stderr,
		Suggest:         true,
		HideHelpCommand: true,
		// Return errors to main instead of exiting inside Run.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			versionCommand(),
			statusCommand(),
			switchoverCommand(),
			failoverCommand(),
			rejoinCommand(),
			backupCommand(),
			labCommand(),
			vipCommand(),
			poolerCommand(),
			witnessCommand(),
			poolCommand(),
			agentsCommand(),
			manCommand(),
		},
	}
}

// newLogger writes progress and decisions to w as text.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		// People read this as progress; elapsed times say more than clock times.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

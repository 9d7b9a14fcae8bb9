package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// clusterLook gathers a fresh view of the cluster from this database node
// (the operator commands' --resource flag names the agent's primitive).
func clusterLook(c *cli.Context) func(context.Context) ops.View {
	return func(ctx context.Context) ops.View {
		return ops.Assemble(ops.Gather(ctx, pacemaker.Local, http.DefaultClient, nil, c.String("resource"), time.Now))
	}
}

// refusedExit turns an operator command's refusal into exit 1 with its
// reason; other errors stay errors.
func refusedExit(what string, err error) error {
	var r *ops.Refusal
	if errors.As(err, &r) {
		return cli.Exit(what+" refused: "+r.Reason, 1)
	}
	return err
}

package ops

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// CheckRejoin says whether node may be rejoined in view v: it must not be
// the primary, and another node must be.
func CheckRejoin(v View, node string) error {
	if v.Pacemaker == nil {
		return refuse("no Pacemaker cluster seen from here: run rejoin on the old primary's host, as root")
	}
	i := slices.IndexFunc(v.Nodes, func(n NodeView) bool { return n.Name == node })
	if i < 0 {
		return refuse("this host (%s) is not a node of the cluster", node)
	}
	switch {
	case v.Nodes[i].Role == "failed-primary":
		return refuse("Pacemaker is still recovering the failed primary on %s (demote, stop): run rejoin again once crm_mon shows it stopped", node)
	case v.Primary == node:
		return refuse("this host (%s) is the current primary: rejoin is for a failed old primary", node)
	case v.Primary == "":
		return refuse("no node is primary now: there is nothing to rejoin to (Pacemaker promotes a standby first)")
	}
	if ok, state := Streams(v, node); ok {
		return refuse("%s streams from %s already (%s): nothing to rejoin", node, v.Primary, state)
	}
	return nil
}

// AgentEnviron is the environment Pacemaker would give the agent for
// resource rsc with params on node: what `rampart rejoin` runs it with.
func AgentEnviron(rsc, node string, params map[string]string, timeout time.Duration) []string {
	env := []string{
		"OCF_ROOT=/usr/lib/ocf", "OCF_RA_VERSION_MAJOR=1", "OCF_RA_VERSION_MINOR=1",
		"OCF_RESOURCE_INSTANCE=" + rsc, "OCF_RESOURCE_PROVIDER=rampart", "OCF_RESOURCE_TYPE=pgsql",
		"OCF_RESKEY_CRM_meta_on_node=" + node,
		"OCF_RESKEY_CRM_meta_timeout=" + strconv.FormatInt(timeout.Milliseconds(), 10),
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		env = append(env, "OCF_RESKEY_"+k+"="+params[k])
	}
	return env
}

// Rejoin makes this host's failed old primary a standby of the current
// primary: the agent's own rejoin (pg_rewind, else a fresh base backup,
// the old directory kept), then a resource cleanup so that Pacemaker
// starts it, then waiting until it streams. runAgent runs the agent's
// rejoin action with an environment and returns its exit code.
func Rejoin(ctx context.Context, run pacemaker.Runner, gather func(context.Context) Observed, runAgent func(ctx context.Context, environ []string) int,
	timeout time.Duration, log *slog.Logger) (time.Duration, error) {
	node, err := pacemaker.LocalNode(ctx, run)
	if err != nil {
		return 0, fmt.Errorf("rejoin: which node is this: %w", err)
	}
	// A node that just came back is probed, and a crashed primary found
	// there is demoted and stopped: the rewind must not run beside that.
	settle := time.Now()
	log.Info("rejoin: waiting until Pacemaker has nothing left to do", "node", node)
	if out, err := run(ctx, "crm_resource", "--wait", "--timeout", strconv.Itoa(int(timeout.Seconds()))+"s"); err != nil {
		return 0, fmt.Errorf("rejoin %s: Pacemaker did not settle within %s (%w: %s); see crm_mon", node, timeout, err, out)
	}
	if d := time.Since(settle); d > time.Second {
		log.Info("rejoin: Pacemaker settled", "took", d.Round(100*time.Millisecond))
	}
	o := gather(ctx)
	v := Assemble(o)
	if err := CheckRejoin(v, node); err != nil {
		return 0, err
	}
	start := time.Now()
	log.Info("rejoin: rewinding (or re-cloning) from the primary", "node", node, "primary", v.Primary)
	if code := runAgent(ctx, AgentEnviron(v.Resource, node, o.Params[v.Resource], timeout)); code != 0 {
		return 0, fmt.Errorf("rejoin %s: the agent's rejoin failed (exit %d; its reason is above)", node, code)
	}
	log.Info("rejoin: data directory ready; Pacemaker starts it as a standby", "took", time.Since(start).Round(100*time.Millisecond))
	if _, err := run(ctx, "crm_resource", "--cleanup", "--resource", v.Resource, "--node", node); err != nil {
		return 0, fmt.Errorf("rejoin %s: crm_resource --cleanup: %w", node, err)
	}
	look := func(ctx context.Context) View { return Assemble(gather(ctx)) }
	state, err := waitView(ctx, timeout, look, func(v View) (bool, string) { return rejoinStreams(v, node) }, "rejoin: "+node+" to stream", log)
	if err != nil {
		return time.Since(start), fmt.Errorf("rejoin %s: rewound, but not streaming after %s (last: %s); see rampart status and crm_mon", node, timeout, state)
	}
	log.Info("rejoin done", "node", node, "state", state)
	return time.Since(start), nil
}

// rejoinStreams is Streams, with the failed actions Pacemaker shows on node
// in the state: a start that keeps failing says why in the progress lines
// and in the error, not only in crm_mon.
func rejoinStreams(v View, node string) (bool, string) {
	ok, state := Streams(v, node)
	for _, f := range v.Failures {
		if f.Node == node {
			state += fmt.Sprintf("; failed %s (exit %d): %s", f.Op, f.Exit, f.Reason)
		}
	}
	return ok, state
}

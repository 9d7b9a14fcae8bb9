package ops

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

// CheckFailover says whether target may be made the only holder of every
// acknowledged commit in view v, so that the agent's election promotes it,
// although the agent's record says it may miss some: no primary runs, none
// of the recorded holders runs, target runs as a standby, and the operator
// accepts the loss (accept). Everything else refuses, changing nothing.
func CheckFailover(v View, target string, accept bool) error {
	if v.Pacemaker == nil {
		return refuse("no Pacemaker cluster seen from here: run failover on a database node")
	}
	tn := v.node(target)
	running := func(n string) bool { return v.node(n).Role == "standby" || v.node(n).Role == "primary" }
	switch {
	case tn.Name == "":
		return refuse("%q is not a node of the cluster", target)
	case !v.Pacemaker.Quorate:
		return refuse("this node's partition has no quorum: nothing can be promoted from here")
	case v.Primary != "":
		return refuse("%s is the primary: for a planned change use rampart switchover --to %s", v.Primary, target)
	case v.asynchronous():
		return refuse("sync_count=0: the agent promotes the most advanced standby by itself; nothing to accept")
	case v.Synced == nil:
		return refuse("the agent has no record of who holds every acknowledged commit: it promotes the most advanced standby by itself")
	case tn.Role != "standby":
		return refuse("%s does not run as a standby (%s): Pacemaker can promote only a running standby", target, tn.Role)
	}
	holders := append([]string{v.Synced.Primary}, v.Synced.Standbys...)
	if slices.Contains(holders, target) {
		return refuse("%s holds every acknowledged commit by the agent's record: it is promoted without this (see crm_mon and the agent's log)", target)
	}
	if up := slices.DeleteFunc(slices.Clone(holders), func(n string) bool { return !running(n) }); len(up) > 0 {
		return refuse("%s runs and holds every acknowledged commit: the agent promotes it, not %s", strings.Join(up, ", "), target)
	}
	if !accept {
		return refuse("by the agent's record only %s (timeline %d) %s every acknowledged commit; promoting %s loses those it lacks. "+
			"Bring one of them back if you can; to go ahead, add --accept-data-loss", strings.Join(holders, " and "), v.Synced.Timeline,
			map[bool]string{true: "holds", false: "hold"}[len(holders) == 1], target)
	}
	return nil
}

// Failover makes target the only node the agent's election may promote
// (CheckFailover first), clears its own promotion score so that it
// volunteers, and waits until Pacemaker has promoted it.
func Failover(ctx context.Context, run pacemaker.Runner, look func(context.Context) View, target string, accept bool, timeout time.Duration, log *slog.Logger) (time.Duration, error) {
	v := look(ctx)
	if err := CheckFailover(v, target, accept); err != nil {
		return 0, err
	}
	start := time.Now()
	record := pgsql.SyncedSet{Timeline: max(v.Synced.Timeline, v.node(target).Timeline), Primary: target}
	log.Warn("failover: accepting the loss of commits only these had", "holders", append([]string{v.Synced.Primary}, v.Synced.Standbys...), "to", target)
	if err := pacemaker.SetProperty(ctx, run, pgsql.SyncedPropertySet, pgsql.SyncedAttr(v.Resource), record.String()); err != nil {
		return 0, fmt.Errorf("failover to %s: %w", target, err)
	}
	if err := pacemaker.DeletePromotionScore(ctx, run, v.Resource, target); err != nil {
		return 0, fmt.Errorf("failover to %s: %w", target, err)
	}
	state, err := waitView(ctx, timeout, look, func(v View) (bool, string) {
		return v.Primary == target, "primary " + orNone(v.Primary)
	}, "failover", log)
	if err != nil {
		return time.Since(start), fmt.Errorf("failover to %s: not promoted after %s (last seen: %s); see rampart status and crm_mon", target, timeout, state)
	}
	return time.Since(start), nil
}

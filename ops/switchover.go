package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Refusal is a reason not to act; the command exits 1 with it.
type Refusal struct {
	Reason string
	// Settling: the reason may be a report the next monitor replaces
	// (a standby that follows a new primary reports the new timeline
	// only at its next monitor), so looking again may clear it.
	Settling bool
}

func (r *Refusal) Error() string { return r.Reason }

func refuse(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// CheckSwitchover says whether a planned switchover to target is safe in
// view v: a healthy cluster, one primary, and a target on the primary's
// timeline that is a synchronous standby (so it has every acknowledged
// commit) and within the lag limit. Under asynchronous replication
// (sync_count=0) no standby is synchronous: the target must then stream
// and be the most advanced standby, the one the agent's own promotion
// check accepts.
func CheckSwitchover(v View, target string) error {
	if v.Pacemaker == nil {
		return refuse("no Pacemaker cluster seen from here: run switchover on a database node")
	}
	var tn *NodeView
	var names []string
	for i, n := range v.Nodes {
		names = append(names, n.Name)
		if n.Name == target {
			tn = &v.Nodes[i]
		}
	}
	switch {
	case tn == nil:
		return refuse("%q is not a node of the cluster (nodes: %s)", target, strings.Join(names, ", "))
	case v.Primary == "":
		return refuse("there is no primary to switch over from: %s", strings.Join(v.Problems, "; "))
	case target == v.Primary:
		return refuse("%s is the primary already", target)
	case len(v.Problems) > 0:
		return refuse("the cluster is not healthy; fix this first (rampart status):\n  - %s", strings.Join(v.Problems, "\n  - "))
	case v.SyncCount == nil:
		return refuse("sync_count of %s is unknown: rampart status says why", v.Resource)
	case v.asynchronous():
		return checkAsyncTarget(v, *tn)
	case tn.State != "sync":
		return refuse("%s is not a synchronous standby (state %s): only a synchronous standby is known to have every acknowledged commit; "+
			"choose one of %s, or raise sync_count", target, orDash(tn.State), strings.Join(syncStandbys(v), ", "))
	}
	return checkTimeline(v, *tn)
}

// checkTimeline: the target must be on the primary's timeline. A
// streaming standby's report of an older one is settling: the primary
// counts it as streaming now, and its monitor reports the new timeline
// at its next run.
func checkTimeline(v View, tn NodeView) error {
	primary := v.node(v.Primary)
	if tn.Timeline == primary.Timeline {
		return nil
	}
	return &Refusal{
		Reason:   fmt.Sprintf("%s is on timeline %d, the primary %s on %d", tn.Name, tn.Timeline, v.Primary, primary.Timeline),
		Settling: streaming(tn.State) && tn.Timeline < primary.Timeline,
	}
}

// checkAsyncTarget: under sync_count=0 the target must stream on the
// primary's timeline and no streaming standby may be ahead of it.
func checkAsyncTarget(v View, tn NodeView) error {
	primary := v.node(v.Primary)
	if !streaming(tn.State) {
		return refuse("%s does not stream from %s (state %s)", tn.Name, v.Primary, orDash(tn.State))
	}
	if err := checkTimeline(v, tn); err != nil {
		return err
	}
	at, err := pg.ParseLSN(tn.LSN)
	if err != nil {
		return refuse("%s has reported no position", tn.Name)
	}
	for _, n := range v.Nodes {
		if n.Name == tn.Name || n.Role != "standby" || !streaming(n.State) || n.Timeline != primary.Timeline {
			continue
		}
		if lsn, err := pg.ParseLSN(n.LSN); err == nil && lsn > at {
			return refuse("%s is ahead of %s (%s at %s, %s at %s): under asynchronous replication (sync_count=0) no standby has every "+
				"acknowledged commit, and the agent promotes only the most advanced; choose %s (positions are a few seconds old: "+
				"under load, look again)", n.Name, tn.Name, n.Name, n.LSN, tn.Name, tn.LSN, n.Name)
		}
	}
	return nil
}

// node returns the view of node name (zero if absent).
func (v View) node(name string) NodeView {
	for _, n := range v.Nodes {
		if n.Name == name {
			return n
		}
	}
	return NodeView{}
}

func syncStandbys(v View) []string {
	var out []string
	for _, n := range v.Nodes {
		if n.State == "sync" {
			out = append(out, n.Name)
		}
	}
	if len(out) == 0 {
		return []string{"(none now)"}
	}
	return out
}

// SwitchoverDone says whether view v shows the switchover to target
// finished: target is the only primary and the old primary streams from
// it (it was demoted, not stopped).
func SwitchoverDone(v View, target, old string) (bool, string) {
	if v.Primary != target {
		return false, fmt.Sprintf("primary %s", orNone(v.Primary))
	}
	ok, state := Streams(v, old)
	if ok {
		return true, fmt.Sprintf("%s promoted, %s streams from it (%s)", target, old, state)
	}
	return false, fmt.Sprintf("%s promoted, %s is %s", target, old, state)
}

// Switchover moves the primary role to target through Pacemaker: a
// promoted-role move constraint, then waiting until target is primary and
// the old primary streams from it, then clearing the constraint (also on
// failure). look gathers a fresh view. A settling refusal (a report the
// next monitor replaces) is looked at again for up to settleWait before
// it stands.
func Switchover(ctx context.Context, run pacemaker.Runner, look func(context.Context) View, target string, timeout time.Duration, log *slog.Logger) (time.Duration, error) {
	var v View
	var checked error
	_, _ = waitView(ctx, min(timeout, settleWait), look, func(seen View) (bool, string) {
		v, checked = seen, CheckSwitchover(seen, target)
		var r *Refusal
		if errors.As(checked, &r) && r.Settling {
			return false, r.Reason + " (the last report may predate the promotion: looking again)"
		}
		return true, ""
	}, "switchover check", log)
	if checked != nil {
		return 0, checked
	}
	clone := v.Clone
	if clone == "" {
		return 0, refuse("resource %s is not a promotable clone", v.Resource)
	}
	old := v.Primary
	start := time.Now()
	log.Info("switchover: moving the primary role", "from", old, "to", target, "clone", clone)
	if _, err := run(ctx, "crm_resource", "--resource", clone, "--move", "--promoted", "--node", target); err != nil {
		return 0, fmt.Errorf("switchover to %s: %w", target, err)
	}
	clear := func() error {
		// Not ctx: the constraint goes also when the wait was cut short.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := run(cctx, "crm_resource", "--resource", clone, "--clear"); err != nil {
			return fmt.Errorf("switchover: clear the move constraint (run crm_resource --resource %s --clear): %w", clone, err)
		}
		return nil
	}
	state, err := waitView(ctx, timeout, look, func(v View) (bool, string) { return SwitchoverDone(v, target, old) }, "switchover", log)
	took := time.Since(start)
	if err != nil {
		err = fmt.Errorf("switchover to %s: not done after %s (last seen: %s); see rampart status and crm_mon", target, timeout, state)
		return took, errors.Join(err, clear())
	}
	log.Info("switchover done", "state", state, "took", took.Round(10*time.Millisecond))
	return took, clear()
}

// settleWait bounds how long a switchover waits for a settling refusal
// to clear: a little more than the age at which a report counts as stale.
const settleWait = staleAfter + 5*time.Second

// waitView looks every half second until done says so or timeout passes,
// logging each new state (and every 5 s); it returns the last state.
func waitView(ctx context.Context, timeout time.Duration, look func(context.Context) View, done func(View) (bool, string), what string, log *slog.Logger) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, last, lastLog := time.Now(), "", time.Time{}
	for {
		ok, state := done(look(ctx))
		if ok {
			return state, nil
		}
		if state != last || time.Since(lastLog) > 5*time.Second {
			log.Info(what+": waiting", "state", state, "elapsed", time.Since(start).Round(100*time.Millisecond))
			last, lastLog = state, time.Now()
		}
		select {
		case <-ctx.Done():
			return state, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Streams says whether the primary's agent reports node streaming from it
// (as a synchronous, potential or asynchronous standby).
func Streams(v View, node string) (bool, string) {
	for _, n := range v.Nodes {
		if n.Name == node {
			return streaming(n.State), n.Role + "/" + orDash(n.State)
		}
	}
	return false, node + " not seen"
}

func streaming(state string) bool {
	return state == "sync" || state == "async" || state == "potential"
}

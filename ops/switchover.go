package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

// Refusal is a reason not to act; the command exits 1 with it.
type Refusal struct {
	Reason string
	// Settling: the reason may be a report the next monitor replaces
	// (a standby that follows a new primary reports the new timeline
	// only at its next monitor), so looking again may clear it.
	Settling bool
	// Asynchronous: the target streams on the primary's timeline but is
	// not a synchronous standby; the primary can be asked to make it one
	// (PreferredAttr), after which the check may pass.
	Asynchronous bool
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
	_, err := CheckSwitchoverIgnoring(v, target, nil)
	return err
}

// CheckSwitchoverIgnoring is CheckSwitchover with the problems of the nodes
// in ignore set aside (a dead third node cannot affect what the target
// holds); it returns the problems it set aside. The primary and the target
// cannot be ignored, nor can a problem of the cluster as a whole.
func CheckSwitchoverIgnoring(v View, target string, ignore []string) ([]string, error) {
	var ignored []string
	for _, n := range ignore {
		switch {
		case n == target:
			return nil, refuse("--ignore %s: it is the node to promote", n)
		case n == v.Primary:
			return nil, refuse("--ignore %s: it is the primary", n)
		case !slices.ContainsFunc(v.Nodes, func(nv NodeView) bool { return nv.Name == n }):
			return nil, refuse("--ignore %s: not a node of the cluster", n)
		}
		ignored = append(ignored, v.NodeProblems[n]...)
	}
	v.Problems = slices.DeleteFunc(slices.Clone(v.Problems), func(p string) bool { return slices.Contains(ignored, p) })
	return ignored, checkSwitchover(v, target)
}

func checkSwitchover(v View, target string) error {
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
		return &Refusal{
			Reason: fmt.Sprintf("%s is not a synchronous standby (state %s): only a synchronous standby is known to have every acknowledged commit; "+
				"choose one of %s, or raise sync_count", target, orDash(tn.State), strings.Join(syncStandbys(v), ", ")),
			Asynchronous: streaming(tn.State) && tn.Timeline == v.node(v.Primary).Timeline,
		}
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

// Console is one pooler's console as a switchover uses it.
type Console interface {
	Name() string
	// Hold makes the pooler hold new transactions and returns once
	// running ones finished; within limit, or it resumes and fails.
	Hold(ctx context.Context, limit time.Duration) error
	// Resume has the pooler look at the nodes again and let held
	// transactions go on.
	Resume(ctx context.Context) error
	// Close ends the console session (which releases a hold still in force).
	Close()
}

// SwitchoverSeams are what a switchover acts through.
type SwitchoverSeams struct {
	Run  pacemaker.Runner
	Look func(context.Context) View
	// History asks node's PostgreSQL for its timeline and WAL position
	// (a replication connection, as the agent's own checks make).
	History func(ctx context.Context, v View, node string) (pg.History, error)
	// Poolers are the consoles to hold during the move (none: clients of
	// the old primary get errors when it is demoted).
	Poolers []Console
}

// SwitchoverOptions are what the operator asked for.
type SwitchoverOptions struct {
	Target      string
	Ignore      []string      // nodes whose problems are set aside
	Timeout     time.Duration // for the move, and for making the target synchronous
	HoldTimeout time.Duration // for running transactions to finish when the poolers hold
}

// ResumeReady says whether the poolers may let clients go on after the
// primary moved to a node whose history is h: that node has left the old
// primary's timeline oldTL (it was promoted) at or after final, the old
// primary's WAL position once the poolers held: every commit a client of
// theirs saw acknowledged is on it.
func ResumeReady(h pg.History, oldTL uint32, final pg.LSN) (bool, string) {
	if h.Timeline <= oldTL {
		return false, fmt.Sprintf("still on timeline %d (not promoted yet)", h.Timeline)
	}
	at, ok := h.SwitchPoint(oldTL)
	switch {
	case !ok:
		return false, fmt.Sprintf("timeline %d does not descend from the old primary's %d", h.Timeline, oldTL)
	case at < final:
		return false, fmt.Sprintf("promoted at %s, before the old primary's last position %s: commits may be missing", at, final)
	}
	return true, fmt.Sprintf("promoted on timeline %d at %s, at or past the old primary's last position %s", h.Timeline, at, final)
}

// Switchover moves the primary role to o.Target through Pacemaker:
//
//  1. check (a settling refusal is looked at again for up to settleWait);
//     a target that streams asynchronously is first made synchronous by
//     asking the primary to prefer it (PreferredAttr);
//  2. the poolers hold: running transactions finish, new ones wait;
//  3. a promoted-role move constraint; once the target is promoted with
//     everything the old primary had when the poolers held, the poolers
//     resume onto it (clients saw a pause, not an error);
//  4. waiting until the old primary streams from the new one, then
//     clearing the constraint (also on failure) and the preference.
//
// A hold that cannot complete resumes everything and refuses, having
// changed nothing.
func Switchover(ctx context.Context, s SwitchoverSeams, o SwitchoverOptions, log *slog.Logger) (time.Duration, error) {
	v, err := checkSettled(ctx, s.Look, o, log)
	var r *Refusal
	preferred := false
	if errors.As(err, &r) && r.Asynchronous && v.Resource != "" {
		preferred = true
		if v, err = makeSynchronous(ctx, s, o, log); err != nil {
			return 0, errors.Join(err, unprefer(s.Run, v.Resource))
		}
	}
	if err != nil {
		return 0, err
	}
	defer func() {
		if preferred {
			if err := unprefer(s.Run, v.Resource); err != nil {
				log.Warn("switchover: "+err.Error(), "property", pgsql.PreferredAttr(v.Resource))
			}
		}
	}()
	clone := v.Clone
	if clone == "" {
		return 0, refuse("resource %s is not a promotable clone", v.Resource)
	}
	old, target := v.Primary, o.Target
	oldTL := v.node(old).Timeline
	start := time.Now()
	held, final, err := hold(ctx, s, v, old, o.HoldTimeout, log)
	if err != nil {
		return 0, err
	}
	resume := func() {
		for _, c := range held {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := c.Resume(rctx); err != nil {
				log.Warn("switchover: RESUME failed; closing the console session releases the hold", "pooler", c.Name(), "err", err)
			}
			cancel()
			c.Close()
		}
		if len(held) > 0 {
			log.Info("switchover: poolers resumed", "paused", time.Since(start).Round(time.Millisecond))
		}
		held = nil
	}
	defer resume()
	log.Info("switchover: moving the primary role", "from", old, "to", target, "clone", clone)
	if _, err := s.Run(ctx, "crm_resource", "--resource", clone, "--move", "--promoted", "--node", target); err != nil {
		return 0, fmt.Errorf("switchover to %s: %w", target, err)
	}
	clear := func() error {
		// Not ctx: the constraint goes also when the wait was cut short.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Run(cctx, "crm_resource", "--resource", clone, "--clear"); err != nil {
			return fmt.Errorf("switchover: clear the move constraint (run crm_resource --resource %s --clear): %w", clone, err)
		}
		return nil
	}
	if len(held) > 0 {
		// The target's history, every 100 ms: held clients wait on it.
		state, err := poll(ctx, o.Timeout, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
			h, err := s.History(ctx, v, target)
			if err != nil {
				return false, err.Error()
			}
			return ResumeReady(h, oldTL, final)
		}, "switchover: "+target+" promoted with everything", log)
		if err != nil {
			err = fmt.Errorf("switchover to %s: not promoted with the old primary's last position after %s (last seen: %s); "+
				"the poolers resume; see rampart status and crm_mon", target, o.Timeout, state)
			return time.Since(start), errors.Join(err, clear())
		}
		log.Info("switchover: "+state, "node", target)
		resume()
	}
	state, err := waitView(ctx, o.Timeout, s.Look, func(v View) (bool, string) { return SwitchoverDone(v, target, old) }, "switchover", log)
	took := time.Since(start)
	if err != nil {
		err = fmt.Errorf("switchover to %s: not done after %s (last seen: %s); see rampart status and crm_mon", target, o.Timeout, state)
		return took, errors.Join(err, clear())
	}
	log.Info("switchover done", "state", state, "took", took.Round(10*time.Millisecond))
	return took, clear()
}

// checkSettled looks until the switchover check passes or fails for a
// reason that is not settling (for up to settleWait), and says which
// problems it set aside.
func checkSettled(ctx context.Context, look func(context.Context) View, o SwitchoverOptions, log *slog.Logger) (View, error) {
	var v View
	var checked error
	var ignored []string
	_, _ = waitView(ctx, min(o.Timeout, settleWait), look, func(seen View) (bool, string) {
		v = seen
		ignored, checked = CheckSwitchoverIgnoring(seen, o.Target, o.Ignore)
		var r *Refusal
		if errors.As(checked, &r) && r.Settling {
			return false, r.Reason + " (the last report may predate the promotion: looking again)"
		}
		return true, ""
	}, "switchover check", log)
	for _, p := range ignored {
		log.Warn("switchover: ignored (--ignore): " + p)
	}
	return v, checked
}

// makeSynchronous asks the primary to prefer the target as synchronous
// standby and waits until the switchover check passes.
func makeSynchronous(ctx context.Context, s SwitchoverSeams, o SwitchoverOptions, log *slog.Logger) (View, error) {
	v := s.Look(ctx)
	log.Info("switchover: "+o.Target+" streams asynchronously; asking the primary to make it its synchronous standby",
		"property", pgsql.PreferredAttr(v.Resource))
	if err := pacemaker.SetProperty(ctx, s.Run, pgsql.SyncedPropertySet, pgsql.PreferredAttr(v.Resource), o.Target); err != nil {
		return v, fmt.Errorf("switchover: %w", err)
	}
	var checked error
	state, err := waitView(ctx, o.Timeout, s.Look, func(seen View) (bool, string) {
		v = seen
		_, checked = CheckSwitchoverIgnoring(seen, o.Target, o.Ignore)
		if checked == nil {
			return true, ""
		}
		return false, checked.Error()
	}, "switchover: "+o.Target+" to become synchronous", log)
	if err != nil {
		return v, refuse("%s did not become a synchronous standby within %s (last: %s); nothing was moved", o.Target, o.Timeout, state)
	}
	log.Info("switchover: " + o.Target + " is a synchronous standby")
	return v, nil
}

// unprefer removes the preference a switchover set.
func unprefer(run pacemaker.Runner, rsc string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pacemaker.DeleteProperty(ctx, run, pgsql.SyncedPropertySet, pgsql.PreferredAttr(rsc)); err != nil {
		return fmt.Errorf("remove the preferred synchronous standby (crm_attribute --type crm_config --name %s --delete): %w", pgsql.PreferredAttr(rsc), err)
	}
	return nil
}

// hold has every pooler hold, in parallel, and reads the old primary's
// WAL position once they all do. Any that fails makes all resume: nothing
// is held and nothing changed then.
func hold(ctx context.Context, s SwitchoverSeams, v View, old string, limit time.Duration, log *slog.Logger) ([]Console, pg.LSN, error) {
	if len(s.Poolers) == 0 {
		log.Warn("switchover: no pooler to hold (--pooler): clients of " + old + " get errors when it is demoted, and reconnect")
		return nil, 0, nil
	}
	log.Info("switchover: the poolers hold new transactions; waiting for running ones", "poolers", len(s.Poolers), "hold_timeout", limit)
	errs := make([]error, len(s.Poolers))
	var wg sync.WaitGroup
	for i, c := range s.Poolers {
		wg.Go(func() { errs[i] = c.Hold(ctx, limit) })
	}
	wg.Wait()
	release := func() {
		for _, c := range s.Poolers {
			c.Close()
		}
	}
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, s.Poolers[i].Name()+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		release()
		return nil, 0, refuse("the poolers could not hold, so nothing was changed (all resumed):\n  - %s", strings.Join(failed, "\n  - "))
	}
	h, err := s.History(ctx, v, old)
	if err != nil {
		release()
		return nil, 0, refuse("the old primary's WAL position could not be read, so nothing was changed (poolers resumed): %v", err)
	}
	log.Info("switchover: the poolers hold; nothing runs through them", "old primary at", h.LSN.String())
	return s.Poolers, h.LSN, nil
}

// settleWait bounds how long a switchover waits for a settling refusal
// to clear: a little more than the age at which a report counts as stale.
const settleWait = staleAfter + 5*time.Second

// waitView looks every half second until done says so or timeout passes,
// logging each new state (and every 5 s); it returns the last state.
func waitView(ctx context.Context, timeout time.Duration, look func(context.Context) View, done func(View) (bool, string), what string, log *slog.Logger) (string, error) {
	return poll(ctx, timeout, 500*time.Millisecond, func(ctx context.Context) (bool, string) { return done(look(ctx)) }, what, log)
}

// poll asks cond every period until it holds or timeout passes, logging
// each new state (and every 5 s); it returns the last state.
func poll(ctx context.Context, timeout, period time.Duration, cond func(context.Context) (bool, string), what string, log *slog.Logger) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, last, lastLog := time.Now(), "", time.Time{}
	for {
		ok, state := cond(ctx)
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
		case <-time.After(period):
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

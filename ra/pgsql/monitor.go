package pgsql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// ---- monitor ----

func (a *actions) monitor(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	if _, err := c.cfg.inst.PostmasterPID(); errors.Is(err, pg.ErrNotRunning) {
		cd, cerr := c.cfg.inst.ControlData(ctx)
		if cerr != nil {
			if r.Env.Probe() {
				return ocf.NotRunning, nil // nothing there to run
			}
			return 0, cerr
		}
		if cd.State == pg.StateInProduction {
			return 0, ocf.Errorf(ocf.FailedPromoted, "PostgreSQL on %s is not running but its data directory says a primary was (crashed)", c.node)
		}
		return ocf.NotRunning, nil
	} else if err != nil {
		return 0, err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("monitor %s: postmaster runs but refuses connections: %w", c.node, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := pg.Observe(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("monitor %s: %w", c.node, err)
	}
	if !r.Env.Probe() {
		c.reportSeen(ctx, obs)
	}
	// The monitor reports PostgreSQL's health. A failure of the replication
	// bookkeeping (Pacemaker's tools, a reload) is logged loudly but must not
	// make Pacemaker restart a healthy instance; each step stops before the
	// ones that depend on it, so nothing unsafe follows.
	if obs.InRecovery {
		if err := c.manageSlots(ctx, conn, obs, nil); err != nil {
			c.log.Error("replication slot management failed", "err", err)
		}
		return c.standbyMonitor(ctx, conn, obs, r.Env.Probe())
	}
	if r.Env.Probe() {
		// A primary found by a probe: Pacemaker decides; report it honestly.
		return ocf.RunningPromoted, nil
	}
	s, err := c.cluster(ctx)
	if err != nil {
		c.log.Error("cluster status unreadable: replication bookkeeping skipped; PostgreSQL itself runs", "err", err)
		return ocf.RunningPromoted, nil
	}
	var nodes []string
	for _, n := range s.Nodes {
		nodes = append(nodes, n.Name)
	}
	if err := c.manageSlots(ctx, conn, obs, nodes); err != nil {
		c.log.Error("replication slot management failed", "err", err)
	}
	if err := c.manageSync(ctx, conn, obs, MonitorMembers(c.node, s.RunningOn(c.rsc))); err != nil {
		c.log.Error("synchronous standby management failed; PostgreSQL itself runs", "err", err)
	}
	return ocf.RunningPromoted, nil
}

// reportSeen publishes what this monitor saw (timeline, WAL position,
// when) for `rampart status`: its age tells a monitor that stopped running
// from one that runs, and the positions give each standby's lag. It is
// an attribute of its own, apart from the election's PositionAttr, so that
// it never overwrites a report the promotion check relies on.
func (c *call) reportSeen(ctx context.Context, obs pg.Observation) {
	seen := Position{Timeline: obs.Timeline, LSN: obs.LSN, AtMillis: c.now().UnixMilli()}
	if err := pacemaker.SetTransient(ctx, c.run, c.node, SeenAttr(c.rsc), seen.String(), true); err != nil {
		c.log.Warn("could not publish this node's position for rampart status", "err", err)
	}
}

// manageSlots keeps the instance's managed replication slots as
// DecideSlots plans (nodes nil: the cluster's nodes are not known here).
func (c *call) manageSlots(ctx context.Context, conn *pgx.Conn, obs pg.Observation, nodes []string) error {
	if !c.cfg.slots {
		return nil
	}
	plan := DecideSlots(SlotInput{Self: c.node, Primary: !obs.InRecovery, Nodes: nodes, Slots: obs.Slots})
	if plan.Empty() {
		return nil
	}
	c.log.Info("replication slots", "drop", plan.Drop, "create", plan.Create, "why", plan.Reasons)
	for _, name := range plan.Drop {
		if err := pg.DropSlot(ctx, conn, name); err != nil {
			return err
		}
	}
	for _, name := range plan.Create {
		if err := pg.CreateSlot(ctx, conn, name); err != nil {
			return err
		}
	}
	return nil
}

// standbyMonitor checks a standby against the primary Pacemaker runs: it
// points primary_conninfo at it, and a standby that does not stream from
// it fails, at once when it holds WAL past the primary's fork point (its
// start repairs it), else after stream_timeout (its start looks again).
// While no primary runs it takes part in the election. Bookkeeping that
// fails (Pacemaker's tools) is logged: it must not make Pacemaker restart a
// healthy standby.
func (c *call) standbyMonitor(ctx context.Context, conn *pgx.Conn, obs pg.Observation, probe bool) (ocf.Status, error) {
	if obs.Receiver == "streaming" {
		return ocf.Success, nil
	}
	s, err := c.cluster(ctx)
	if err != nil {
		c.log.Error("cluster status unreadable: standby checks skipped", "err", err)
		return ocf.Success, nil
	}
	primary := c.otherPromoted(s)
	if primary == "" {
		if err := c.election(ctx, s, obs); err != nil {
			c.log.Error("election bookkeeping failed", "err", err)
		}
		return ocf.Success, nil
	}
	if err := c.followPrimary(ctx, conn, primary); err != nil {
		c.log.Error("could not point primary_conninfo at the primary", "primary", primary, "err", err)
	}
	if probe {
		return ocf.Success, nil // a probe reports what runs; the next monitor judges
	}
	if fork, ok := c.forkOfRunning(ctx, obs, primary); ok && (fork.Forked || fork.Foreign) {
		return 0, ocf.Errorf(ocf.ErrGeneric, "standby %s cannot follow %s: %s; Pacemaker restarts it and its start repairs it (sync_policy=durability or auto_rejoin=true) or says why not",
			c.node, primary, fork.Why)
	}
	watch, err := pacemaker.QueryTransient(ctx, c.run, streamAttr(c.rsc))
	if err != nil {
		c.log.Error("could not keep track of streaming", "err", err)
		return ocf.Success, nil
	}
	next, off := StreamWatch(watch[c.node], c.now().UnixMilli())
	if err := pacemaker.SetTransient(ctx, c.run, c.node, streamAttr(c.rsc), next, true); err != nil {
		c.log.Error("could not keep track of streaming", "err", err)
	}
	if c.cfg.streamTimeout > 0 && off >= c.cfg.streamTimeout {
		return 0, ocf.Errorf(ocf.ErrGeneric, "standby %s has not streamed from %s for %s (walreceiver: %q; stream_timeout=%s): Pacemaker restarts it",
			c.node, primary, off.Round(time.Second), obs.Receiver, c.cfg.streamTimeout)
	}
	c.log.Warn("standby not streaming from the primary", "primary", primary, "walreceiver", obs.Receiver, "for", off.Round(time.Second), "stream_timeout", c.cfg.streamTimeout)
	return ocf.Success, nil
}

// streamAttr is the private node attribute in which a standby's monitor
// keeps since when it has not streamed (StreamWatch).
func streamAttr(rsc string) string { return "rampart-" + rsc + "-nostream" }

// StreamWatch keeps track, across monitors, of how long a standby has not
// streamed: prev is what the last monitor that saw it not streaming kept
// ("since:last", unix milliseconds). An episode goes on while monitors keep
// seeing it (the last one at most streamWatchGap ago); otherwise a new one
// starts now. It returns what to keep and how long the episode has lasted.
func StreamWatch(prev string, nowMillis int64) (next string, off time.Duration) {
	since := nowMillis
	if a, b, ok := strings.Cut(prev, ":"); ok {
		s, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil && s <= last && last <= nowMillis && nowMillis-last <= streamWatchGap.Milliseconds() {
			since = s
		}
	}
	return fmt.Sprintf("%d:%d", since, nowMillis), time.Duration(nowMillis-since) * time.Millisecond
}

// streamWatchGap is the longest gap between two monitors of one episode
// (the monitor runs every few seconds).
const streamWatchGap = 20 * time.Second

// election takes part in choosing a primary when none runs: a standby with
// no promotion score publishes its position, and the most advanced one
// that may (DecideElection) gives itself a score so that Pacemaker can
// promote it.
func (c *call) election(ctx context.Context, s pacemaker.ClusterStatus, obs pg.Observation) error {
	own := Position{Timeline: obs.Timeline, LSN: obs.LSN, AtMillis: c.now().UnixMilli()}
	if err := pacemaker.SetTransient(ctx, c.run, c.node, PositionAttr(c.rsc), own.String(), true); err != nil {
		return err
	}
	scores, err := pacemaker.QueryTransient(ctx, c.run, pacemaker.PromotionAttr(c.rsc))
	if err != nil {
		return err
	}
	positions, err := c.positions(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	reports := map[string]Candidate{}
	for n, p := range positions {
		reports[n] = Candidate{Node: n, Timeline: p.Timeline, ReceivedLSN: p.LSN}
	}
	opts, err := pacemaker.ClusterOptions(ctx, c.run)
	if err != nil {
		return err
	}
	synced, _ := ParseSyncedSet(opts[SyncedAttr(c.rsc)])
	in := ElectionInput{Self: c.node, Reports: reports, Active: s.RunningOn(c.rsc), Scores: scores,
		Synced: synced, Durable: c.cfg.policy.Count > 0}
	volunteer, why := DecideElection(in)
	if !volunteer {
		if _, stale := in.StaleRecord(); in.Durable && !synced.Empty() && (!synced.Has(c.node) || stale) {
			c.log.Warn("election: no primary runs and this standby may not volunteer", "reason", why)
		} else {
			c.log.Debug("election: not volunteering", "reason", why)
		}
		return nil
	}
	c.log.Info("election: no primary runs; this standby is the most advanced", "reason", why)
	return pacemaker.SetPromotionScore(ctx, c.run, c.rsc, c.node, "10")
}

// positions returns the positions standbys reported within maxAge.
func (c *call) positions(ctx context.Context, maxAge time.Duration) (map[string]Position, error) {
	raw, err := pacemaker.QueryTransient(ctx, c.run, PositionAttr(c.rsc))
	if err != nil {
		return nil, err
	}
	out := map[string]Position{}
	for n, v := range raw {
		if p, ok := ParsePosition(v); ok && c.now().UnixMilli()-p.AtMillis <= maxAge.Milliseconds() {
			out[n] = p
		}
	}
	return out, nil
}

// manageSync runs on the primary: choose the sync set, publish scores and
// states, and put the set in force, lowering scores before and raising them
// after (invariant 2). members are the other nodes Pacemaker runs an
// instance on (from crm_mon, or from a notification before crm_mon shows it).

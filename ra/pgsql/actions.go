package pgsql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// actions holds the agent's seams: Pacemaker's tools and the clock.
type actions struct {
	run pacemaker.Runner
	now func() time.Time
}

// call is one action's context: who we are and what we were told.
type call struct {
	*actions
	r    *ocf.Request
	cfg  config
	rsc  string
	node string
	log  *slog.Logger
}

func (a *actions) begin(ctx context.Context, r *ocf.Request) (*call, error) {
	c := &call{actions: a, r: r, cfg: newConfig(r.Values), rsc: r.Env.Resource, node: r.Env.OnNode, log: r.Log}
	if c.rsc == "" {
		return nil, ocf.Errorf(ocf.ErrConfigured, "OCF_RESOURCE_INSTANCE is not set: run the agent through Pacemaker (or ocf-tester)")
	}
	if c.node == "" {
		// Never uname -n: the node's name in the cluster is Pacemaker's.
		n, err := pacemaker.LocalNode(ctx, a.run)
		if err != nil {
			return nil, err
		}
		c.node = n
	}
	c.log = c.log.With("node", c.node)
	return c, nil
}

// StateAttr is the node attribute in which the primary's agent says what
// each node is (primary, sync, async, …; crm_mon -A shows it).
func StateAttr(rsc string) string { return "rampart-" + rsc + "-state" }

// PositionAttr is the private node attribute in which each node's agent
// reports its timeline and WAL position (see Position).
func PositionAttr(rsc string) string { return "rampart-" + rsc + "-position" }
func memoAttr(rsc string) string     { return "rampart-" + rsc + "-memo" }

func (a *actions) validate(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	cfg := newConfig(r.Values)
	for _, tool := range []string{"pg_ctl", "pg_controldata", "postgres"} {
		if _, err := os.Stat(cfg.inst.BinDir + "/" + tool); err != nil {
			return 0, ocf.Errorf(ocf.ErrInstalled, "parameter bindir=%q: %s not found: install PostgreSQL or set bindir", cfg.inst.BinDir, tool)
		}
	}
	if r.Env.CheckLevel >= 10 {
		if _, err := os.Stat(cfg.inst.DataDir + "/PG_VERSION"); err != nil {
			return 0, ocf.Errorf(ocf.ErrConfigured, "parameter pgdata=%q: no PostgreSQL data directory there", cfg.inst.DataDir)
		}
	}
	return ocf.Success, nil
}

func (a *actions) reload(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	return a.validate(ctx, r)
}

// connect opens a connection to the local instance as the system user.
func (c *call) connect(ctx context.Context) (*pgx.Conn, error) {
	return c.cfg.inst.Connect(ctx, c.cfg.user)
}

func (c *call) cluster(ctx context.Context) (pacemaker.ClusterStatus, error) {
	return pacemaker.CrmMon(ctx, c.run)
}

// otherPrimary returns the node Pacemaker runs this resource promoted on,
// other than this one ("" if none).
func (c *call) otherPrimary(ctx context.Context) (string, error) {
	s, err := c.cluster(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range s.Promoted(c.rsc) {
		if n != c.node {
			return n, nil
		}
	}
	return "", nil
}

// ---- start / stop ----

func (a *actions) start(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	if st, err := a.validate(ctx, r); err != nil {
		return st, err
	}
	in, err := c.observeStart(ctx, "start")
	if err != nil {
		return 0, err
	}
	in.AutoRejoin = c.cfg.autoRejoin
	action, why := DecideStart(in)
	c.log.Info("start decision", "decision", action, "reason", why, "primary", in.Primary, "state", in.Control.State)
	switch action {
	case AlreadyStandby:
		return ocf.Success, nil
	case RefuseRunningPrimary, RefuseDiverged:
		return 0, ocf.Errorf(ocf.ErrGeneric, "start %s: %s", c.node, why)
	case Rejoin:
		if err := c.rejoin(ctx, in.Primary); err != nil {
			return 0, ocf.Errorf(ocf.ErrGeneric, "start %s: rejoin %s: %w", c.node, in.Primary, err)
		}
	}
	// A fresh standby is no candidate until the primary says so.
	if err := pacemaker.DeletePromotionScore(ctx, c.run, c.rsc, c.node); err != nil {
		return 0, err
	}
	if err := c.configureStandby(in.Primary); err != nil {
		return 0, err
	}
	if err := c.cfg.inst.Start(ctx); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "start %s: %w (see %s)", c.node, err, c.cfg.inst.LogFile)
	}
	return ocf.Success, nil
}

// rejoin makes an old primary a copy of primary's history: pg_rewind when a
// rewind user is configured, else (or when it fails) a fresh base backup.
// The log says which.
func (c *call) rejoin(ctx context.Context, primary string) error {
	source := PrimaryConninfo(c.node, primary, c.cfg.inst.Port, c.cfg.rewindUser, c.cfg.nodeHosts, c.cfg.extraConn)
	delete(source, "application_name")
	source["dbname"] = "postgres"
	if c.cfg.rewindUser != "" {
		// pg_rewind first recovers a crashed data directory in single-user
		// mode, which refuses to run with standby.signal (demote left it).
		if err := c.cfg.inst.SetStandbySignal(false); err != nil {
			return err
		}
		// Without a checkpoint on the new timeline, pg_rewind (before
		// PostgreSQL 16) may produce a data directory that cannot start.
		if err := pg.Checkpoint(ctx, source); err != nil {
			c.log.Warn("rejoin: the primary did not checkpoint (grant pg_checkpoint to the rewind_user): re-cloning instead of pg_rewind", "err", err)
		} else if _, err := c.cfg.inst.Rewind(ctx, source); err != nil {
			c.log.Warn("rejoin: pg_rewind failed, re-cloning with pg_basebackup", "primary", primary, "err", err)
		} else {
			c.log.Info("rejoin: rewound with pg_rewind", "primary", primary)
			return nil
		}
	}
	source["user"] = c.cfg.repuser
	source["dbname"] = "replication"
	kept, err := c.cfg.inst.Reclone(ctx, source, ".rampart-old-"+c.now().UTC().Format("20060102T150405"))
	if err != nil {
		return err
	}
	c.log.Info("rejoin: re-cloned with pg_basebackup; the old data directory is kept", "primary", primary, "kept", kept)
	return nil
}

// configureStandby writes what makes the instance a standby of primary (""
// when unknown: it then replays its own WAL until told).
func (c *call) configureStandby(primary string) error {
	set := map[string]*string{"synchronous_standby_names": nil, "primary_conninfo": nil, "primary_slot_name": nil}
	if c.cfg.slots {
		slot := SlotName(c.node)
		set["primary_slot_name"] = &slot
	}
	if primary != "" {
		ci := PrimaryConninfo(c.node, primary, c.cfg.inst.Port, c.cfg.repuser, c.cfg.nodeHosts, c.cfg.extraConn).String()
		set["primary_conninfo"] = &ci
	}
	latest, retry := "latest", "100ms"
	set["recovery_target_timeline"] = &latest
	// The startup process notices a promote request only between WAL
	// retrieval attempts: 5 s by default, 0.1 s here (pg_ctl promote took
	// 0.6 s with 500ms, 0.3 s with 200ms, 0.1 s with 100ms in the lab). The
	// price: while no primary answers, a standby tries (and logs) ten
	// times a second; with rampart that lasts until the failover, about a
	// second.
	set["wal_retrieve_retry_interval"] = &retry
	if _, err := c.cfg.inst.SetAutoConfFile(set); err != nil {
		return fmt.Errorf("configure standby %s: %w", c.node, err)
	}
	return c.cfg.inst.SetStandbySignal(true)
}

func (a *actions) stop(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	// crm_mon -A shows it; the primary overwrites it when the node returns.
	if err := pacemaker.SetTransient(ctx, c.run, c.node, StateAttr(c.rsc), "stopped", false); err != nil {
		c.log.Warn("stop: could not publish the state", "err", err)
	}
	if _, err := c.cfg.inst.PostmasterPID(); errors.Is(err, pg.ErrNotRunning) {
		return ocf.Success, nil
	}
	// Fast shutdown, with time left for immediate if it hangs.
	fastCtx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fastCtx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/3))
		defer cancel()
	}
	if err := c.cfg.inst.Stop(fastCtx, "fast"); err != nil {
		c.log.Warn("fast shutdown failed, trying immediate", "err", err)
		if err := c.cfg.inst.Stop(ctx, "immediate"); err != nil {
			return 0, fmt.Errorf("stop %s: %w", c.node, err)
		}
	}
	return ocf.Success, nil
}

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
	// The monitor reports PostgreSQL's health. A failure of the replication
	// bookkeeping (Pacemaker's tools, a reload) is logged loudly but must not
	// make Pacemaker restart a healthy instance; each step stops before the
	// ones that depend on it, so nothing unsafe follows.
	if obs.InRecovery {
		if err := c.manageSlots(ctx, conn, obs, nil); err != nil {
			c.log.Error("replication slot management failed", "err", err)
		}
		if err := c.standbyMonitor(ctx, obs); err != nil {
			c.log.Error("standby bookkeeping failed", "err", err)
		}
		return ocf.Success, nil
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
	members := []string{}
	for _, n := range s.RunningOn(c.rsc) {
		if n != c.node {
			members = append(members, n)
		}
	}
	if err := c.manageSync(ctx, conn, obs, members); err != nil {
		c.log.Error("synchronous standby management failed; PostgreSQL itself runs", "err", err)
	}
	return ocf.RunningPromoted, nil
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

// standbyMonitor takes part in the election when no primary runs: a
// standby with no promotion score publishes its position, and the most
// advanced one gives itself a score so that Pacemaker can promote it.
func (c *call) standbyMonitor(ctx context.Context, obs pg.Observation) error {
	if obs.Receiver == "streaming" {
		return nil // a primary exists
	}
	s, err := c.cluster(ctx)
	if err != nil {
		return err
	}
	if len(s.Promoted(c.rsc)) > 0 {
		return nil
	}
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
	volunteer, why := DecideElection(c.node, reports, s.RunningOn(c.rsc), scores)
	if !volunteer {
		c.log.Debug("election: not volunteering", "reason", why)
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
func (c *call) manageSync(ctx context.Context, conn *pgx.Conn, obs pg.Observation, members []string) error {
	memos, err := pacemaker.QueryTransient(ctx, c.run, memoAttr(c.rsc))
	if err != nil {
		return err
	}
	memo := ParseMemo(memos[c.node])
	current, err := pg.ParseSyncNames(obs.SyncNames)
	if err != nil {
		c.log.Warn("synchronous_standby_names unreadable: replacing it", "value", obs.SyncNames, "err", err)
	}
	in := SyncInput{Self: c.node, PrimaryLSN: obs.LSN, Members: members, Current: current, JoinedAt: memo.JoinedLSNs()}
	for _, r := range obs.Replication {
		in.Standbys = append(in.Standbys, Standby{Name: r.Name, State: r.State, SyncState: r.SyncState, FlushLSN: r.FlushLSN})
	}
	now := c.now().Unix()
	if memo.ShortSince > 0 {
		in.ShortFor = time.Duration(now-memo.ShortSince) * time.Second
	}
	d := DecideSync(in, c.cfg.policy)
	scores := DecideScores(in, c.cfg.policy, d)
	states := StandbyStates(in, d)

	// Changes are made against the scores attrd holds, not against what
	// this agent believes it published.
	values, err := pacemaker.QueryTransient(ctx, c.run, pacemaker.PromotionAttr(c.rsc))
	if err != nil {
		return err
	}
	published := ParseScores(values)
	apply := func(changes map[string]int) error {
		for n, s := range changes {
			if err := pacemaker.SetPromotionScore(ctx, c.run, c.rsc, n, FormatScore(s)); err != nil {
				return err
			}
			published[n] = s
		}
		return nil
	}
	lower, _ := ScoreChanges(published, scores)
	if err := apply(lower); err != nil {
		return err
	}
	changed := !d.Names.Equal(current) || obs.SyncNames != d.Names.String()
	if changed {
		if err := c.putSyncNames(ctx, conn, obs, current, &d); err != nil {
			return err
		}
	}
	// Members that joined (or a new primary's first standbys) become
	// candidates as soon as they confirm, within this call, not a monitor
	// later.
	recent := memo.PromotedAt > 0 && c.now().UnixMilli()-memo.PromotedAt < awaitAfterPromotion.Milliseconds()
	if AwaitConfirmation(d, in.Standbys, changed || recent) {
		d.Eligible, in.Standbys = c.awaitEligible(ctx, conn, d, in.Standbys)
		scores = DecideScores(in, c.cfg.policy, d)
		states = StandbyStates(in, d)
	}
	// A member eligible at first may have dropped out while the set
	// changed: lower it too, before raising anyone.
	lower, raise := ScoreChanges(published, scores)
	if err := apply(lower); err != nil {
		return err
	}
	if err := apply(raise); err != nil {
		return err
	}
	for n, st := range states {
		if memo.States[n] != st {
			if err := pacemaker.SetTransient(ctx, c.run, n, StateAttr(c.rsc), st, false); err != nil {
				return err
			}
		}
	}
	if d.WritesBlocked && memo.States[c.node] != states[c.node] {
		if recent {
			c.log.Info("new primary: commits wait for the first synchronous standby", "reason", d.Reason)
		} else {
			c.log.Warn("writes blocked: too few synchronous standbys", "reason", d.Reason)
		}
	}
	next := Memo{Joined: map[string]string{}, States: states, PromotedAt: memo.PromotedAt}
	for n, l := range d.JoinedAt {
		next.Joined[n] = l.String()
	}
	switch {
	case !d.WritesBlocked && !d.WentAsync:
		next.ShortSince = 0
	case memo.ShortSince > 0:
		next.ShortSince = memo.ShortSince
	default:
		next.ShortSince = now
	}
	if next.String() != memo.String() {
		return pacemaker.SetTransient(ctx, c.run, c.node, memoAttr(c.rsc), next.String(), true)
	}
	return nil
}

// putSyncNames puts d.Names in force and moves the join position of every
// new member (every member, when the old list was not tight) to the
// primary's position after the reload: commits acknowledged until then
// were confirmed without them.
func (c *call) putSyncNames(ctx context.Context, conn *pgx.Conn, obs pg.Observation, current pg.SyncNames, d *SyncDecision) error {
	value := d.Names.String()
	if _, err := c.cfg.inst.SetAutoConfFile(map[string]*string{"synchronous_standby_names": &value}); err != nil {
		return fmt.Errorf("set synchronous_standby_names on %s: %w", c.node, err)
	}
	if err := pg.Reload(ctx, conn); err != nil {
		return err
	}
	if err := pg.NudgeStandbys(ctx, conn); err != nil {
		c.log.Warn("waiting commits are released at the standbys' next status reply", "err", err)
	}
	after, err := pg.CurrentLSN(ctx, conn)
	if err != nil {
		return err
	}
	for _, n := range d.Names.Names {
		if !slices.Contains(current.Names, n) || !tight(current) {
			d.JoinedAt[n] = after
		}
	}
	c.log.Info("synchronous standbys changed", "from", obs.SyncNames, "to", value, "reason", d.Reason)
	return nil
}

// awaitEligible polls pg_stat_replication for up to two seconds until every
// member of the set is eligible, and returns who is, with the standbys seen
// last.
func (c *call) awaitEligible(ctx context.Context, conn *pgx.Conn, d SyncDecision, standbys []Standby) ([]string, []Standby) {
	wait, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	eligible := Eligible(d.Names, d.JoinedAt, standbys)
	for len(eligible) < len(d.Names.Names) {
		select {
		case <-wait.Done():
			return eligible, standbys
		case <-tick.C:
		}
		obs, err := pg.Observe(wait, conn)
		if err != nil {
			return eligible, standbys
		}
		standbys = standbys[:0:0]
		for _, r := range obs.Replication {
			standbys = append(standbys, Standby{Name: r.Name, State: r.State, SyncState: r.SyncState, FlushLSN: r.FlushLSN})
		}
		eligible = Eligible(d.Names, d.JoinedAt, standbys)
	}
	return eligible, standbys
}

// awaitAfterPromotion is how long after its promotion a primary waits in
// its monitor for the first standbys to connect and confirm.
const awaitAfterPromotion = 10 * time.Second

// ---- promote / demote ----

func (a *actions) promote(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	started := a.now()
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	// Invariant 1 needs fencing: refuse first, before anything changes.
	opts, err := pacemaker.ClusterOptions(ctx, c.run)
	if err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: cannot tell whether the cluster fences: %v", c.node, err)
	}
	if ok, unfenced, why := FencingAllows(opts, c.cfg.unfenced); !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: %s", c.node, why)
	} else if unfenced {
		c.log.Warn(why)
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("promote %s: %w", c.node, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := pg.Observe(ctx, conn)
	if err != nil {
		return 0, err
	}
	if !obs.InRecovery {
		return ocf.Success, nil
	}
	// Compare with every standby that reported before this promotion.
	reports, err := c.positions(ctx, 60*time.Second)
	if err != nil {
		return 0, err
	}
	var cands []Candidate
	own := Candidate{Node: c.node, Timeline: obs.Timeline, ReceivedLSN: obs.LSN}
	cands = append(cands, own)
	for n, p := range reports {
		if n != c.node && (p.Eligible || c.cfg.policy.Count == 0) {
			cands = append(cands, Candidate{Node: n, Timeline: p.Timeline, ReceivedLSN: p.LSN})
		}
	}
	if ok, why := CheckPromotion(c.node, cands); !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: %s", c.node, why)
	}
	// Name the surviving standbys before the first commit (invariant 4).
	// (Pacemaker passes the transition's notify lists to promote too.)
	leaving := append(ocf.Nodes(r.Env.Notify.Stop), ocf.Nodes(r.Env.Notify.Demote)...)
	members := slices.DeleteFunc(ocf.Nodes(r.Env.Notify.Unpromoted), func(n string) bool {
		return n == c.node || slices.Contains(leaving, n)
	})
	var named pg.SyncNames
	if c.cfg.policy.Count > 0 {
		d := DecideSync(SyncInput{Self: c.node, PrimaryLSN: obs.LSN, Members: members}, c.cfg.policy)
		named = d.Names
		value := d.Names.String()
		if _, err := c.cfg.inst.SetAutoConfFile(map[string]*string{"synchronous_standby_names": &value}); err != nil {
			return 0, err
		}
		if err := pg.Reload(ctx, conn); err != nil {
			return 0, err
		}
		c.log.Info("synchronous standbys named before promotion", "names", value)
	}
	checked := c.now()
	if err := c.cfg.inst.Promote(ctx); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s: %w", c.node, err)
	}
	promoted := c.now()
	// Join positions start afresh at the new timeline.
	after, err := pg.CurrentLSN(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("promote %s: %w", c.node, err)
	}
	memo := PromotionMemo(named, after, promoted.UnixMilli())
	if err := pacemaker.SetTransient(ctx, c.run, c.node, memoAttr(c.rsc), memo.String(), true); err != nil {
		return 0, err
	}
	if err := pacemaker.SetPromotionScore(ctx, c.run, c.rsc, c.node, FormatScore(PrimaryScore)); err != nil {
		return 0, err
	}
	if c.cfg.policy.Count > 0 && (obs.WalSenderTimeout == 0 || obs.WalSenderTimeout > 10*time.Second) {
		c.log.Warn("wal_sender_timeout lets a vanished synchronous standby stall commits that long before it is replaced: set 5s–10s in postgresql.conf",
			"wal_sender_timeout", obs.WalSenderTimeout)
	}
	c.log.Info("promoted", "timeline_before", obs.Timeline, "lsn", obs.LSN.String(),
		"checks", checked.Sub(started), "pg_promote", promoted.Sub(checked), "score", c.now().Sub(promoted))
	return ocf.Success, nil
}

func (a *actions) demote(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	// Not a candidate any more (lowered before anything else changes).
	if err := pacemaker.SetPromotionScore(ctx, c.run, c.rsc, c.node, FormatScore(NoPromotion)); err != nil {
		return 0, err
	}
	_, perr := c.cfg.inst.PostmasterPID()
	if perr == nil {
		conn, err := c.connect(ctx)
		if err == nil {
			obs, oerr := pg.Observe(ctx, conn)
			conn.Close(ctx)
			if oerr == nil && obs.InRecovery {
				return ocf.Success, nil
			}
		}
		if err := c.cfg.inst.Stop(ctx, "fast"); err != nil {
			if err := c.cfg.inst.Stop(ctx, "immediate"); err != nil {
				return 0, fmt.Errorf("demote %s: %w", c.node, err)
			}
		}
	}
	if err := c.configureStandby(""); err != nil {
		return 0, err
	}
	if errors.Is(perr, pg.ErrNotRunning) {
		// A crashed primary: Pacemaker stops it next. Its data directory is
		// marked as a standby's, so nothing brings it back as a primary;
		// whether it may start again is start's decision (invariant 3).
		c.log.Info("demote of a primary that is not running: left stopped, marked as standby")
		return ocf.Success, nil
	}
	// A real demote ends with a running standby.
	if err := c.cfg.inst.Start(ctx); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "demote %s: start as standby: %w", c.node, err)
	}
	return ocf.Success, nil
}

// ---- notify ----

func (a *actions) notify(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	n := r.Env.Notify
	c.log.Debug("notify", "what", n.String())
	// Notifications cannot veto: failures are logged and notify succeeds.
	var nerr error
	switch n.Type + "-" + n.Operation {
	case "pre-promote":
		nerr = c.reportPosition(ctx)
	case "post-promote":
		if slices.Contains(ocf.Nodes(n.Promote), c.node) {
			// Quick: Pacemaker starts what is ordered after the promotion
			// (the VIP) only once every notification returned. The first
			// monitor, which runs right after, waits for the first
			// standbys to confirm.
			nerr = c.primaryRecheck(ctx, n)
		} else {
			nerr = c.followPrimary(ctx, ocf.Nodes(n.Promote))
		}
	case "post-stop", "post-start":
		nerr = c.primaryRecheck(ctx, n)
	}
	if nerr != nil {
		c.log.Warn("notify", "what", n.Type+"-"+n.Operation, "err", nerr)
	}
	return ocf.Success, nil
}

// reportPosition publishes this standby's position for the promotion check.
func (c *call) reportPosition(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := pg.Observe(ctx, conn)
	if err != nil || !obs.InRecovery {
		return err
	}
	// The slots exist before a promotion: the standbys re-attach at once.
	if err := c.manageSlots(ctx, conn, obs, allNodes(c.r.Env.Notify)); err != nil {
		c.log.Warn("replication slots before promotion", "err", err)
	}
	scores, err := pacemaker.QueryTransient(ctx, c.run, pacemaker.PromotionAttr(c.rsc))
	if err != nil {
		return err
	}
	eligible := scores[c.node] != "" && scores[c.node] != "-INFINITY"
	p := Position{Timeline: obs.Timeline, LSN: obs.LSN, Eligible: eligible, AtMillis: c.now().UnixMilli()}
	return pacemaker.SetTransient(ctx, c.run, c.node, PositionAttr(c.rsc), p.String(), true)
}

// followPrimary re-points a standby at the new primary and reloads: no
// restart on PostgreSQL 13 and later (invariant 5).
func (c *call) followPrimary(ctx context.Context, promoted []string) error {
	if len(promoted) != 1 || promoted[0] == c.node {
		return nil
	}
	if _, err := c.cfg.inst.PostmasterPID(); err != nil {
		return nil
	}
	ci := PrimaryConninfo(c.node, promoted[0], c.cfg.inst.Port, c.cfg.repuser, c.cfg.nodeHosts, c.cfg.extraConn).String()
	changed, err := c.cfg.inst.SetAutoConfFile(map[string]*string{"primary_conninfo": &ci})
	if err != nil || !changed {
		return err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	c.log.Info("following the new primary", "primary", promoted[0])
	return pg.Reload(ctx, conn)
}

// primaryRecheck lets the primary replace a stopped sync standby, name a
// started one, or take in its first after its promotion, at once rather
// than a monitor later.
func (c *call) primaryRecheck(ctx context.Context, n ocf.Notify) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil // not running here: nothing to do
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := pg.Observe(ctx, conn)
	if err != nil || obs.InRecovery {
		return err
	}
	active := map[string]bool{}
	for _, n := range ocf.Nodes(n.Active) {
		active[n] = true
	}
	for _, n := range ocf.Nodes(n.Start) {
		active[n] = true
	}
	if n.Type == "post" { // stopped in this transition
		for _, s := range ocf.Nodes(n.Stop) {
			delete(active, s)
		}
	}
	members := []string{}
	for m := range active {
		if m != c.node {
			members = append(members, m)
		}
	}
	slices.Sort(members)
	if err := c.manageSlots(ctx, conn, obs, allNodes(n)); err != nil {
		c.log.Warn("replication slots", "err", err)
	}
	return c.manageSync(ctx, conn, obs, members)
}

// allNodes is every node a notification names (nil when it names none).
func allNodes(n ocf.Notify) []string {
	if len(n.All) == 0 {
		return nil
	}
	return n.All
}

// RejoinAction is the agent's action behind `rampart rejoin`; Pacemaker
// never calls it.
const RejoinAction = "rejoin"

// rejoinNow makes this stopped old primary a standby's copy of the current
// primary (pg_rewind, or a fresh base backup), and leaves it stopped for
// Pacemaker to start.
func (a *actions) rejoinNow(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	if st, err := a.validate(ctx, r); err != nil {
		return st, err
	}
	in, err := c.observeStart(ctx, "rejoin")
	if err != nil {
		return 0, err
	}
	ok, why := DecideRejoin(in)
	c.log.Info("rejoin decision", "rejoin", ok, "reason", why)
	if !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "rejoin %s: %s", c.node, why)
	}
	if err := c.rejoin(ctx, in.Primary); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "rejoin %s from %s: %w", c.node, in.Primary, err)
	}
	return ocf.Success, nil
}

// observeStart is what start and rejoin decide from: whether a postmaster
// runs and in which role, else the data directory's control data; and the
// primary Pacemaker runs elsewhere. op names the action in errors.
func (c *call) observeStart(ctx context.Context, op string) (StartInput, error) {
	var in StartInput
	if _, err := c.cfg.inst.PostmasterPID(); err == nil {
		conn, err := c.connect(ctx)
		if err != nil {
			return in, fmt.Errorf("%s %s: postmaster runs but refuses connections: %w", op, c.node, err)
		}
		obs, err := pg.Observe(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return in, err
		}
		in.Running, in.InRecovery = true, obs.InRecovery
	} else if !errors.Is(err, pg.ErrNotRunning) {
		return in, err
	} else if in.Control, err = c.cfg.inst.ControlData(ctx); err != nil {
		return in, ocf.Errorf(ocf.ErrGeneric, "%s %s: %w", op, c.node, err)
	}
	var err error
	in.Primary, err = c.otherPrimary(ctx)
	return in, err
}

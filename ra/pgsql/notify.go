package pgsql

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

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
	switch NotifyTaskOf(n, c.node) {
	case ReportPosition:
		nerr = c.reportPosition(ctx)
	case FollowPromoted:
		nerr = c.followPromoted(ctx, ocf.Nodes(n.Promote)[0])
	case RecheckSync:
		nerr = c.primaryRecheck(ctx, n)
	}
	if nerr != nil {
		c.log.Warn("notify", "what", n.Type+"-"+n.Operation, "err", nerr)
	}
	return ocf.Success, nil
}

// NotifyTask is what a notification asks of one node's agent.
type NotifyTask int

// Notification tasks.
const (
	NoTask         NotifyTask = iota
	ReportPosition            // pre-promote: publish the position for CheckPromotion
	FollowPromoted            // post-promote, on a standby: re-point at the new primary
	RecheckSync               // post-stop, post-start, on the primary: name its synchronous standbys
)

// NotifyTaskOf decides what notification n asks of node. Most ask nothing:
// the agent then answers without re-executing itself as the PostgreSQL
// user (Main), since every round of notifications, on every node, is on a
// failover's path (a killed primary's takes six rounds before the VIP
// moves).
//
// The new primary does nothing in its post-promote notification.
// Pacemaker moves the VIP only once every post-promote notification
// returned, and the standbys re-point in theirs; the promotion already
// named the standbys and wrote the durable record, and the first monitor,
// which starts as the notifications end, runs the sync round and waits for
// the first standbys to confirm. A round there cost the VIP a third of a
// second and gained nothing.
//
// Only a primary rechecks its synchronous standbys after a stop or start:
// one promoted before the transition, or in it.
func NotifyTaskOf(n ocf.Notify, node string) NotifyTask {
	switch n.Type + "-" + n.Operation {
	case "pre-promote":
		return ReportPosition
	case "post-promote":
		if promoted := ocf.Nodes(n.Promote); len(promoted) == 1 && promoted[0] != node {
			return FollowPromoted
		}
	case "post-stop", "post-start":
		if slices.Contains(ocf.Nodes(n.Promoted), node) || slices.Contains(ocf.Nodes(n.Promote), node) {
			return RecheckSync
		}
	}
	return NoTask
}

// reportPosition publishes this standby's position for the promotion check.
func (c *call) reportPosition(ctx context.Context) error {
	// Pacemaker's scores are read while PostgreSQL is looked at: this
	// round is on the failover's path.
	type scoresRead struct {
		scores map[string]string
		err    error
	}
	read := make(chan scoresRead, 1)
	go func() {
		scores, err := pacemaker.QueryTransient(ctx, c.run, pacemaker.PromotionAttr(c.rsc))
		read <- scoresRead{scores, err}
	}()
	conn, err := c.connect(ctx)
	if err != nil {
		<-read
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := pg.Observe(ctx, conn)
	if err != nil || !obs.InRecovery {
		<-read
		return err
	}
	// The slots exist before a promotion: the standbys re-attach at once.
	if err := c.manageSlots(ctx, conn, obs, allNodes(c.r.Env.Notify)); err != nil {
		c.log.Warn("replication slots before promotion", "err", err)
	}
	rd := <-read
	scores, err := rd.scores, rd.err
	if err != nil {
		return err
	}
	eligible := scores[c.node] != "" && scores[c.node] != "-INFINITY"
	p := Position{Timeline: obs.Timeline, LSN: obs.LSN, Eligible: eligible, AtMillis: c.now().UnixMilli()}
	return pacemaker.SetTransient(ctx, c.run, c.node, PositionAttr(c.rsc), p.String(), true)
}

// followPrimary re-points a standby at the new primary and reloads: no
// restart on PostgreSQL 13 and later (invariant 5). A standby past the
// fork point cannot follow: it is marked for repair and its failure
// reported at once (crm_resource --fail, as the postmaster watcher does),
// so that Pacemaker restarts it and its start repairs it.
func (c *call) followPromoted(ctx context.Context, primary string) error {
	if _, err := c.cfg.inst.PostmasterPID(); err != nil {
		return nil
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := c.followPrimary(ctx, conn, primary); err != nil {
		return err
	}
	obs, err := pg.Observe(ctx, conn)
	if err != nil || !obs.InRecovery {
		return err
	}
	if fork, ok := c.forkOfRunning(ctx, obs, primary); ok && (fork.Forked || fork.Foreign) {
		c.log.Warn("this standby cannot follow the new primary: reporting the failure now so that Pacemaker restarts it and its start repairs it", "fork", fork.Why)
		_, err := c.run(ctx, "crm_resource", "--fail", "--resource="+c.rsc, "--node="+c.node)
		return err
	}
	return nil
}

// followPrimary points primary_conninfo at primary and reloads when it
// pointed elsewhere.
func (c *call) followPrimary(ctx context.Context, conn *pgx.Conn, primary string) error {
	ci := c.primaryConninfo(primary).String()
	changed, err := c.cfg.inst.SetAutoConfFile(map[string]*string{"primary_conninfo": &ci})
	if err != nil || !changed {
		return err
	}
	c.log.Info("following the primary", "primary", primary)
	return pg.Reload(ctx, conn)
}

// forkOfRunning compares the running standby with primary's timeline
// history; a fork found is left in the marker for the start that repairs
// it. ok is false when the primary's history could not be read.
func (c *call) forkOfRunning(ctx context.Context, obs pg.Observation, primary string) (Fork, bool) {
	h, err := pg.ReadHistory(ctx, c.primaryConninfo(primary))
	if err != nil {
		c.log.Warn("cannot read the primary's timeline history", "primary", primary, "err", err)
		return Fork{}, false
	}
	walTL, err := pg.WALTimelines(filepath.Join(c.cfg.inst.DataDir, "pg_wal"))
	if err != nil {
		c.log.Warn("pg_wal unreadable", "err", err)
	}
	fork := CheckFork(RunningPosition(obs, walTL), primary, h)
	if fork.Forked || fork.Foreign {
		m := ForkMarker{SystemID: h.SystemID, Fork: fork, AtMillis: c.now().UnixMilli()}
		if fork.Foreign {
			m.SystemID = "" // not the primary's: start compares with its own
		}
		if err := c.writeForkMarker(m); err != nil {
			c.log.Error("the fork was found but not recorded: the start after a restart looks again", "err", err)
		}
	}
	return fork, true
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
	if err := c.manageSlots(ctx, conn, obs, allNodes(n)); err != nil {
		c.log.Warn("replication slots", "err", err)
	}
	return c.manageSync(ctx, conn, obs, RecheckMembers(c.node, n))
}

// allNodes is every node a notification names (nil when it names none).
func allNodes(n ocf.Notify) []string {
	if len(n.All) == 0 {
		return nil
	}
	return n.All
}

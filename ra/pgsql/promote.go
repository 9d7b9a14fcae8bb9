package pgsql

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// ---- promote / demote ----

func (a *actions) promote(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	started := a.now()
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	// The Pacemaker reads promote needs are asked at once, while it looks
	// at PostgreSQL: promote runs on the failover's clock, and none of them
	// changes anything.
	reads := c.promotionReads(ctx)
	var obs pg.Observation
	conn, connErr := c.connect(ctx)
	if connErr == nil {
		defer conn.Close(context.WithoutCancel(ctx))
		obs, connErr = pg.Observe(ctx, conn)
	}
	looked := c.now()
	rd := <-reads
	read := c.now()
	// Invariant 1 needs fencing: refuse first, before anything else is
	// said or changed.
	if rd.optsErr != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: cannot tell whether the cluster fences: %v", c.node, rd.optsErr)
	}
	if ok, unfenced, why := FencingAllows(rd.opts, c.cfg.unfenced); !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: %s", c.node, why)
	} else if unfenced {
		c.log.Warn(why)
	}
	if connErr != nil {
		return 0, fmt.Errorf("promote %s: %w", c.node, connErr)
	}
	if !obs.InRecovery {
		return ocf.Success, nil
	}
	// Compare with every standby that reported before this promotion, and
	// since the last one (the memos say when).
	if rd.err != nil {
		return 0, rd.err
	}
	reports, memos := rd.reports, rd.memos
	var lastPromotion int64
	for _, m := range memos {
		lastPromotion = max(lastPromotion, ParseMemo(m).PromotedAt)
	}
	own := Candidate{Node: c.node, Timeline: obs.Timeline, ReceivedLSN: obs.LSN}
	cands := PromotionCandidates(own, reports, Leaving(r.Env.Notify), lastPromotion, c.cfg.policy.Count == 0)
	if ok, why := CheckPromotion(c.node, cands); !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: %s", c.node, why)
	}
	// Name the surviving standbys before the first commit (invariant 4).
	// (Pacemaker passes the transition's notify lists to promote too.)
	var named pg.SyncNames
	if c.cfg.policy.Count > 0 {
		d := DecideSync(SyncInput{Self: c.node, PrimaryLSN: obs.LSN, Members: PromoteMembers(c.node, r.Env.Notify)}, c.cfg.policy)
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
	// From its first commit on, only this node is known to hold every
	// acknowledged commit; the record says so before there is one (its
	// standbys join it as they confirm). Without it, nothing has changed:
	// refuse. (Written after the names, not beside them: a record of a
	// promotion that then failed would name this node alone and hold back
	// the promotion of any other.)
	synced := SyncedSet{Timeline: obs.Timeline + 1, Primary: c.node}
	if err := pacemaker.SetProperty(ctx, c.run, SyncedPropertySet, SyncedAttr(c.rsc), synced.String()); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s refused: %v", c.node, err)
	}
	checked := c.now()
	if err := pg.Promote(ctx, conn); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "promote %s: %w", c.node, err)
	}
	promoted := c.now()
	// Join positions start afresh at the new timeline.
	after, err := pg.CurrentLSN(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("promote %s: %w", c.node, err)
	}
	memo := PromotionMemo(named, after, promoted.UnixMilli())
	memo.Synced = synced.String()
	// The memo and the primary's score are independent: set at once.
	memoSet := make(chan error, 1)
	go func() { memoSet <- pacemaker.SetTransient(ctx, c.run, c.node, memoAttr(c.rsc), memo.String(), true) }()
	scoreErr := pacemaker.SetPromotionScore(ctx, c.run, c.rsc, c.node, FormatScore(PrimaryScore))
	if err := errors.Join(<-memoSet, scoreErr); err != nil {
		return 0, err
	}
	if c.cfg.policy.Count > 0 && (obs.WalSenderTimeout == 0 || obs.WalSenderTimeout > 10*time.Second) {
		c.log.Warn("wal_sender_timeout lets a vanished synchronous standby stall commits that long before it is replaced: set 5s–10s in postgresql.conf",
			"wal_sender_timeout", obs.WalSenderTimeout)
	}
	c.log.Info("promoted", "timeline_before", obs.Timeline, "lsn", obs.LSN.String(),
		"postgres_observed", looked.Sub(started), "pacemaker_read", read.Sub(started), "checks", checked.Sub(started),
		"pg_promote", promoted.Sub(checked), "score", c.now().Sub(promoted))
	return ocf.Success, nil
}

// promotionReads is what promote reads of Pacemaker: the cluster options
// (fencing), the standbys' recent positions and the memos (when the last
// promotion was), asked in parallel.
type promotionReads struct {
	opts    map[string]string
	optsErr error
	reports map[string]Position
	memos   map[string]string
	err     error // of the positions or the memos
}

func (c *call) promotionReads(ctx context.Context) <-chan promotionReads {
	out := make(chan promotionReads, 1)
	go func() {
		var rd promotionReads
		var wg sync.WaitGroup
		var memoErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			rd.opts, rd.optsErr = pacemaker.ClusterOptions(ctx, c.run)
		}()
		go func() {
			defer wg.Done()
			rd.memos, memoErr = pacemaker.QueryTransient(ctx, c.run, memoAttr(c.rsc))
		}()
		rd.reports, rd.err = c.positions(ctx, 60*time.Second)
		wg.Wait()
		rd.err = errors.Join(rd.err, memoErr)
		out <- rd
	}()
	return out
}

func (a *actions) demote(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	_, perr := c.cfg.inst.PostmasterPID()
	// A crashed primary is stopped next: its state says so now, with its
	// score, so that the stop's own write changes nothing. Each attribute
	// that changes in the CIB aborts Pacemaker's transition, which then
	// waits for the actions under way and computes a new one: a step more
	// on the failover's path.
	stateSet := make(chan error, 1)
	if errors.Is(perr, pg.ErrNotRunning) {
		go func() { stateSet <- pacemaker.SetTransient(ctx, c.run, c.node, StateAttr(c.rsc), StateStopped, false) }()
	} else {
		stateSet <- nil
	}
	// Not a candidate any more (lowered before anything else changes).
	scoreErr := pacemaker.SetPromotionScore(ctx, c.run, c.rsc, c.node, FormatScore(NoPromotion))
	if err := <-stateSet; err != nil {
		c.log.Warn("demote: could not publish the state", "err", err)
	}
	if scoreErr != nil {
		return 0, scoreErr
	}
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
		// Another node is Pacemaker's primary: this one was never promoted
		// by it (started outside the cluster, e.g. by the distribution's
		// postgresql unit at boot) and may have diverged. It comes back
		// only the way a stopped old primary does (invariant 3).
		if other, err := c.otherPrimary(ctx); err != nil {
			return 0, fmt.Errorf("demote %s: %w", c.node, err)
		} else if other != "" {
			return c.restartAsStandby(ctx, "demote")
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

// restartAsStandby starts the stopped instance as start would: the start
// decision, under the data-directory lock, with the repair it may call for.
func (c *call) restartAsStandby(ctx context.Context, op string) (ocf.Status, error) {
	unlock, err := c.lockDataDir(ctx, op)
	if err != nil {
		return 0, err
	}
	defer unlock()
	in, err := c.observeStart(ctx, op)
	if err != nil {
		return 0, err
	}
	in.AutoRejoin = c.cfg.autoRejoin
	action, why := DecideStart(in)
	c.log.Warn(op+": a primary Pacemaker did not promote, beside "+in.Primary+": stopped; deciding as start would", "decision", action, "reason", why)
	return c.startAs(ctx, op, in, action, why)
}

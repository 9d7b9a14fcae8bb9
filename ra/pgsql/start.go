package pgsql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// ---- start / stop ----

func (a *actions) start(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	c, err := a.begin(ctx, r)
	if err != nil {
		return 0, err
	}
	if st, err := a.validate(ctx, r); err != nil {
		return st, err
	}
	unlock, err := c.lockDataDir(ctx, "start")
	if err != nil {
		return 0, err
	}
	defer unlock()
	in, err := c.observeStart(ctx, "start")
	if err != nil {
		return 0, err
	}
	in.AutoRejoin = c.cfg.autoRejoin
	action, why := DecideStart(in)
	c.log.Info("start decision", "decision", action, "reason", why, "primary", in.Primary, "state", in.Control.State)
	return c.startAs(ctx, "start", in, action, why)
}

// startAs carries out a start decision.
func (c *call) startAs(ctx context.Context, op string, in StartInput, action StartAction, why string) (ocf.Status, error) {
	switch action {
	case AlreadyStandby:
		return ocf.Success, nil
	case RefuseRunningPrimary, RefuseDiverged, RefuseForeign:
		return 0, ocf.Errorf(ocf.ErrGeneric, "%s %s: %s", op, c.node, why)
	case Rejoin:
		if in.Fork.Forked {
			c.log.Warn("discarding WAL past the fork: "+in.Fork.Discarded(), "primary", in.Primary, "reason", why)
		}
		if err := c.rejoin(ctx, in.Primary); err != nil {
			return 0, ocf.Errorf(ocf.ErrGeneric, "%s %s: rejoin %s: %w", op, c.node, in.Primary, err)
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
		return 0, ocf.Errorf(ocf.ErrGeneric, "%s %s: %w (see %s)", op, c.node, err, c.cfg.inst.LogFile)
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
			return c.removeForkMarker()
		}
	}
	source["user"] = c.cfg.repuser
	source["dbname"] = "replication"
	kept, err := c.cfg.inst.Reclone(ctx, source, ".rampart-old-"+c.now().UTC().Format("20060102T150405"))
	if err != nil {
		return err
	}
	c.log.Info("rejoin: re-cloned with pg_basebackup; the old data directory is kept", "primary", primary, "kept", kept)
	return c.removeForkMarker()
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
	// (A crashed primary's demote has set it already: unchanged, it does
	// not abort Pacemaker's transition.)
	if err := pacemaker.SetTransient(ctx, c.run, c.node, StateAttr(c.rsc), StateStopped, false); err != nil {
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
	unlock, err := c.lockDataDir(ctx, "rejoin")
	if err != nil {
		return 0, err
	}
	defer unlock()
	in, err := c.observeStart(ctx, "rejoin")
	if err != nil {
		return 0, err
	}
	ok, why := DecideRejoin(in)
	c.log.Info("rejoin decision", "rejoin", ok, "reason", why)
	if !ok {
		return 0, ocf.Errorf(ocf.ErrGeneric, "rejoin %s: %s", c.node, why)
	}
	if in.Fork.Forked {
		c.log.Warn("discarding WAL past the fork: "+in.Fork.Discarded(), "primary", in.Primary)
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
	if in.Primary, err = c.otherPrimary(ctx); err != nil || in.Running || in.Primary == "" {
		return in, err
	}
	in.Durable = c.cfg.policy.Count > 0 && c.cfg.policy.Mode == Durability
	in.Fork, in.ForkChecked = c.forkOfStopped(ctx, in.Control, in.Primary)
	return in, nil
}

// forkOfStopped compares the stopped data directory with the history of
// primary: from the marker its monitor left, else from pg_control and the
// primary's timeline history. checked is false when neither could tell.
func (c *call) forkOfStopped(ctx context.Context, cd pg.ControlData, primary string) (Fork, bool) {
	if m, ok := c.readForkMarker(); ok {
		if m.SystemID == "" || m.SystemID == cd.SystemID {
			return m.Fork, true
		}
		c.log.Warn("ignoring a fork marker of another data directory", "marker", m.String(), "system_identifier", cd.SystemID)
	}
	h, err := pg.ReadHistory(ctx, c.primaryConninfo(primary))
	if err != nil {
		c.log.Warn("cannot compare the data directory with the primary's timeline history: starting; the standby's monitor checks again", "primary", primary, "err", err)
		return Fork{}, false
	}
	walTL, err := pg.WALTimelines(filepath.Join(c.cfg.inst.DataDir, "pg_wal"))
	if err != nil {
		c.log.Warn("pg_wal unreadable", "err", err)
	}
	return CheckFork(StoppedPosition(cd, walTL), primary, h), true
}

// primaryConninfo is how this node reaches primary for replication.
func (c *call) primaryConninfo(primary string) pg.Conninfo {
	return PrimaryConninfo(c.node, primary, c.cfg.inst.Port, c.cfg.repuser, c.cfg.nodeHosts, c.cfg.extraConn)
}

// The fork marker lives beside the data directory (as the start-up log
// does), not in it: a base backup of this standby must not carry it.
func (c *call) forkMarkerPath() string { return filepath.Clean(c.cfg.inst.DataDir) + ".rampart-forked" }

func (c *call) readForkMarker() (ForkMarker, bool) {
	b, err := readNoFollow(c.forkMarkerPath())
	if err != nil {
		return ForkMarker{}, false
	}
	return ParseForkMarker(b)
}

func (c *call) writeForkMarker(m ForkMarker) error {
	f, err := os.OpenFile(c.forkMarkerPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write fork marker: %w", err)
	}
	if _, err := f.WriteString(m.String() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write fork marker: %w", err)
	}
	return f.Close()
}

func (c *call) removeForkMarker() error {
	if err := os.Remove(c.forkMarkerPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove fork marker: %w", err)
	}
	return nil
}

func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// lockDataDir takes the node's data-directory lock for op, so that a start
// by Pacemaker and a `rampart rejoin` never rewrite the directory at the
// same time. It waits while the other holds it, until ctx ends.
func (c *call) lockDataDir(ctx context.Context, op string) (func(), error) {
	path := filepath.Clean(c.cfg.inst.DataDir) + ".rampart-lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s %s: lock %s: %w", op, c.node, path, err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for said := false; ; said = true {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return func() { f.Close() }, nil
		} else if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("%s %s: lock %s: %w", op, c.node, path, err)
		}
		if !said {
			c.log.Info("waiting for another action on this data directory (a start, or rampart rejoin)", "lock", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ocf.Errorf(ocf.ErrGeneric, "%s %s: another action holds %s (a start by Pacemaker, or rampart rejoin): try again when it is done", op, c.node, path)
		case <-tick.C:
		}
	}
}

package pgsql

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// ---- the primary's sync round, against PostgreSQL, attrd and the CIB ----

// manageSync runs on the primary: RunSync decides and orders; these are its
// effects. members are the other nodes Pacemaker runs an instance on (from
// crm_mon, or from a notification before crm_mon shows it).
//
// Without quorum it changes nothing: the record, the scores and the names
// stay as they are (commits that wait for a lost synchronous standby keep
// waiting). A partition without quorum cannot tell what the majority did,
// and a record it wrote would come back with its CIB when it rejoins,
// possibly over the majority's; Pacemaker's no-quorum-policy acts on this
// instance meanwhile.
func (c *call) manageSync(ctx context.Context, conn *pgx.Conn, obs pg.Observation, members []string) error {
	quorate, err := pacemaker.Quorate(ctx, c.run)
	if err != nil {
		return err
	}
	if !quorate {
		c.log.Warn("no quorum: the synchronous set, the promotion scores and the durable record stay as they are until it returns")
		return nil
	}
	fx := &primaryEffects{c: c, conn: conn, first: &obs}
	return RunSync(ctx, fx, SyncRound{Self: c.node, Members: members, Policy: c.cfg.policy, Now: c.now(), Log: c.log})
}

// primaryEffects is SyncEffects on the real primary.
type primaryEffects struct {
	c     *call
	conn  *pgx.Conn
	first *pg.Observation // what the caller observed already: the round's first look
}

func (e *primaryEffects) Observe(ctx context.Context) (PrimaryObservation, error) {
	obs := e.first
	if obs == nil {
		o, err := pg.Observe(ctx, e.conn)
		if err != nil {
			return PrimaryObservation{}, err
		}
		obs = &o
	}
	e.first = nil
	return PrimaryObservation{Timeline: obs.Timeline, LSN: obs.LSN, Rows: standbyRows(obs.Replication), SyncNames: obs.SyncNames}, nil
}

func standbyRows(replicas []pg.Replica) []Standby {
	rows := make([]Standby, 0, len(replicas))
	for _, r := range replicas {
		rows = append(rows, Standby{Name: r.Name, State: r.State, SyncState: r.SyncState, FlushLSN: r.FlushLSN})
	}
	return rows
}

func (e *primaryEffects) Memo(ctx context.Context) (Memo, error) {
	memos, err := pacemaker.QueryTransient(ctx, e.c.run, memoAttr(e.c.rsc))
	if err != nil {
		return Memo{}, err
	}
	return ParseMemo(memos[e.c.node]), nil
}

func (e *primaryEffects) Scores(ctx context.Context) (map[string]int, error) {
	values, err := pacemaker.QueryTransient(ctx, e.c.run, pacemaker.PromotionAttr(e.c.rsc))
	if err != nil {
		return nil, err
	}
	return ParseScores(values), nil
}

func (e *primaryEffects) SetScores(ctx context.Context, changes map[string]int) error {
	for n, s := range changes {
		if err := pacemaker.SetPromotionScore(ctx, e.c.run, e.c.rsc, n, FormatScore(s)); err != nil {
			return err
		}
	}
	return nil
}

func (e *primaryEffects) Quorate(ctx context.Context) (bool, error) {
	return pacemaker.Quorate(ctx, e.c.run)
}

func (e *primaryEffects) Synced(ctx context.Context) (SyncedSet, string, error) {
	opts, err := pacemaker.ClusterOptions(ctx, e.c.run)
	if err != nil {
		return SyncedSet{}, "", err
	}
	s, _ := ParseSyncedSet(opts[SyncedAttr(e.c.rsc)])
	return s, opts[PreferredAttr(e.c.rsc)], nil
}

func (e *primaryEffects) SetSynced(ctx context.Context, s SyncedSet) error {
	if err := pacemaker.SetProperty(ctx, e.c.run, SyncedPropertySet, SyncedAttr(e.c.rsc), s.String()); err != nil {
		return err
	}
	e.c.log.Info("every acknowledged commit is on: "+s.String(), "record", SyncedAttr(e.c.rsc))
	return nil
}

func (e *primaryEffects) PutNames(ctx context.Context, names pg.SyncNames) (pg.LSN, error) {
	value := names.String()
	if _, err := e.c.cfg.inst.SetAutoConfFile(map[string]*string{"synchronous_standby_names": &value}); err != nil {
		return 0, fmt.Errorf("set synchronous_standby_names on %s: %w", e.c.node, err)
	}
	if err := pg.Reload(ctx, e.conn); err != nil {
		return 0, err
	}
	if err := pg.NudgeStandbys(ctx, e.conn); err != nil {
		e.c.log.Warn("waiting commits are released at the standbys' next status reply", "err", err)
	}
	return pg.CurrentLSN(ctx, e.conn)
}

// AwaitStandbys polls pg_stat_replication every 100 ms for up to two
// seconds.
func (e *primaryEffects) AwaitStandbys(ctx context.Context, done func([]Standby) bool) ([]Standby, error) {
	wait, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var rows []Standby
	for {
		obs, err := pg.Observe(wait, e.conn)
		if err != nil {
			if wait.Err() != nil && ctx.Err() == nil {
				return rows, nil // the bound, not a failure
			}
			return nil, err
		}
		if rows = standbyRows(obs.Replication); done(rows) {
			return rows, nil
		}
		select {
		case <-wait.Done():
			return rows, nil
		case <-tick.C:
		}
	}
}

func (e *primaryEffects) SetStates(ctx context.Context, changes map[string]string) error {
	for n, st := range changes {
		if err := pacemaker.SetTransient(ctx, e.c.run, n, StateAttr(e.c.rsc), st, false); err != nil {
			return err
		}
	}
	return nil
}

func (e *primaryEffects) SaveMemo(ctx context.Context, m Memo) error {
	return pacemaker.SetTransient(ctx, e.c.run, e.c.node, memoAttr(e.c.rsc), m.String(), true)
}

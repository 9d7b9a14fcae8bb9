package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Observation is what a running instance says about itself in one round
// trip.
type Observation struct {
	InRecovery bool
	// Timeline: a primary's is the one it writes (its WAL file names say
	// it from the promotion on; the checkpoint's only after the next
	// checkpoint); a standby's the newest of its last checkpoint's and the
	// one its walreceiver receives.
	Timeline  uint32
	LSN       LSN    // primary: pg_current_wal_lsn(); standby: last received (or replayed) position
	ReplayLSN LSN    // standby: pg_last_wal_replay_lsn()
	Receiver  string // standby: walreceiver status ("streaming", …), "" when none
	Sender    string // standby: the host it streams from
	SyncNames string // synchronous_standby_names in force
	// WalSenderTimeout is how long a primary waits for a silent standby
	// before dropping it (wal_sender_timeout; 0: never).
	WalSenderTimeout time.Duration
	Replication      []Replica
	Slots            []Slot // physical replication slots
}

// Slot is one physical replication slot (pg_replication_slots).
type Slot struct {
	Name     string
	Active   bool // a walsender streams through it now
	Reserved bool // it holds WAL back (restart_lsn is set)
}

// Replica is one row of pg_stat_replication.
type Replica struct {
	Name      string
	State     string
	SyncState string
	FlushLSN  LSN
	ReplayLSN LSN
}

const observeSQL = `SELECT pg_is_in_recovery(),
 CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::bigint
  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END,
 CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text ELSE pg_current_wal_lsn()::text END,
 coalesce(pg_last_wal_replay_lsn()::text, '0/0'),
 coalesce((SELECT status FROM pg_stat_wal_receiver), ''),
 coalesce((SELECT sender_host FROM pg_stat_wal_receiver), ''),
 current_setting('synchronous_standby_names'),
 (SELECT setting::bigint * CASE unit WHEN 's' THEN 1000 ELSE 1 END FROM pg_settings WHERE name = 'wal_sender_timeout'),
 (SELECT received_tli FROM pg_stat_wal_receiver)::bigint`

const replicationSQL = `SELECT application_name, coalesce(state, ''), coalesce(sync_state, ''),
 coalesce(flush_lsn::text, '0/0'), coalesce(replay_lsn::text, '0/0')
 FROM pg_stat_replication ORDER BY application_name`

const slotsSQL = `SELECT slot_name::text, active, restart_lsn IS NOT NULL
 FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`

// Observe reads role, positions and replication state in one batch.
func Observe(ctx context.Context, conn *pgx.Conn) (Observation, error) {
	var o Observation
	var tl int64
	var receivedTL *int64
	var lsn, replay string
	var senderMillis int64
	b := &pgx.Batch{}
	b.Queue(observeSQL)
	b.Queue(replicationSQL)
	b.Queue(slotsSQL)
	res := conn.SendBatch(ctx, b)
	defer res.Close()
	if err := res.QueryRow().Scan(&o.InRecovery, &tl, &lsn, &replay, &o.Receiver, &o.Sender, &o.SyncNames, &senderMillis, &receivedTL); err != nil {
		return o, fmt.Errorf("observe: %w", err)
	}
	o.Timeline = uint32(tl)
	o.WalSenderTimeout = time.Duration(senderMillis) * time.Millisecond
	if receivedTL != nil && uint32(*receivedTL) > o.Timeline {
		o.Timeline = uint32(*receivedTL)
	}
	var err error
	if o.LSN, err = ParseLSN(lsn); err != nil {
		return o, err
	}
	if o.ReplayLSN, err = ParseLSN(replay); err != nil {
		return o, err
	}
	rows, err := res.Query()
	if err != nil {
		return o, fmt.Errorf("observe replication: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Replica
		var flush, rep string
		if err := rows.Scan(&r.Name, &r.State, &r.SyncState, &flush, &rep); err != nil {
			return o, err
		}
		r.FlushLSN, _ = ParseLSN(flush)
		r.ReplayLSN, _ = ParseLSN(rep)
		o.Replication = append(o.Replication, r)
	}
	if err := rows.Err(); err != nil {
		return o, err
	}
	rows.Close()
	slots, err := res.Query()
	if err != nil {
		return o, fmt.Errorf("observe slots: %w", err)
	}
	defer slots.Close()
	for slots.Next() {
		var sl Slot
		if err := slots.Scan(&sl.Name, &sl.Active, &sl.Reserved); err != nil {
			return o, err
		}
		o.Slots = append(o.Slots, sl)
	}
	return o, slots.Err()
}

// CreateSlot creates a physical replication slot that holds no WAL until
// a standby first streams through it.
func CreateSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, false)", name); err != nil {
		return fmt.Errorf("create replication slot %s: %w", name, err)
	}
	return nil
}

// DropSlot drops a replication slot.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err != nil {
		return fmt.Errorf("drop replication slot %s: %w", name, err)
	}
	return nil
}

// Reload asks the postmaster to reread its configuration.
func Reload(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}

// Promote ends the standby's recovery and returns once it is a primary:
// pg_promote without its own wait, which looks every 100 ms (as pg_ctl
// promote -w does), then pg_is_in_recovery() every 10 ms. A promotion
// takes tens of milliseconds; the failover's clock runs while it waits.
func Promote(ctx context.Context, conn *pgx.Conn) error {
	var signalled bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(false)").Scan(&signalled); err != nil {
		return fmt.Errorf("pg_promote: %w", err)
	}
	if !signalled {
		return errors.New("pg_promote: the server did not take the request (is it a standby?)")
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return fmt.Errorf("promotion: %w", err)
		}
		if !inRecovery {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promotion not finished: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// NudgeStandbys writes and flushes one commit record without waiting for
// any standby. Commits waiting for a synchronous standby are released only
// when a standby that now counts replies, and an idle standby replies only
// when WAL arrives or at its wal_receiver_status_interval: after a change
// of synchronous_standby_names this makes them reply now.
func NudgeStandbys(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "BEGIN; SET LOCAL synchronous_commit TO local; SELECT pg_current_xact_id(); COMMIT")
	if err != nil {
		return fmt.Errorf("nudge standbys: %w", err)
	}
	return nil
}

// CurrentLSN returns the primary's pg_current_wal_lsn().
func CurrentLSN(ctx context.Context, conn *pgx.Conn) (LSN, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("pg_current_wal_lsn: %w", err)
	}
	return ParseLSN(s)
}

// Checkpoint asks the server at conninfo for a CHECKPOINT (superuser or
// pg_checkpoint). A freshly promoted primary's control file names its new
// timeline only after one, and pg_rewind (before PostgreSQL 16) reads the
// timeline from there.
func Checkpoint(ctx context.Context, conninfo Conninfo) error {
	conn, err := connectConninfo(ctx, conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint on %s: %w", conninfo["host"], err)
	}
	return nil
}

// WritablePrimary says whether the instance conn reaches accepts writes: a
// primary (not in recovery) whose default_transaction_read_only is off.
func WritablePrimary(ctx context.Context, conn *pgx.Conn) (bool, string, error) {
	var recovery bool
	var readOnly string
	err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')").Scan(&recovery, &readOnly)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("ask whether PostgreSQL is a writable primary: %w", err)
	case recovery:
		return false, "PostgreSQL is a standby", nil
	case readOnly == "on":
		return false, "PostgreSQL is a primary but read-only (default_transaction_read_only)", nil
	}
	return true, "PostgreSQL is a writable primary", nil
}

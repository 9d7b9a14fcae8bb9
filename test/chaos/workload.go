package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/chaos/history"
)

// The workload's shape: a few lists and registers, so that clients meet
// on each, new ones every Epoch: a list read returns the whole list and a
// register's history is searched whole, so both must stay short however
// long a campaign runs.
const (
	Lists     = 3
	Registers = 2
	Epoch     = time.Minute
	// Epochs are the registers the schema creates (at 0) for; a campaign
	// longer than Epochs×Epoch stays on the last epoch's.
	Epochs = 240
	// OpTimeout is each operation's bound, connecting included: short, so
	// that an outage shows as outcomes, not as a hung client.
	OpTimeout = 2 * time.Second
)

// Schema creates the workload's tables, empty lists and registers at 0
// (history's registers start there). pos orders a list by commit: an
// append takes its key's advisory lock before drawing it, and the lock is
// held to the commit.
const Schema = `DROP TABLE IF EXISTS chaos_list, chaos_reg;
DROP SEQUENCE IF EXISTS chaos_pos;
CREATE SEQUENCE chaos_pos;
CREATE TABLE chaos_list (key int NOT NULL, id bigint UNIQUE NOT NULL, pos bigint NOT NULL);
CREATE TABLE chaos_reg (k int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO chaos_reg SELECT k, 0 FROM generate_series(0, 479) k` // Registers×Epochs

// serverCols is what the server says of itself, in the statement that does
// the work: on a primary the timeline of the WAL it writes to.
const serverCols = `host(inet_server_addr()), current_setting('cluster_name'),
 (SELECT system_identifier FROM pg_control_system()),
 CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END,
 pg_is_in_recovery()`

// The statements, by kind.
const (
	appendSQL = `WITH l AS (SELECT pg_advisory_xact_lock(1000 + $1::int))
INSERT INTO chaos_list (key, id, pos) SELECT $1::int, $2::bigint, nextval('chaos_pos') FROM l RETURNING ` + serverCols
	readListSQL = `SELECT coalesce(array_agg(id ORDER BY pos), '{}'), ` + serverCols + ` FROM chaos_list WHERE key = $1`
	readRegSQL  = `SELECT v, ` + serverCols + ` FROM chaos_reg WHERE k = $1`
	writeRegSQL = `UPDATE chaos_reg SET v = $2 WHERE k = $1 RETURNING ` + serverCols
	casSQL      = `WITH u AS (UPDATE chaos_reg SET v = $3 WHERE k = $1 AND v = $2 RETURNING 1)
SELECT EXISTS (SELECT FROM u), ` + serverCols
	// FinalSQL reads every list on a node, in order, for NodeState.
	FinalSQL = `SELECT key || ':' || string_agg(id::text, ',' ORDER BY pos) FROM chaos_list GROUP BY key ORDER BY key`
)

// Target is one address the workload's clients use.
type Target struct {
	Path    history.Path
	Config  *pgx.ConnConfig // with the lab's dialer
	Clients int
	// Barrier: reads, and compare-and-sets (one that does not swap
	// writes nothing), run in a transaction that ends with BarrierSQL
	// and count only once its COMMIT returns (the README's durable read
	// without the pooler): what they saw is then on the synchronous
	// standbys.
	Barrier bool
}

// BarrierSQL writes a WAL record, so that the transaction's COMMIT waits
// for the synchronous standbys (pooler/proxy's barrier, by hand).
const BarrierSQL = "SELECT pg_logical_emit_message(true, 'rampart', 'durable read')"

// Workload runs clients and records their operations.
type Workload struct {
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	targets []Target
	nodes   map[string]string // server address → host name
	seed    uint64
	pace    time.Duration

	nextOp    atomic.Int64
	nextValue atomic.Int64 // appended ids and register values: unique, never 0
	mu        sync.Mutex
	ops       []history.Op
	stop      chan struct{}
	wg        sync.WaitGroup
}

// NewWorkload prepares clients on targets, each running one operation
// per pace at most; nodes maps a database host's address to its name;
// times count from started.
func NewWorkload(targets []Target, nodes map[string]string, seed uint64, pace time.Duration, started time.Time, now func() time.Time, log *slog.Logger) *Workload {
	return &Workload{log: log, now: now, started: started, targets: targets, nodes: nodes, seed: seed, pace: pace, stop: make(chan struct{})}
}

// Start runs the clients until Stop.
func (w *Workload) Start() {
	client := 0
	for _, t := range w.targets {
		for range t.Clients {
			client++
			w.wg.Add(1)
			go w.client(client, t)
		}
	}
}

// Stop ends the clients and waits for them.
func (w *Workload) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// Ops is every operation so far, in completion order.
func (w *Workload) Ops() []history.Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

// Counts is how many operations ended ok, failed and unknown.
func (w *Workload) Counts() (ok, failed, unknown int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range w.ops {
		switch op.Outcome {
		case history.OK:
			ok++
		case history.Failed:
			failed++
		default:
			unknown++
		}
	}
	return ok, failed, unknown
}

// since is t as an offset from the start.
func (w *Workload) since() time.Duration { return w.now().Sub(w.started) }

// Choose draws a client's next operation in epoch: mostly appends and
// reads of that epoch's lists, some operations on its registers. A
// compare-and-set expects the value the client last read or wrote, so
// that some swap.
func Choose(r *rand.Rand, last map[int]int64, epoch int) history.Op {
	epoch = min(max(epoch, 0), Epochs-1)
	op := history.Op{}
	switch n := r.IntN(100); {
	case n < 40:
		op.Kind, op.Key = history.Append, epoch*Lists+r.IntN(Lists)
	case n < 65:
		op.Kind, op.Key = history.ReadList, epoch*Lists+r.IntN(Lists)
	case n < 75:
		op.Kind, op.Key = history.ReadRegister, epoch*Registers+r.IntN(Registers)
	case n < 85:
		op.Kind, op.Key = history.WriteRegister, epoch*Registers+r.IntN(Registers)
	default:
		op.Kind, op.Key = history.CompareAndSet, epoch*Registers+r.IntN(Registers)
		op.Expect = last[op.Key]
	}
	return op
}

func (w *Workload) client(id int, t Target) {
	defer w.wg.Done()
	r := rand.New(rand.NewPCG(w.seed, uint64(id)))
	last := map[int]int64{}
	var conn *pgx.Conn
	session := 0
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	pace := time.NewTicker(w.pace)
	defer pace.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-pace.C:
		}
		op := Choose(r, last, int(w.since()/Epoch))
		op.Client, op.Path = id, t.Path
		if op.Kind.IsWrite() {
			op.Value = w.nextValue.Add(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
		op.Invoked = w.since()
		var err error
		if conn == nil {
			session++
			conn, err = pgx.ConnectConfig(ctx, t.Config)
			if err != nil {
				conn = nil
				err = fmt.Errorf("connect: %w", err)
			}
		}
		op.Session = session
		if err == nil {
			err = w.do(ctx, conn, &op, t.Barrier)
		}
		cancel()
		op.Completed = w.since()
		op.Outcome = Classify(err)
		if err != nil && conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
		if op.Outcome == history.OK {
			switch op.Kind {
			case history.ReadRegister, history.WriteRegister:
				last[op.Key] = op.Value
			case history.CompareAndSet:
				if op.Swapped {
					last[op.Key] = op.Value
				}
			}
		}
		w.record(op)
	}
}

func (w *Workload) record(op history.Op) {
	op.ID = int(w.nextOp.Add(1))
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// do runs op on conn, filling in what the server answered; with barrier,
// a read ends with BarrierSQL in its transaction.
func (w *Workload) do(ctx context.Context, conn *pgx.Conn, op *history.Op, barrier bool) error {
	var sv serverRow
	var err error
	// read runs a statement whose answer may show what it did not write
	// itself; with barrier, in a transaction ending with BarrierSQL.
	read := func(sql string, args []any, dest ...any) error {
		if !barrier {
			return conn.QueryRow(ctx, sql, args...).Scan(dest...)
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, BarrierSQL)
			return err
		})
	}
	switch op.Kind {
	case history.Append:
		err = conn.QueryRow(ctx, appendSQL, op.Key, op.Value).Scan(sv.dest()...)
	case history.ReadList:
		var list []int64
		err = read(readListSQL, []any{op.Key}, append([]any{&list}, sv.dest()...)...)
		op.List = list
	case history.ReadRegister:
		err = read(readRegSQL, []any{op.Key}, append([]any{&op.Value}, sv.dest()...)...)
	case history.WriteRegister:
		err = conn.QueryRow(ctx, writeRegSQL, op.Key, op.Value).Scan(sv.dest()...)
	case history.CompareAndSet:
		// A compare-and-set that does not swap writes nothing, so its
		// COMMIT waits for no standby: its "no" is a read of the value
		// it found (seed 2026: a "no" on a value a failover took back).
		err = read(casSQL, []any{op.Key, op.Expect, op.Value}, append([]any{&op.Swapped}, sv.dest()...)...)
	default:
		return fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s %d: no row", op.Kind, op.Key)
		}
		return fmt.Errorf("%s %d: %w", op.Kind, op.Key, err)
	}
	op.Server = sv.server(w.nodes)
	return nil
}

// serverRow is serverCols as scanned.
type serverRow struct {
	addr, cluster, walfile string
	sysid                  int64
	standby                bool
}

func (s *serverRow) dest() []any { return []any{&s.addr, &s.cluster, &s.sysid, &s.walfile, &s.standby} }

func (s serverRow) server(nodes map[string]string) history.Server {
	node := nodes[s.addr]
	if node == "" { // through the VIP the server's address is the VIP's
		node = s.cluster
	}
	return history.Server{Node: node, SystemID: uint64(s.sysid), Timeline: Timeline(s.walfile), Standby: s.standby}
}

// Timeline is the timeline of a WAL file name (its first 8 hex digits); 0
// when there is none.
func Timeline(walfile string) uint32 {
	if len(walfile) < 8 {
		return 0
	}
	tl, err := strconv.ParseUint(walfile[:8], 16, 32)
	if err != nil {
		return 0
	}
	return uint32(tl)
}

// ParseFinal reads FinalSQL's output ("key:id,id,…" a line) into lists.
func ParseFinal(out string) (map[int][]int64, error) {
	lists := map[int][]int64{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, ids, ok := strings.Cut(line, ":")
		key, err := strconv.Atoi(k)
		if !ok || err != nil {
			return nil, fmt.Errorf("final lists: bad line %q", line)
		}
		for _, f := range strings.Split(ids, ",") {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("final lists: bad id in %q: %w", line, err)
			}
			lists[key] = append(lists[key], id)
		}
	}
	return lists, nil
}

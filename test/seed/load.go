package seed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/test/lab"
)

// Load is the steady mixed load of the client host: writers commit one
// INSERT per transaction through the writes' address (every acknowledged
// id kept, to find lost commits), readers run a small query on the
// standbys. Each client is paced, so the cluster keeps its share of the
// two cores; a failed statement or connection counts as a client error and
// the client connects again.
type Load struct {
	rec      *Recorder
	writeCfg *pgx.ConnConfig
	readCfgs []*pgx.ConnConfig
	writers  int
	pace     time.Duration
	patience time.Duration // per statement, connecting included: longer is a client error
	nextID   atomic.Int64
	mu       sync.Mutex
	acked    []int64
	errs     map[string]int // client errors by what the client was told
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Table names the load's tables.
const (
	ackedTable = "seed_acked"
	readTable  = "seed_read"
)

// NewLoad prepares a load from the client host: writers connecting with
// writeConn, a reader per readConns entry (libpq key=value settings: host,
// port, target_session_attrs, …).
func NewLoad(l *lab.Lab, rec *Recorder, writeConn string, readConns []string, writers int, pace time.Duration) (*Load, error) {
	dial, err := l.Dialer("client")
	if err != nil {
		return nil, err
	}
	conf := func(extra string) (*pgx.ConnConfig, error) {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("port=5432 user=%s password=%s dbname=%s connect_timeout=2 %s",
			lab.AppUser, l.Password(lab.AppUser), lab.AppDatabase, extra))
		if err != nil {
			return nil, err
		}
		cfg.DialFunc = dial
		return cfg, nil
	}
	ld := &Load{rec: rec, writers: writers, pace: pace, patience: 3 * time.Second, errs: map[string]int{}, stop: make(chan struct{})}
	if ld.writeCfg, err = conf(writeConn); err != nil {
		return nil, err
	}
	for _, rc := range readConns {
		cfg, err := conf(rc)
		if err != nil {
			return nil, err
		}
		ld.readCfgs = append(ld.readCfgs, cfg)
	}
	return ld, nil
}

// Setup creates the tables (on the primary, through the writes' address).
func (ld *Load) Setup(ctx context.Context) error {
	c, err := pgx.ConnectConfig(ctx, ld.writeCfg)
	if err != nil {
		return fmt.Errorf("load setup: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, `DROP TABLE IF EXISTS `+ackedTable+`, `+readTable+`;
CREATE TABLE `+ackedTable+` (id bigint PRIMARY KEY, at timestamptz DEFAULT now());
CREATE TABLE `+readTable+` AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g;
ALTER TABLE `+readTable+` ADD PRIMARY KEY (id)`)
	if err != nil {
		return fmt.Errorf("load setup: %w", err)
	}
	return nil
}

// Start runs the clients until Stop.
func (ld *Load) Start() {
	for i := 0; i < ld.writers; i++ {
		ld.wg.Add(1)
		go ld.client("write", ld.writeCfg, ld.write)
	}
	for _, cfg := range ld.readCfgs {
		ld.wg.Add(1)
		go ld.client("read", cfg, ld.read)
	}
}

// Stop ends the clients and waits for them.
func (ld *Load) Stop() {
	select {
	case <-ld.stop:
	default:
		close(ld.stop)
	}
	ld.wg.Wait()
}

// failed counts a client error, and remembers what the client was told.
func (ld *Load) failed(what string, err error) {
	ld.rec.Count(Error)
	msg := err.Error()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg = pe.Code + " " + pe.Message
	}
	msg = strings.Join(strings.Fields(msg), " ") // pgx puts each address tried on a line of its own
	ld.mu.Lock()
	ld.errs[what+": "+msg]++
	ld.mu.Unlock()
}

// Errors are the client errors so far, most frequent first: "what: message (count)".
func (ld *Load) Errors() []string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	keys := slices.Collect(maps.Keys(ld.errs))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(ld.errs[b]-ld.errs[a], strings.Compare(a, b)) })
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s (%d)", k, ld.errs[k]))
	}
	return out
}

func (ld *Load) client(kind string, cfg *pgx.ConnConfig, do func(context.Context, *pgx.Conn) error) {
	defer ld.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	pace := time.NewTicker(ld.pace)
	defer pace.Stop()
	for {
		select {
		case <-ld.stop:
			return
		case <-pace.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), ld.patience)
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				cancel()
				ld.failed("connect", err)
				continue
			}
			conn = c
		}
		err := do(ctx, conn)
		cancel()
		if err != nil {
			ld.failed(kind, err)
			conn.Close(context.Background())
			conn = nil
		}
	}
}

func (ld *Load) write(ctx context.Context, c *pgx.Conn) error {
	id := ld.nextID.Add(1)
	if _, err := c.Exec(ctx, "INSERT INTO "+ackedTable+" (id) VALUES ($1)", id); err != nil {
		return err
	}
	ld.mu.Lock()
	ld.acked = append(ld.acked, id)
	ld.mu.Unlock()
	ld.rec.Count(Write)
	return nil
}

func (ld *Load) read(ctx context.Context, c *pgx.Conn) error {
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+readTable+" WHERE id % 97 = $1", time.Now().UnixNano()%97).Scan(&n); err != nil {
		return err
	}
	ld.rec.Count(Read)
	return nil
}

// Lost lists the acknowledged ids the primary (reached through the
// writes' address) does not have.
func (ld *Load) Lost(ctx context.Context) ([]int64, int, error) {
	ld.mu.Lock()
	acked := append([]int64(nil), ld.acked...)
	ld.mu.Unlock()
	c, err := pgx.ConnectConfig(ctx, ld.writeCfg)
	if err != nil {
		return nil, len(acked), fmt.Errorf("check lost commits: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	// On the primary: through the pooler a plain SELECT is a read, which a
	// standby may answer before it has replayed the last commits; a
	// transaction block goes to the primary.
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, len(acked), fmt.Errorf("check lost commits: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, "SELECT id FROM "+ackedTable)
	if err != nil {
		return nil, len(acked), fmt.Errorf("check lost commits: %w", err)
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, len(acked), err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, len(acked), err
	}
	var lost []int64
	for _, id := range acked {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	return lost, len(acked), nil
}

// describeIDs shortens a list of ids for a report.
func describeIDs(ids []int64) string {
	var s []string
	for _, id := range ids[:min(len(ids), 10)] {
		s = append(s, fmt.Sprint(id))
	}
	if len(ids) > 10 {
		s = append(s, "…")
	}
	return strings.Join(s, ", ")
}

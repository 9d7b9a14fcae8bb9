package lab

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Writer is a client host's write load that records every acknowledged
// commit: one connection at a time, one INSERT per transaction into table
// acked, paced so that the cluster keeps its share of the machine.
type Writer struct {
	// Table is where it writes ("acked"); set it before Start to run two
	// loads side by side.
	Table string
	// Timeout bounds each attempt, connecting included (3 s); set it
	// before Start. An attempt that takes longer is an error.
	Timeout time.Duration
	fresh   bool // a new connection for every attempt (a prober)
	cfg     *pgx.ConnConfig
	every   time.Duration
	mu      sync.Mutex
	acked   []Ack
	errors  int
	stop    chan struct{}
	done    chan struct{}
}

// Ack is one acknowledged commit.
type Ack struct {
	ID     int64
	At     time.Time
	Server string // address of the server that acknowledged it
}

// NewWriter returns a load that runs on host (usually "client") against
// conninfo (hosts, target_session_attrs, …) as the lab's app user, one
// transaction per every at most.
func (l *Lab) NewWriter(host, conninfo string, every time.Duration) (*Writer, error) {
	// conninfo comes last: its settings (a pooler's port) win.
	cfg, err := pgx.ParseConfig(fmt.Sprintf("port=5432 user=%s password=%s dbname=%s connect_timeout=2 %s",
		AppUser, l.Password(AppUser), AppDatabase, conninfo))
	if err != nil {
		return nil, err
	}
	dial, err := l.Dialer(host)
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = dial
	return NewWriterConfig(cfg, every), nil
}

// Probing is how the lab measures an outage from a client's side: a
// prober starts one short write every ProbeEvery, each on a new connection
// that must be made and used within ProbeTimeout (attempts overlap). A write
// load's connection waits out its own timeouts and TCP's retransmissions,
// which round its figures to about a second; a prober's first success
// after a fault is its end to about 100 ms, and says what a client that
// connects afresh (a web request, a pool's new connection) sees.
const (
	ProbeEvery   = 100 * time.Millisecond
	ProbeTimeout = 500 * time.Millisecond
)

// NewProber returns a prober on host (usually "client") against conninfo,
// writing into table (which Start creates): a Writer whose acknowledged
// writes are its successes (AckedSince(fault, "") gives the first).
func (l *Lab) NewProber(host, conninfo, table string) (*Writer, error) {
	w, err := l.NewWriter(host, conninfo, ProbeEvery)
	if err != nil {
		return nil, err
	}
	w.Table, w.Timeout, w.fresh = table, ProbeTimeout, true
	return w, nil
}

// NewWriterConfig returns a load that connects with cfg (its DialFunc
// decides where from), one transaction per every at most.
func NewWriterConfig(cfg *pgx.ConnConfig, every time.Duration) *Writer {
	return &Writer{Table: "acked", Timeout: 3 * time.Second, cfg: cfg, every: every, stop: make(chan struct{}), done: make(chan struct{})}
}

func (w *Writer) table() string { return pgx.Identifier{w.Table}.Sanitize() }

// Exec runs one statement on a fresh connection.
func (w *Writer) Exec(ctx context.Context, sql string) error {
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}

// Start creates the table and starts writing.
func (w *Writer) Start(ctx context.Context) error {
	if err := w.Exec(ctx, "CREATE TABLE "+w.table()+" (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		return err
	}
	go w.run()
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	if w.fresh {
		w.probe()
		return
	}
	var conn *pgx.Conn
	pace := time.NewTicker(w.every)
	defer pace.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-w.stop:
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		case <-pace.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, w.cfg)
			if err != nil {
				cancel()
				w.mu.Lock()
				w.errors++
				w.mu.Unlock()
				continue
			}
			conn = c
		}
		_, err := conn.Exec(ctx, "INSERT INTO "+w.table()+" (id) VALUES ($1)", id)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, Ack{id, time.Now(), conn.PgConn().Conn().RemoteAddr().String()})
		} else {
			w.errors++
		}
		w.mu.Unlock()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
	}
}

// probe starts an attempt at every tick, without waiting for the ones
// still running: an attempt whose SYN was lost while an address moved
// waits out its timeout, and the next tick's attempt is already on its way.
func (w *Writer) probe() {
	var running sync.WaitGroup
	defer running.Wait()
	pace := time.NewTicker(w.every)
	defer pace.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-w.stop:
			return
		case <-pace.C:
		}
		running.Add(1)
		go func() {
			defer running.Done()
			w.attempt(id)
		}()
	}
}

// attempt is one probe: connect, insert id, disconnect, within w.Timeout.
func (w *Writer) attempt(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err == nil {
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "INSERT INTO "+w.table()+" (id) VALUES ($1)", id)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errors++
		return
	}
	// Stamped under the lock: acked stays in time order.
	w.acked = append(w.acked, Ack{id, time.Now(), c.PgConn().Conn().RemoteAddr().String()})
}

// Stop ends the load and waits for it; calling it again does nothing.
func (w *Writer) Stop() {
	select {
	case <-w.done:
		return
	default:
	}
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Errors counts failed attempts.
func (w *Writer) Errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errors
}

// AckedSince returns how many commits were acknowledged after t, and the
// first of them; with notFrom set, only those acknowledged by other servers
// than that address.
func (w *Writer) AckedSince(t time.Time, notFrom string) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, first := 0, time.Time{}
	for _, a := range w.acked {
		if a.At.After(t) && (notFrom == "" || !strings.HasPrefix(a.Server, notFrom+":")) {
			if n == 0 {
				first = a.At
			}
			n++
		}
	}
	return n, first
}

// AckedBy returns how many commits the server at addr ("" for any)
// acknowledged in [from, to).
func (w *Writer) AckedBy(addr string, from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.acked {
		if !a.At.Before(from) && a.At.Before(to) && (addr == "" || strings.HasPrefix(a.Server, addr+":")) {
			n++
		}
	}
	return n
}

// LongestStall returns the longest time without an acknowledgement between
// from and to.
func (w *Writer) LongestStall(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, longest := from, time.Duration(0)
	for _, a := range w.acked {
		if a.At.Before(from) || a.At.After(to) {
			continue
		}
		longest = max(longest, a.At.Sub(last))
		last = a.At
	}
	return max(longest, to.Sub(last))
}

// IDs returns the acknowledged ids.
func (w *Writer) IDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]int64, len(w.acked))
	for i, a := range w.acked {
		ids[i] = a.ID
	}
	return ids
}

// Missing returns the acknowledged ids that the primary the load now
// reaches does not have.
func (w *Writer) Missing(ctx context.Context) ([]int64, error) {
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// On the primary: through a pooler a plain SELECT is a read, which a
	// standby may answer before it has replayed the last commits; a
	// transaction block goes to the primary.
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, "SELECT id FROM "+w.table())
	if err != nil {
		return nil, err
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var lost []int64
	for _, id := range w.IDs() {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

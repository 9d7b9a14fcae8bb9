package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/lab"
)

// writer is the client host's write load: one connection at a time to
// whichever database host accepts writes (libpq's target_session_attrs),
// one INSERT per transaction, every acknowledged id recorded.
type writer struct {
	cfg    *pgx.ConnConfig
	mu     sync.Mutex
	acked  []ack
	errors int
	stop   chan struct{}
	done   chan struct{}
}

type ack struct {
	id     int64
	at     time.Time
	server string // address of the server that acknowledged it
}

func newWriter(t *testing.T, l *lab.Lab) *writer {
	t.Helper()
	var hosts []string
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			hosts = append(hosts, h.Addr.String())
		}
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 user=%s password=%s dbname=%s connect_timeout=2 target_session_attrs=read-write",
		strings.Join(hosts, ","), lab.AppUser, l.Password(lab.AppUser), lab.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = dial
	return &writer{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
}

func (w *writer) exec(ctx context.Context, sql string, args ...any) error {
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql, args...)
	return err
}

// run writes until stopped, one transaction every 10 ms at most (the
// machine has two cores; the cluster must keep its share).
func (w *writer) run() {
	defer close(w.done)
	var conn *pgx.Conn
	pace := time.NewTicker(10 * time.Millisecond)
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
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, w.cfg)
			if err != nil {
				cancel()
				w.mu.Lock()
				w.errors++
				w.mu.Unlock()
				pause(w.stop, 50*time.Millisecond)
				continue
			}
			conn = c
		}
		_, err := conn.Exec(ctx, "INSERT INTO acked (id) VALUES ($1)", id)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, ack{id, time.Now(), conn.PgConn().Conn().RemoteAddr().String()})
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

// pause waits d or until stop closes; it paces retries, not the test.
func pause(stop chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
	}
}

func (w *writer) halt() {
	close(w.stop)
	<-w.done
}

// ackedSince returns how many commits were acknowledged after t, and the
// first of them; with notFrom set, only by other servers than that address.
func (w *writer) ackedSince(t time.Time, notFrom string) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, first := 0, time.Time{}
	for _, a := range w.acked {
		if a.at.After(t) && (notFrom == "" || !strings.HasPrefix(a.server, notFrom+":")) {
			if n == 0 {
				first = a.at
			}
			n++
		}
	}
	return n, first
}

// longestStall returns the longest time without an acknowledgement between
// from and to.
func (w *writer) longestStall(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, longest := from, time.Duration(0)
	for _, a := range w.acked {
		if a.at.Before(from) || a.at.After(to) {
			continue
		}
		longest = max(longest, a.at.Sub(last))
		last = a.at
	}
	return max(longest, to.Sub(last))
}

func (w *writer) ids() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]int64, len(w.acked))
	for i, a := range w.acked {
		ids[i] = a.id
	}
	return ids
}

// missing returns the acknowledged ids that the primary does not have.
func (w *writer) missing(ctx context.Context) ([]int64, error) {
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, "SELECT id FROM acked")
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
	for _, id := range w.ids() {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

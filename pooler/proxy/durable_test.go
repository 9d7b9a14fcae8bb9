package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/test/lab"
)

// PostgreSQL shows a commit to other sessions before its synchronous
// standbys confirm it: with synchronous_standby_names naming a standby
// that never comes, a direct reader, and a reader through the pooler
// without durable_reads, see a row whose INSERT is still waiting; had the
// primary died then, the promoted standby would not have it (the chaos
// campaign's "vanished reads"). Through a pooler with durable_reads the
// read is withheld and fails with 40003 after durable_read_timeout; once
// the commit is confirmed, the same read returns the row.
func testDurableReads(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := pl.cfg
	cfg.DurableReads, cfg.DurableReadTimeout = true, 2*time.Second
	_, stop := pl.serve(t, cfg, 6433)
	defer stop()

	plain := pl.connect(t, ctx, "")
	durable := pl.connect(t, ctx, "port=6433")
	if _, err := plain.Exec(ctx, "CREATE TABLE IF NOT EXISTS durable_probe (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	// A read on the primary: a transaction block goes there.
	read := func(c *pgx.Conn, id int) (int, time.Duration, error) {
		start := time.Now()
		tx, err := c.Begin(ctx)
		if err != nil {
			return 0, time.Since(start), err
		}
		defer tx.Rollback(ctx)
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM durable_probe WHERE id = $1", id).Scan(&n); err != nil {
			return 0, time.Since(start), err
		}
		return n, time.Since(start), tx.Commit(ctx)
	}
	// Durable reads cost a barrier on the primary: measured against the
	// plain pooler, side by side.
	for _, c := range []struct {
		name string
		conn *pgx.Conn
	}{{"durable_reads=off", plain}, {"durable_reads=on", durable}} {
		var took []time.Duration
		for range 50 {
			_, d, err := read(c.conn, -1)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			took = append(took, d)
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		t.Logf("%s: a read transaction on the primary takes %s (median of 50)", c.name, took[25].Round(10*time.Microsecond))
	}

	if _, err := pl.l.Psql(ctx, "n1", "ALTER SYSTEM SET synchronous_standby_names = 'nobody'"); err != nil {
		t.Fatal(err)
	}
	reset := func() {
		pl.l.Psql(context.Background(), "n1", "ALTER SYSTEM RESET synchronous_standby_names")
		pl.l.Psql(context.Background(), "n1", "SELECT pg_reload_conf()")
	}
	defer reset()
	if _, err := pl.l.Psql(ctx, "n1", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	// The writer goes straight to n1 and waits for a standby named nobody;
	// its wait is cancelled (a client's timeout does that), which leaves
	// the commit visible on n1 though no standby has it ("canceling wait
	// for synchronous replication ... committed locally").
	direct := pl.connectTo(t, ctx, "n1")
	written := make(chan error, 1)
	go func() {
		_, err := direct.Exec(ctx, "INSERT INTO durable_probe VALUES (1)")
		written <- err
	}()
	if err := lab.WaitFor(ctx, "the INSERT waiting for a synchronous standby, then cancelled", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		out, err := pl.l.Psql(ctx, "n1", "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
		return strings.TrimSpace(out) == "1", fmt.Sprintf("cancelled %q %v", out, err), nil
	}); err != nil {
		t.Fatal(err)
	}
	<-written
	if n, _, err := read(plain, 1); n != 1 {
		t.Fatalf("through the pooler without durable_reads: count %d, %v; want the row PostgreSQL shows", n, err)
	}
	n, took, err := read(durable, 1)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "40003" {
		t.Fatalf("durable_reads: read of a commit not yet on the synchronous standbys: count %d, err %v; want it withheld with 40003", n, err)
	}
	t.Logf("durable_reads withheld the unconfirmed row for %s, then: %s (%s)", took.Round(100*time.Millisecond), pe.Code, pe.Message)
	if took < cfg.DurableReadTimeout {
		t.Errorf("the error came after %s, before durable_read_timeout (%s)", took, cfg.DurableReadTimeout)
	}

	// n2 is the synchronous standby now, and streams: the next barrier
	// commits once n2 has flushed past the row, and the row is shown.
	if _, err := pl.l.Psql(ctx, "n1", "ALTER SYSTEM SET synchronous_standby_names = 'n2'"); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.l.Psql(ctx, "n1", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	again := pl.connect(t, ctx, "port=6433")
	if n, took, err := read(again, 1); err != nil || n != 1 {
		t.Errorf("durable_reads with n2 synchronous: count %d, %v; want 1", n, err)
	} else {
		t.Logf("with n2 synchronous and streaming, the durable read took %s", took.Round(10*time.Microsecond))
	}
}

// connectTo opens a pgx connection from the client host straight to host's
// PostgreSQL, past the proxy.
func (pl *proxyLab) connectTo(t *testing.T, ctx context.Context, host string) *pgx.Conn {
	t.Helper()
	for addr, h := range pl.addrs {
		if h == host {
			return pl.connectConninfo(t, ctx, "port=5432 host="+addr)
		}
	}
	t.Fatalf("no lab host %s", host)
	return nil
}

func TestShowsData(t *testing.T) {
	tag := func(s string) []byte { return append(append([]byte{'C', 0, 0, 0, byte(4 + len(s) + 1)}, s...), 0) }
	for _, tt := range []struct {
		name string
		typ  byte
		msg  []byte
		want bool
	}{
		{"a row", 'D', nil, true},
		{"an error", 'E', nil, true},
		{"a notification", 'A', nil, true},
		{"a row count", 'C', tag("UPDATE 0"), true},
		{"SELECT's tag", 'C', tag("SELECT 1"), true},
		{"BEGIN", 'C', tag("BEGIN"), false},
		{"COMMIT", 'C', tag("COMMIT"), false},
		{"ROLLBACK", 'C', tag("ROLLBACK"), false},
		{"a malformed tag is held", 'C', []byte{'C', 0, 0, 0, 4}, true},
		{"ReadyForQuery", 'Z', nil, false},
		{"ParseComplete", '1', nil, false},
		{"RowDescription", 'T', nil, false},
	} {
		if got := showsData(tt.typ, tt.msg); got != tt.want {
			t.Errorf("%s: showsData = %v, want %v", tt.name, got, tt.want)
		}
	}
}

package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/test/lab"
)

// read_your_writes = lsn against a standby that applies WAL a second late
// (recovery_min_apply_delay): a client that writes and at once reads its
// row never misses it, and its reads go back to the standby once it has
// replayed the write, however long after (no window).
func testCausalReads(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, sql := range []string{"ALTER SYSTEM SET recovery_min_apply_delay = '1s'", "SELECT pg_reload_conf()"} {
		if _, err := pl.l.Psql(ctx, "n2", sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, sql := range []string{"ALTER SYSTEM RESET recovery_min_apply_delay", "SELECT pg_reload_conf()"} {
			if _, err := pl.l.Psql(context.Background(), "n2", sql); err != nil {
				t.Errorf("n2: %s: %v", sql, err)
			}
		}
	})
	if _, err := pl.l.PsqlDB(ctx, "n1", lab.AppDatabase, "DROP TABLE IF EXISTS causal; CREATE TABLE causal (id int PRIMARY KEY); ALTER TABLE causal OWNER TO "+lab.AppUser); err != nil {
		t.Fatal(err)
	}
	// Reads go to n2 only (n3 takes none): the delayed standby is the one
	// a stale read would come from.
	cfg := pl.cfg
	cfg.Nodes = append([]Node(nil), cfg.Nodes...)
	cfg.Nodes[2].Weight = 0
	cfg.Policy = route.Policy{MaxLagBytes: 16 << 20, CausalReads: true}
	_, stop := pl.serve(t, cfg, 6433)
	defer stop()
	// The table must be on n2 before the pairs start (its first reads).
	if err := lab.WaitFor(ctx, "the table on n2", 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		out, err := pl.l.PsqlDB(ctx, "n2", lab.AppDatabase, "SELECT to_regclass('causal') IS NOT NULL")
		return out == "t", out, err
	}); err != nil {
		t.Fatal(err)
	}
	c := pl.connect(t, ctx, "port=6433")
	const pairs = 1000
	stale, onStandby := 0, 0
	start := time.Now()
	for id := 1; id <= pairs; id++ {
		seen, standby := writeThenRead(t, ctx, c, id)
		if !seen {
			stale++
		}
		if standby {
			onStandby++
		}
	}
	took := time.Since(start)
	t.Logf("read_your_writes = lsn, n2 applying 1 s late: %d write-then-read pairs in %s, %d stale reads, %d reads (%.1f%%) served by the standby",
		pairs, took.Round(time.Millisecond), stale, onStandby, 100*float64(onStandby)/pairs)
	if stale > 0 {
		t.Errorf("%d of %d reads missed the client's own write", stale, pairs)
	}
	// Once n2 has replayed the last write, the client's reads go there
	// again: no window, only the position.
	if err := lab.WaitFor(ctx, "a read of the last write served by n2", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		var n int
		var standby bool
		if err := c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM causal WHERE id = $1", pairs).Scan(&n, &standby); err != nil {
			return false, "", err
		}
		if n != 1 {
			return false, "", fmt.Errorf("a read missed the client's write %d", pairs)
		}
		return standby, fmt.Sprintf("served by the standby: %v", standby), nil
	}); err != nil {
		t.Error(err)
	}
	// Across connections, with the token: a write on one connection, a
	// read on another that set rampart.read_after to the first's
	// rampart.last_write_lsn sees it; without it, the delayed standby
	// answers, without the row.
	reader := pl.connect(t, ctx, "port=6433")
	if seen, _ := writeThenRead(t, ctx, c, 2*pairs); !seen {
		t.Fatal("the writer missed its own write")
	}
	var id, token string
	if err := c.QueryRow(ctx, "SHOW rampart.last_write_lsn", pgx.QueryExecModeSimpleProtocol).Scan(&token); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRow(ctx, "SELECT count(*) FROM causal WHERE id = $1", 2*pairs).Scan(&n); err != nil || n != 0 {
		t.Errorf("another connection without the token read %d rows (%v), want 0: the standby is a second late", n, err)
	}
	if _, err := reader.Exec(ctx, "SET rampart.read_after = '"+token+"'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRow(ctx, "SELECT count(*)::text FROM causal WHERE id = $1", 2*pairs).Scan(&id); err != nil || id != "1" {
		t.Errorf("another connection with the token (%s) read %s rows (%v), want 1", token, id, err)
	}
	// A client that never wrote reads on n2 at once, delay or not.
	other := pl.connect(t, ctx, "port=6433")
	var standby bool
	if err := other.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil || !standby {
		t.Errorf("a client that never wrote: read on the standby %v (%v)", standby, err)
	}
	// read_your_writes_wait longer than the delay: each read waits for n2
	// to replay the write it follows, and n2 serves it.
	cfg.Policy.CausalWait = 3 * time.Second
	_, stopWaiting := pl.serve(t, cfg, 6434)
	defer stopWaiting()
	w := pl.connect(t, ctx, "port=6434")
	const waited = 10
	start = time.Now()
	onStandby = 0
	for id := pairs + 1; id <= pairs+waited; id++ {
		seen, standby := writeThenRead(t, ctx, w, id)
		if !seen {
			t.Errorf("read %d missed the client's own write", id)
		}
		if standby {
			onStandby++
		}
	}
	t.Logf("read_your_writes_wait = 3s: %d pairs in %s, %d reads served by the standby", waited, time.Since(start).Round(time.Millisecond), onStandby)
	if onStandby != waited {
		t.Errorf("%d of %d reads waited for the standby and got it, want all", onStandby, waited)
	}
}

// writeThenRead inserts id and at once reads it back: whether the read saw
// it, and whether a standby served the read.
func writeThenRead(t *testing.T, ctx context.Context, c *pgx.Conn, id int) (seen, standby bool) {
	t.Helper()
	if _, err := c.Exec(ctx, "INSERT INTO causal VALUES ($1)", id); err != nil {
		t.Fatalf("write %d: %v", id, err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM causal WHERE id = $1", id).Scan(&n, &standby); err != nil {
		t.Fatalf("read %d: %v", id, err)
	}
	return n == 1, standby
}

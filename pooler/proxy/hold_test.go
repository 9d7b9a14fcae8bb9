package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/lab"
)

// The console's HOLD, as a switchover uses it: a transaction that does not
// finish makes it fail within its bound, say where that transaction runs,
// and hold nothing; once nothing runs it holds new transactions (they wait,
// they do not fail) until RESUME; and a console session that ends without
// RESUME releases its hold.
func testHold(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	console := func() *pgx.Conn { return pl.connect(t, ctx, "dbname=rampart default_query_exec_mode=simple_protocol") }
	stat := func(c *pgx.Conn, name string) string {
		t.Helper()
		rows, err := c.Query(ctx, "SHOW STATS")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			if k == name {
				return v
			}
		}
		return "(no " + name + ")"
	}
	adm := console()
	waitHeld := func() {
		t.Helper()
		if err := lab.WaitFor(ctx, "the new transaction held", 10*time.Millisecond, func(context.Context) (bool, string, error) {
			v := stat(adm, "held_transactions")
			return v == "1", "held_transactions " + v, nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// A transaction left open on the primary: the hold cannot complete.
	open := pl.connect(t, ctx, "")
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT txid_current()"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = adm.Exec(ctx, "HOLD 300ms")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "1 on n1") || !strings.Contains(err.Error(), "nothing is held") {
		t.Fatalf("HOLD 300ms beside an open transaction: %v; want a refusal naming 1 on n1", err)
	}
	t.Logf("HOLD beside an open transaction, after %s: %v", took.Round(time.Millisecond), err)
	if took > 3*time.Second {
		t.Errorf("HOLD 300ms took %s to give up", took)
	}
	if got := stat(adm, "paused"); got != "false" {
		t.Errorf("after a failed HOLD paused = %s", got)
	}
	// Nothing is held: the open transaction goes on, others start at once.
	other := pl.connect(t, ctx, "")
	if _, err := other.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("a new transaction after the failed HOLD: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the open transaction after the failed HOLD: %v", err)
	}

	// Nothing runs now: HOLD returns, and a new transaction waits.
	if _, err := adm.Exec(ctx, "HOLD 5s"); err != nil {
		t.Fatalf("HOLD with nothing running: %v", err)
	}
	done := make(chan error, 1)
	var finished time.Time
	go func() {
		_, err := other.Exec(ctx, "SELECT 1")
		finished = time.Now()
		done <- err
	}()
	waitHeld()
	resumed := time.Now()
	if _, err := adm.Exec(ctx, "RESUME"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the held transaction after RESUME: %v", err)
	}
	if finished.Before(resumed) {
		t.Errorf("the held transaction finished at %s, before RESUME at %s", finished, resumed)
	}

	// A hold whose console session ends without RESUME is released.
	adm2 := console()
	if _, err := adm2.Exec(ctx, "HOLD 5s"); err != nil {
		t.Fatal(err)
	}
	if got := stat(adm, "paused"); got != "true" {
		t.Fatalf("during HOLD paused = %s", got)
	}
	go func() {
		_, err := other.Exec(ctx, "SELECT 1")
		done <- err
	}()
	waitHeld()
	adm2.Close(ctx)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the held transaction after its holder left: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the hold outlived the console session that took it")
	}
	if got := stat(adm, "paused"); got != "false" {
		t.Errorf("after the holder left paused = %s", got)
	}
	// A second hold is refused while one is in force.
	if _, err := adm.Exec(ctx, "PAUSE"); err != nil {
		t.Fatal(err)
	}
	_, err = console().Exec(ctx, "HOLD 1s")
	if err == nil || !strings.Contains(err.Error(), "held already") {
		t.Errorf("HOLD during PAUSE: %v", err)
	}
	if _, err := adm.Exec(ctx, "RESUME"); err != nil {
		t.Fatal(err)
	}

	// A hold whose RESUME never comes (the switchover cut off from the
	// pooler) ends by itself after MaxHold.
	cfg := pl.cfg
	cfg.MaxHold = 300 * time.Millisecond
	pl.serve(t, cfg, 6440)
	adm3 := pl.connect(t, ctx, "port=6440 dbname=rampart default_query_exec_mode=simple_protocol")
	client := pl.connect(t, ctx, "port=6440")
	if _, err := adm3.Exec(ctx, "HOLD 1s"); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	if _, err := client.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("a transaction held past MaxHold: %v", err)
	}
	if waited := time.Since(held); waited < 250*time.Millisecond {
		t.Errorf("the held transaction went on after %s, before MaxHold (300ms)", waited)
	}
	if got := stat(adm3, "paused"); got != "false" {
		t.Errorf("after MaxHold paused = %s", got)
	}
}

// HOLD under load: pgbench reads through the proxy (--max-tries=1: any
// error fails a transaction) while the console holds and resumes four
// times. While a hold is in force nothing may run on any server, not even
// a transaction that passed the pause check just before it (the proxy's
// own count, sampled every millisecond); pgbench's clients wait, and not
// one transaction fails.
func testHoldUnderLoad(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bench := startReadBench(t, ctx, pl)
	busy := func(context.Context) (bool, string, error) {
		if err, ended := bench.ended(); ended {
			return false, "", fmt.Errorf("pgbench ended (%v):\n%s", err, bench.out.String())
		}
		r := pl.p.running()
		return r != "", "running: " + r, nil
	}
	adm := pl.connect(t, ctx, "dbname=rampart default_query_exec_mode=simple_protocol")
	held := 0
	for i := range 4 {
		if err := lab.WaitFor(ctx, "pgbench running through the proxy", time.Millisecond, busy); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.Exec(ctx, "HOLD 5s"); err != nil {
			t.Fatalf("hold %d under pgbench: %v", i+1, err)
		}
		end := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(end) {
			if r := pl.p.running(); r != "" {
				t.Fatalf("hold %d: %s while held", i+1, r)
			}
			pl.p.mu.Lock()
			held = max(held, pl.p.waiting)
			pl.p.mu.Unlock()
			time.Sleep(time.Millisecond) // sampling the invariant, not waiting for an event
		}
		if _, err := adm.Exec(ctx, "RESUME"); err != nil {
			t.Fatal(err)
		}
	}
	bench.finish(t, fmt.Sprintf("through four HOLD/RESUME cycles (up to %d transactions waiting at once, sampled each millisecond)", held))
	if held == 0 {
		t.Error("no pgbench transaction was ever held: the holds did not meet the load")
	}
}

// readBench is pgbench -S -M prepared -c 8 -T 8 reading through the proxy
// from the client host, with --max-tries=1: any error fails a transaction.
type readBench struct {
	out  strings.Builder
	done chan error
	err  error
	over bool
}

func startReadBench(t *testing.T, ctx context.Context, pl *proxyLab) *readBench {
	t.Helper()
	conn := []string{"-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser}
	cmd, err := pl.l.Exec(ctx, "client", append(append([]string{"pgbench", "-S", "-M", "prepared", "-c", "8", "-j", "2", "-T", "8", "--max-tries=1"}, conn...), lab.AppDatabase)...)
	if err != nil {
		t.Fatal(err)
	}
	b := &readBench{done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	return b
}

// ended says whether pgbench has ended, and how, without waiting.
func (b *readBench) ended() (error, bool) {
	if !b.over {
		select {
		case b.err = <-b.done:
			b.over = true
		default:
		}
	}
	return b.err, b.over
}

// finish waits for pgbench and requires 1 000 transactions or more, none
// failed; what says what ran beside it.
func (b *readBench) finish(t *testing.T, what string) {
	t.Helper()
	if !b.over {
		b.err, b.over = <-b.done, true
	}
	if b.err != nil {
		t.Fatalf("pgbench: %v\n%s", b.err, b.out.String())
	}
	var processed, failed int
	for _, line := range strings.Split(b.out.String(), "\n") {
		fmt.Sscanf(line, "number of transactions actually processed: %d", &processed)
		fmt.Sscanf(line, "number of failed transactions: %d", &failed)
	}
	t.Logf("pgbench -S -M prepared -c 8 %s: %d transactions, %d failed", what, processed, failed)
	if processed < 1000 || failed != 0 || strings.Contains(b.out.String(), "error") {
		t.Errorf("pgbench: %d processed, %d failed\n%s", processed, failed, b.out.String())
	}
}

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

// reader is a read load: one SELECT per pace through one connection,
// reconnecting after an error; it counts errors and keeps the time of
// each answer.
type reader struct {
	mu      sync.Mutex
	answers []time.Time
	errors  []readError
	stop    chan struct{}
	done    chan struct{}
}

type readError struct {
	at  time.Time
	msg string
}

func startReader(t *testing.T, cfg *pgx.ConnConfig, sql string, pace, timeout time.Duration) *reader {
	r := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var conn *pgx.Conn
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				if conn != nil {
					conn.Close(context.Background())
				}
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			var err error
			if conn == nil {
				conn, err = pgx.ConnectConfig(ctx, cfg)
			}
			if err == nil {
				var n int64
				err = conn.QueryRow(ctx, sql).Scan(&n)
			}
			cancel()
			r.mu.Lock()
			if err == nil {
				r.answers = append(r.answers, time.Now())
			} else {
				r.errors = append(r.errors, readError{time.Now(), err.Error()})
				if conn != nil {
					conn.Close(context.Background())
					conn = nil
				}
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(r.Stop)
	return r
}

func (r *reader) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// since returns the answers and errors between from and to, and the
// longest time without an answer then.
func (r *reader) since(from, to time.Time) (answers int, errs []string, stall time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := from
	for _, at := range r.answers {
		if at.Before(from) || at.After(to) {
			continue
		}
		answers++
		stall = max(stall, at.Sub(last))
		last = at
	}
	for _, e := range r.errors {
		if !e.at.Before(from) && !e.at.After(to) {
			errs = append(errs, e.msg)
		}
	}
	return answers, errs, max(stall, to.Sub(last))
}

// Issue 21: a planned switchover with the poolers holding, then a failback
// to the old primary, which streams asynchronously after the first. Under
// a write and a read load through the pooler pair's address, neither gets
// an error nor loses a commit; a write load through the database VIP runs
// side by side and counts the errors its clients get (the contrast). A
// hold that cannot complete (a transaction left open) is refused first,
// changing nothing.
func TestSwitchoverThroughPoolers(t *testing.T) {
	c := lab.DefaultConfig()
	c.ID, c.Poolers, c.Witness = "e2eswpool", 2, true
	l := startLab(t, c)
	ctx := deadline(t, 6*time.Minute)
	if err := l.ManagePostgres(ctx, lab.PgsqlOptions{"rewind_user": lab.RewindUser}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP); err != nil {
		t.Fatal(err)
	}
	if err := l.StartPoolerPair(ctx); err != nil {
		t.Fatal(err)
	}
	poolerAddr := fmt.Sprintf("host=%s port=%d", c.PoolerVIP(), lab.PoolerPort)
	pw, err := l.NewWriter("client", poolerAddr, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The pooler pair's clients wait as long as a hold may last (the
	// default --hold-timeout) before they call it an error.
	pw.Table, pw.Timeout = "acked_pooler", 10*time.Second
	vw, err := l.NewWriter("client", "host="+c.VIP().String(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	vw.Table = "acked_vip"
	startWriters(t, ctx, pw, vw)
	rcfg, err := pgx.ParseConfig(fmt.Sprintf("%s user=%s password=%s dbname=%s connect_timeout=2", poolerAddr, lab.AppUser, l.Password(lab.AppUser), lab.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	if rcfg.DialFunc, err = l.Dialer("client"); err != nil {
		t.Fatal(err)
	}
	rd := startReader(t, rcfg, "SELECT count(*) FROM acked_pooler", 10*time.Millisecond, 10*time.Second)
	if err := lab.WaitFor(ctx, "100 acknowledged writes in each load", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := pw.AckedSince(time.Time{}, "")
		m, _ := vw.AckedSince(time.Time{}, "")
		return n >= 100 && m >= 100, fmt.Sprintf("%d and %d acknowledged", n, m), nil
	}); err != nil {
		t.Fatal(err)
	}
	first, err := l.WaitSyncStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := promoted(ctx, l, first)
	if err != nil || len(p) != 1 {
		t.Fatalf("promoted %v, %v", p, err)
	}
	old := p[0]
	var consoles []string
	for _, u := range l.PoolerConsoles() {
		consoles = append(consoles, "--pooler", u)
	}
	switchover := func(to string, extra ...string) (string, int) {
		return rampart(t, ctx, l, old, append(append([]string{"switchover", "--to", to}, consoles...), extra...)...)
	}

	// A transaction left open through the pooler: the hold cannot
	// complete; refused, nothing moved, nobody got an error.
	open, err := pgx.ConnectConfig(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT txid_current()"); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	pwErrs, vwErrs := pw.Errors(), vw.Errors()
	out, code := switchover(first, "--hold-timeout", "1s")
	if code != 1 || !strings.Contains(out, "transactions still running after 1s") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("switchover beside an open transaction: exit %d\n%s\nwant a refusal saying the hold timed out", code, out)
	}
	t.Logf("switchover beside an open transaction refused: %s", lastLine(out))
	if p, _ := promoted(ctx, l, old); len(p) != 1 || p[0] != old {
		t.Fatalf("after the refused switchover promoted %v; want %s still", p, old)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the open transaction after the refused switchover: %v", err)
	}
	open.Close(ctx)
	_, rerrs, _ := rd.since(before, time.Now())
	if n := pw.Errors() - pwErrs; n != 0 || len(rerrs) != 0 {
		t.Errorf("the refused switchover cost %d write errors and read errors %q through the poolers; want none", n, rerrs)
	}
	if n := vw.Errors() - vwErrs; n != 0 {
		t.Errorf("the refused switchover cost %d write errors through the database VIP; want none", n)
	}

	// The switchover, then the failback: a pause, not an error.
	type figures struct {
		poolerErrs, vipErrs, readErrs int
		writeStall, readStall         time.Duration
		vipStall                      time.Duration
	}
	var lastOut string
	move := func(to string) figures {
		t.Helper()
		pwErrs, vwErrs := pw.Errors(), vw.Errors()
		start := time.Now()
		out, code := switchover(to)
		if code != 0 || !strings.Contains(out, "switchover to "+to+" done") || !strings.Contains(out, "poolers resumed") {
			t.Fatalf("rampart switchover --to %s with the poolers: exit %d\n%s", to, code, out)
		}
		t.Logf("rampart switchover --to %s:\n%s", to, out)
		lastOut = out
		// Writes acknowledged by the new primary through both addresses.
		if err := lab.WaitFor(ctx, "writes after the switchover", 50*time.Millisecond, func(context.Context) (bool, string, error) {
			n, _ := pw.AckedSince(time.Now().Add(-time.Second), "")
			m, _ := vw.AckedSince(start, "")
			return n >= 20 && m >= 20, fmt.Sprintf("%d and %d", n, m), nil
		}); err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		_, readErrs, readStall := rd.since(start, end)
		return figures{
			poolerErrs: pw.Errors() - pwErrs, vipErrs: vw.Errors() - vwErrs, readErrs: len(readErrs),
			writeStall: pw.LongestStall(start, end), readStall: readStall, vipStall: vw.LongestStall(start, end),
		}
	}
	report := func(what string, f figures) {
		t.Logf("%s: through the pooler pair %d write errors, %d read errors, longest write stall %s, read stall %s; through the database VIP %d write errors, longest stall %s",
			what, f.poolerErrs, f.readErrs, f.writeStall.Round(time.Millisecond), f.readStall.Round(time.Millisecond), f.vipErrs, f.vipStall.Round(time.Millisecond))
		if f.poolerErrs != 0 || f.readErrs != 0 {
			t.Errorf("%s: %d write and %d read errors through the pooler pair; want none", what, f.poolerErrs, f.readErrs)
		}
	}
	report(old+" → "+first, move(first))
	// The old primary streams from the new one. A rejoined old primary
	// streams asynchronously (the new primary keeps its synchronous
	// standby): make it so here when the agent chose it, by preferring
	// the third node as an operator could, so that the failback must make
	// it the synchronous standby first.
	if err := l.WaitStreaming(ctx, first, []string{old}); err != nil {
		t.Fatal(err)
	}
	var third string
	for _, h := range l.DBHosts() {
		if h != first && h != old {
			third = h
		}
	}
	state := func(node string) string {
		st, _ := l.NodeAttr(ctx, node, "rampart-"+lab.PgsqlResource+"-state")
		return st
	}
	if state(old) != "async" {
		prefer := "rampart-" + lab.PgsqlResource + "-sync-preferred"
		if _, err := l.Output(ctx, first, "crm_attribute", "--type=crm_config", "--set-name=rampart", "--name="+prefer, "--update="+third); err != nil {
			t.Fatal(err)
		}
		if err := lab.WaitFor(ctx, old+" asynchronous, "+third+" synchronous", 100*time.Millisecond, func(context.Context) (bool, string, error) {
			a, b := state(old), state(third)
			return a == "async" && b == "sync", old + "=" + a + " " + third + "=" + b, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Output(ctx, first, "crm_attribute", "--type=crm_config", "--set-name=rampart", "--name="+prefer, "--delete"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("before the failback %s is %q, %s %q", old, state(old), third, state(third))
	back := old
	old = first
	f := move(back)
	report(old+" → "+back+" (failback, made synchronous first)", f)
	if !strings.Contains(lastOut, "asking the primary to make it its synchronous standby") {
		t.Errorf("the failback to an asynchronous %s did not make it synchronous first:\n%s", back, lastOut)
	}
	if out, _ := l.Output(ctx, back, "cibadmin", "--query", "--scope", "crm_config"); strings.Contains(out, "sync-preferred") {
		t.Errorf("the failback left its preference:\n%s", out)
	}
	requireNoLoss(t, ctx, "pooler pair, database VIP", pw, vw)
}

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/test/lab"
)

func promoted(ctx context.Context, l *lab.Lab, observer string) ([]string, error) {
	s, err := l.Cluster(ctx, observer)
	if err != nil {
		return nil, err
	}
	return s.Promoted(lab.PgsqlResource), nil
}

func otherThan(hosts []string, not string) string {
	for _, h := range hosts {
		if h != not {
			return h
		}
	}
	return ""
}

// scenario is a lab under ocf:rampart:pgsql with the client's write load
// running: at least 100 commits acknowledged when it returns.
type scenario struct {
	l       *lab.Lab
	w       *lab.Writer // libpq multi-host: host=n1,n2,n3 target_session_attrs=read-write
	vw      *lab.Writer // through the VIP (ocf:rampart:vip on the primary)
	probe   *lab.Writer // lab.NewProber through the VIP: outages to 100 ms
	primary string
	db      []string
}

func startScenario(t *testing.T, id string, opts lab.PgsqlOptions) *scenario {
	t.Helper()
	l := startAgentLab(t, id, opts)
	ctx := deadline(t, time.Minute)
	db := l.DBHosts()
	p, err := promoted(ctx, l, db[0])
	if err != nil || len(p) != 1 {
		t.Fatalf("promoted %v, %v; want one", p, err)
	}
	var hosts []string
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			hosts = append(hosts, h.Addr.String())
		}
	}
	if err := l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP); err != nil {
		t.Fatal(err)
	}
	w, err := l.NewWriter("client", "host="+strings.Join(hosts, ",")+" target_session_attrs=read-write", 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	vw, err := l.NewWriter("client", "host="+l.Config().VIP().String(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	vw.Table = "acked_vip"
	probe, err := l.NewProber("client", "host="+l.Config().VIP().String(), "probe")
	if err != nil {
		t.Fatal(err)
	}
	startWriters(t, ctx, w, vw, probe)
	if err := lab.WaitFor(ctx, "100 acknowledged writes in each load before the fault", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(time.Time{}, "")
		m, _ := vw.AckedSince(time.Time{}, "")
		return n >= 100 && m >= 100, fmt.Sprintf("%d and %d acknowledged", n, m), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Faults start from a settled cluster: a standby confirmed synchronous.
	if _, err := l.WaitSyncStandby(ctx); err != nil {
		t.Fatal(err)
	}
	return &scenario{l: l, w: w, vw: vw, probe: probe, primary: p[0], db: db}
}

// startWriters starts each load until the test ends.
func startWriters(t *testing.T, ctx context.Context, ws ...*lab.Writer) {
	t.Helper()
	for _, w := range ws {
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
	}
}

func (s *scenario) addr(host string) string { return s.l.Addr(host) }

// requireNoLoss stops the load and checks every acknowledged commit is on
// the primary (invariant 2).
func (s *scenario) requireNoLoss(t *testing.T, ctx context.Context) {
	t.Helper()
	requireNoLoss(t, ctx, "multi-host, VIP, prober", s.w, s.vw, s.probe)
}

// requireNoLoss stops each load and checks every commit it saw
// acknowledged is on the primary.
func requireNoLoss(t *testing.T, ctx context.Context, what string, ws ...*lab.Writer) {
	t.Helper()
	var counts []string
	for _, w := range ws {
		w.Stop()
		lost, err := w.Missing(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(lost) > 0 {
			t.Errorf("%s: %d acknowledged commits lost (of %d): %v", w.Table, len(lost), len(w.IDs()), lost[:min(len(lost), 20)])
		}
		counts = append(counts, strconv.Itoa(len(w.IDs())))
	}
	t.Logf("%s commits acknowledged (%s), none lost", strings.Join(counts, " + "), what)
}

// failures returns the failed operations Pacemaker records, seen from host.
func (s *scenario) failures(ctx context.Context, host string) []pacemaker.Failure {
	st, err := s.l.Cluster(ctx, host)
	if err != nil {
		return []pacemaker.Failure{{Node: host, ExitReason: "crm_mon: " + err.Error()}}
	}
	return st.Failures
}

// syncStandby returns the standby the primary's pg_stat_replication calls sync.
func (s *scenario) syncStandby(ctx context.Context) string {
	for _, r := range s.l.Postgres(ctx, s.primary).Replication {
		if r.SyncState == "sync" && r.State == "streaming" {
			return r.Name
		}
	}
	return ""
}

// Scenario (a): the primary's postmaster is killed. A synchronous standby
// is promoted, writes resume, no acknowledged commit is lost (invariant 2),
// and the old primary never comes back as primary (invariant 3).
func TestKillPrimaryPostmaster(t *testing.T) {
	s := startScenario(t, "e2ekill", nil)
	l, w, db, old := s.l, s.w, s.db, s.primary
	ctx := deadline(t, 3*time.Minute)

	if _, err := l.KillPostmaster(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now() // the postmaster is gone
	newPrimary := s.waitNewPrimary(t, ctx, old)
	promotedAt := time.Since(fault)
	// The postmaster watcher told Pacemaker (crm_resource --fail records an
	// "asyncmon" failure), not the next monitor.
	if f := s.failures(ctx, newPrimary); !slices.ContainsFunc(f, func(f pacemaker.Failure) bool { return f.Node == old && f.Task == "asyncmon" }) {
		t.Errorf("no failure reported by the postmaster watcher on %s; failures: %+v", old, f)
	}
	// Invariant 4: the new primary names its standbys before its first commit.
	if names, err := l.Psql(ctx, newPrimary, "SHOW synchronous_standby_names"); err != nil || names == "" {
		t.Errorf("new primary %s: synchronous_standby_names = %q (%v), want its standbys named", newPrimary, names, err)
	}
	if err := lab.WaitFor(ctx, "50 writes acknowledged by the new primary", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(fault, s.addr(old))
		return n >= 50, fmt.Sprintf("%d acknowledged since the fault, %d errors", n, w.Errors()), nil
	}); err != nil {
		t.Fatal(err)
	}
	_, first := w.AckedSince(fault, s.addr(old))
	// The VIP follows: writes through it resume too.
	if err := lab.WaitFor(ctx, "20 writes through the VIP after the fault", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := s.vw.AckedSince(fault, "")
		return n >= 20, fmt.Sprintf("%d acknowledged, %d errors", n, s.vw.Errors()), nil
	}); err != nil {
		t.Fatal(err)
	}
	_, firstVIP := s.vw.AckedSince(fault, "")
	t.Logf("fault → %s promoted: %s; fault → first write it acknowledged: %s (multi-host), %s (VIP), %s (VIP, %s)",
		newPrimary, promotedAt.Round(10*time.Millisecond), first.Sub(fault).Round(10*time.Millisecond), firstVIP.Sub(fault).Round(10*time.Millisecond),
		s.probed(t, ctx, fault), proberWords)
	s.requireNoLoss(t, ctx)

	// The old primary: demoted and stopped, never promoted again.
	st, err := l.Cluster(ctx, newPrimary)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(st.Promoted(lab.PgsqlResource), old) {
		t.Errorf("old primary %s is promoted again", old)
	}
	if pg := l.Postgres(ctx, old); pg.Role() == "primary" {
		t.Errorf("old primary %s runs as primary again", old)
	}
	// The remaining standby follows the new primary without restart.
	other := ""
	for _, h := range db {
		if h != old && h != newPrimary {
			other = h
		}
	}
	if err := l.WaitStreaming(ctx, newPrimary, []string{other}); err != nil {
		t.Error(err)
	}
	// It streams through its replication slot on the new primary, which
	// keeps a slot for the stopped old primary too.
	if err := lab.WaitFor(ctx, "slots on the new primary", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		got, err := l.Psql(ctx, newPrimary, "SELECT string_agg(slot_name || '=' || active, ' ' ORDER BY slot_name) FROM pg_replication_slots")
		want := []string{"rampart_" + old + "=false", "rampart_" + other + "=true"}
		slices.Sort(want)
		return got == strings.Join(want, " "), fmt.Sprintf("got %q (%v), want %q", got, err, want), nil
	}); err != nil {
		t.Error(err)
	}

	// Scenario (d) without auto_rejoin: asked to start again, the old
	// primary refuses, saying why and what to do (invariant 3).
	s.cleanup(t, ctx, old)
	if err := lab.WaitFor(ctx, "the old primary's start refused", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		log := l.AgentLog(old)
		return strings.Contains(log, "may have diverged"), "", nil
	}); err != nil {
		t.Error(err)
	}
	if pg := l.Postgres(ctx, old); pg.Up {
		t.Errorf("old primary %s runs again (%s) without auto_rejoin", old, pg.Role())
	}
}

// cleanup clears the fail count of host's instance, so that Pacemaker
// starts it again (what an operator does after a failure).
func (s *scenario) cleanup(t *testing.T, ctx context.Context, host string) {
	t.Helper()
	cmd, err := s.l.Exec(ctx, otherThan(s.db, host), "crm_resource", "--cleanup", "--resource", lab.PgsqlResource+"-clone", "--node", host)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crm_resource --cleanup: %v\n%s", err, out)
	}
}

// Scenario (d) with auto_rejoin: the old primary comes back as a standby of
// the new one, rewound with pg_rewind, and is never promoted.
func TestOldPrimaryRejoins(t *testing.T) {
	s := startScenario(t, "e2erejoin", lab.PgsqlOptions{"auto_rejoin": "true", "rewind_user": lab.RewindUser})
	l, old := s.l, s.primary
	ctx := deadline(t, 3*time.Minute)
	if _, err := l.KillPostmaster(ctx, old); err != nil {
		t.Fatal(err)
	}
	newPrimary := s.waitNewPrimary(t, ctx, old)
	s.cleanup(t, ctx, old)
	if err := l.WaitStreaming(ctx, newPrimary, []string{old}); err != nil {
		t.Fatal(err)
	}
	// Pacemaker logs the agent's words when the start action has returned.
	if err := lab.WaitFor(ctx, "the old primary's log to say it was rewound", 200*time.Millisecond, func(context.Context) (bool, string, error) {
		log := l.AgentLog(old)
		return strings.Contains(log, "rewound with pg_rewind"), log, nil
	}); err != nil {
		t.Error(err)
	}
	if p, _ := promoted(ctx, l, newPrimary); slices.Contains(p, old) {
		t.Errorf("old primary %s promoted again", old)
	}
	s.requireNoLoss(t, ctx)
}

// loseSyncStandby takes the synchronous standby away with fault and
// waits until another standby is synchronous and writes have flowed for
// settle after the fault. It returns the victim, how long the replacement
// took and the longest write stall.
func (s *scenario) loseSyncStandby(t *testing.T, ctx context.Context, fault func(host string) error, settle time.Duration) (string, time.Duration, time.Duration) {
	t.Helper()
	var victim string
	if err := lab.WaitFor(ctx, "a synchronous standby", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		victim = s.syncStandby(ctx)
		return victim != "", "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := fault(victim); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	var replacement string
	if err := lab.WaitFor(ctx, "another synchronous standby", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		replacement = s.syncStandby(ctx)
		return replacement != "" && replacement != victim, "sync: " + replacement, nil
	}); err != nil {
		t.Fatal(err)
	}
	replaced := time.Since(at)
	if err := lab.WaitFor(ctx, fmt.Sprintf("writes acknowledged %s after the fault", settle), 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := s.w.AckedSince(at.Add(settle), "")
		return n >= 20, fmt.Sprintf("%d", n), nil
	}); err != nil {
		t.Fatal(err)
	}
	stall := s.w.LongestStall(at, time.Now())
	t.Logf("sync standby %s lost: %s synchronous after %s; longest write stall %s",
		victim, replacement, replaced.Round(10*time.Millisecond), stall.Round(10*time.Millisecond))
	return victim, replaced, stall
}

// Scenario (b): the synchronous standby's postmaster is killed. The other
// standby takes its place within seconds; writes wait only that long.
func TestKillSyncStandby(t *testing.T) {
	s := startScenario(t, "e2esync", nil)
	ctx := deadline(t, 2*time.Minute)
	victim, _, stall := s.loseSyncStandby(t, ctx, func(h string) error {
		_, err := s.l.KillPostmaster(ctx, h)
		return err
	}, 5*time.Second)
	// The postmaster watcher reports the death at once and the primary
	// replaces the standby in its post-stop notification: well under one
	// monitor interval (3 s).
	if stall > 3*time.Second {
		t.Errorf("writes stalled %s after the sync standby died, want less than the 3 s monitor interval", stall)
	}
	if f := s.failures(ctx, s.primary); !slices.ContainsFunc(f, func(f pacemaker.Failure) bool { return f.Node == victim && f.Task == "asyncmon" }) {
		t.Errorf("no failure reported by the postmaster watcher on %s; failures: %+v", victim, f)
	}
	s.requireNoLoss(t, ctx)
}

// Scenario (b'): the synchronous standby's host crashes. Nothing closes its
// TCP connection, so the primary learns of it from wal_sender_timeout (5 s
// in the lab) or from Pacemaker's node loss, whichever comes first; writes
// wait that long, not the 60 s of the defaults.
func TestSyncStandbyHostCrash(t *testing.T) {
	s := startScenario(t, "e2esynccrash", nil)
	ctx := deadline(t, 2*time.Minute)
	_, _, stall := s.loseSyncStandby(t, ctx, func(h string) error { return s.l.Crash(ctx, h) }, 15*time.Second)
	// wal_sender_timeout (5 s) plus one promoted monitor (3 s) at most.
	if stall > 9*time.Second {
		t.Errorf("writes stalled %s after the sync standby's host crashed, want at most wal_sender_timeout + a monitor", stall)
	}
	s.requireNoLoss(t, ctx)
}

// Scenario (c): an asynchronous standby's postmaster is killed: writes do
// not notice.
func TestKillAsyncStandby(t *testing.T) {
	s := startScenario(t, "e2easync", nil)
	ctx := deadline(t, 2*time.Minute)
	var victim string
	if err := lab.WaitFor(ctx, "a synchronous and an asynchronous standby", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		sync := s.syncStandby(ctx)
		for _, h := range s.db {
			if h != s.primary && h != sync && sync != "" {
				victim = h
			}
		}
		return victim != "", "sync: " + sync, nil
	}); err != nil {
		t.Fatal(err)
	}
	// First: a standby whose primary_conninfo points nowhere (a missed
	// notification, an operator's ALTER SYSTEM) replays nothing; its
	// monitor points it back at the primary.
	for _, sql := range []string{"ALTER SYSTEM SET primary_conninfo = 'host=192.0.2.1 connect_timeout=1'", "SELECT pg_reload_conf()"} {
		if _, err := s.l.Psql(ctx, victim, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := lab.WaitFor(ctx, victim+" no longer streaming", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st := s.l.Postgres(ctx, victim)
		return st.Receiver == nil || st.Receiver.Status != "streaming", fmt.Sprintf("%+v", st.Receiver), nil
	}); err != nil {
		t.Fatal(err)
	}
	redirected := time.Now()
	if err := lab.WaitFor(ctx, victim+" streaming from "+s.primary+" again", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st := s.l.Postgres(ctx, victim)
		return st.Receiver != nil && st.Receiver.Status == "streaming" && st.Receiver.Sender == s.addr(s.primary), fmt.Sprintf("%+v", st.Receiver), nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s pointed elsewhere: streaming from %s again after %s", victim, s.primary, time.Since(redirected).Round(100*time.Millisecond))

	if _, err := s.l.KillPostmaster(ctx, victim); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	if err := lab.WaitFor(ctx, "10 s of load after the fault", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return time.Since(fault) > 10*time.Second, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	stall := s.w.LongestStall(fault, time.Now())
	t.Logf("async standby %s killed: longest write stall %s", victim, stall.Round(time.Millisecond))
	if stall > time.Second {
		t.Errorf("writes stalled %s after an async standby died, want none", stall)
	}
	s.requireNoLoss(t, ctx)
}

// Scenario (e): a controlled switchover to the synchronous standby
// (crm_resource --move --promoted, what `crm resource move` and `pcs
// resource move --promoted` do): the old primary is demoted to a running
// standby that follows the new one, and no acknowledged commit is lost.
func TestSwitchover(t *testing.T) {
	s := startScenario(t, "e2eswitch", nil)
	ctx := deadline(t, 2*time.Minute)
	var target string
	if err := lab.WaitFor(ctx, "a synchronous standby", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		target = s.syncStandby(ctx)
		return target != "", "", nil
	}); err != nil {
		t.Fatal(err)
	}
	old := s.primary
	move := func(args ...string) {
		t.Helper()
		cmd, err := s.l.Exec(ctx, old, append([]string{"crm_resource", "--resource", lab.PgsqlResource + "-clone"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("crm_resource %v: %v\n%s", args, err, out)
		}
	}
	start := time.Now()
	move("--move", "--promoted", "--node", target)
	if err := lab.WaitFor(ctx, target+" promoted", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		p, err := promoted(ctx, s.l, target)
		if err != nil {
			return false, err.Error(), nil
		}
		return len(p) == 1 && p[0] == target, fmt.Sprintf("promoted %v", p), nil
	}); err != nil {
		t.Fatal(err)
	}
	move("--clear")
	if err := lab.WaitFor(ctx, "writes acknowledged by "+target, 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := s.w.AckedSince(start, s.addr(old))
		return n >= 50, fmt.Sprintf("%d", n), nil
	}); err != nil {
		t.Fatal(err)
	}
	stall := s.w.LongestStall(start, time.Now())
	t.Logf("switchover %s → %s: longest write stall %s", old, target, stall.Round(10*time.Millisecond))
	// The agent stopped its postmaster watcher before the demote: nothing
	// reported a failure.
	if f := s.failures(ctx, target); len(f) > 0 {
		t.Errorf("failures after a switchover: %+v", f)
	}
	// A real demote: the old primary runs as a standby of the new one.
	if err := s.l.WaitStreaming(ctx, target, []string{old}); err != nil {
		t.Error(err)
	}
	// Its slots from its time as primary hold no WAL on it any more.
	if err := lab.WaitFor(ctx, "the demoted primary's slots released", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		got, err := s.l.Psql(ctx, old, "SELECT count(*) FILTER (WHERE restart_lsn IS NOT NULL) || '/' || count(*) FROM pg_replication_slots")
		return got == "0/2", fmt.Sprintf("reserved/all: %q %v", got, err), nil
	}); err != nil {
		t.Error(err)
	}
	s.requireNoLoss(t, ctx)
}

// Scenario (a'): the primary's host crashes (every process killed, link
// down). Once Corosync has dropped it, the synchronous standby is promoted;
// no acknowledged commit is lost. Booted again, the old primary does not
// come back as primary (invariant 3).
func TestPrimaryHostCrash(t *testing.T) {
	s := startScenario(t, "e2ecrash", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 3*time.Minute)
	if err := l.Crash(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	newPrimary := s.waitNewPrimary(t, ctx, old)
	promotedAt := time.Since(fault)
	first := s.waitWrites(t, ctx, s.w, fault, s.addr(old), 50)
	t.Logf("host %s crashed: %s promoted after %s, first write it acknowledged after %s (multi-host), %s (VIP, %s)",
		old, newPrimary, promotedAt.Round(10*time.Millisecond), first.Sub(fault).Round(10*time.Millisecond), s.probed(t, ctx, fault), proberWords)
	s.requireNoLoss(t, ctx)

	// It boots with the distribution's postgresql service enabled: its
	// PostgreSQL comes up as a primary before Pacemaker does. Pacemaker
	// finds two primaries and demotes it; the agent does not just restart
	// it as a standby (it may have diverged): it decides as start would,
	// and without auto_rejoin refuses.
	if err := l.BootWithPostgresUnit(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "the rogue primary on "+old+" stopped and refused", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		log, pg := l.AgentLog(old), l.Postgres(ctx, old)
		refused := strings.Contains(log, "a primary Pacemaker did not promote") && strings.Contains(log, "may have diverged")
		return refused && !pg.Up, fmt.Sprintf("refused %v, PostgreSQL %q", refused, pg.Role()), nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, _ := promoted(ctx, l, newPrimary); len(p) != 1 || p[0] != newPrimary {
		t.Errorf("after the rogue primary, promoted %v, want only %s", p, newPrimary)
	}
	if pg := l.Postgres(ctx, newPrimary); pg.Role() != "primary" {
		t.Errorf("%s is %q, want the primary", newPrimary, pg.Role())
	}
}

// Scenario (a) on a frozen host, the seed's "OS hang": every process of the primary's
// host stopped (SIGSTOP), its kernel still answering. Once Corosync drops
// it, the cluster fences it through its BMC (fence_rampart_ipmi, power
// off), and only then promotes the synchronous standby: writes resume, no
// acknowledged commit is lost, and nothing of the old primary can take a
// write again, because it is off (a thaw has nothing to resume). Booted, it
// stays out as a diverged former primary.
func TestPrimaryHostFreeze(t *testing.T) {
	s := startScenario(t, "e2efreeze", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 3*time.Minute)
	if err := l.Freeze(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	newPrimary := s.waitNewPrimary(t, ctx, old)
	promotedAt := time.Since(fault)
	// Promoted only after the fencing: the old primary's host is off.
	if !l.Crashed(old) {
		t.Errorf("%s promoted while the frozen %s still has power", newPrimary, old)
	}
	hist, err := l.FenceHistory(ctx, newPrimary, old)
	if err != nil || !strings.Contains(hist, lab.FenceAction+" of "+old+" successful") {
		t.Errorf("fence history of %s: %v\n%s\nwant a successful %s", old, err, hist, lab.FenceAction)
	}
	first := s.waitWrites(t, ctx, s.w, fault, "", 20)
	firstVIP := s.waitWrites(t, ctx, s.vw, fault, "", 20)
	t.Logf("%s frozen: fenced, %s promoted after %s; first write after %s (multi-host), %s (VIP), %s (VIP, %s)", old, newPrimary,
		promotedAt.Round(10*time.Millisecond), first.Sub(fault).Round(10*time.Millisecond), firstVIP.Sub(fault).Round(10*time.Millisecond),
		s.probed(t, ctx, fault), proberWords)

	// The thaw finds nothing to resume.
	if err := l.Thaw(old); err == nil || !strings.Contains(err.Error(), "crashed") {
		t.Errorf("thaw of the fenced %s: %v, want it refused as powered off", old, err)
	}
	s.requireNoLoss(t, ctx)

	s.bootOldPrimary(t, ctx, old, newPrimary)
}

// The primary's host cut off from the others (and from the client) by a
// partition of the database network: the quorate side fences it through
// the management network, where its BMC still answers, and promotes the
// synchronous standby; nothing acknowledged is lost. The cut-off host,
// without quorum, is powered off before it could matter.
func TestPrimaryPartitioned(t *testing.T) {
	s := startScenario(t, "e2epart", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 3*time.Minute)
	if err := l.Partition(ctx, [][]string{{old}}); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	newPrimary := s.waitNewPrimary(t, ctx, old)
	promotedAt := time.Since(fault)
	if !l.Crashed(old) {
		t.Errorf("%s promoted while the cut-off %s still has power", newPrimary, old)
	}
	first := s.waitWrites(t, ctx, s.vw, fault, "", 20)
	t.Logf("%s cut off: fenced, %s promoted after %s, first write through the VIP after %s (write load), %s (%s)", old, newPrimary,
		promotedAt.Round(10*time.Millisecond), first.Sub(fault).Round(10*time.Millisecond), s.probed(t, ctx, fault), proberWords)
	if err := l.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	s.requireNoLoss(t, ctx)
}

// The same freeze with the primary's BMC down: fencing fails, so no
// standby is promoted and none takes a write, however long it takes
// (invariant 1: never two writable primaries). Once the BMC answers again,
// the next attempt fences the host and the failover completes, losing
// nothing.
func TestPrimaryFreezeFencingFails(t *testing.T) {
	s := startScenario(t, "e2enofence", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 4*time.Minute)
	if err := l.BMCDown(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Freeze(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	observer := otherThan(s.db, old)
	failed := func(ctx context.Context) (bool, string, error) {
		for _, h := range s.db {
			if h == old {
				continue
			}
			if pg := l.Postgres(ctx, h); pg.Role() == "primary" {
				return false, "", fmt.Errorf("%s is writable while %s is frozen and unfenced", h, old)
			}
		}
		if p, err := promoted(ctx, l, observer); err == nil && slices.ContainsFunc(p, func(h string) bool { return h != old }) {
			return false, "", fmt.Errorf("promoted %v while %s is frozen and unfenced", p, old)
		}
		hist, err := l.FenceHistory(ctx, observer, old)
		return strings.Count(hist, "of "+old+" failed") >= 2, fmt.Sprintf("fence history: %q %v", hist, err), nil
	}
	if err := lab.WaitFor(ctx, "two failed attempts to fence "+old+", nothing promoted meanwhile", 200*time.Millisecond, failed); err != nil {
		t.Fatal(err)
	}
	stalled := time.Since(fault)
	if n, _ := s.w.AckedSince(fault, ""); n > 0 {
		t.Errorf("%d writes acknowledged while the primary was frozen and unfenced", n)
	}
	if err := l.BMCUp(ctx, old); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	newPrimary := s.waitNewPrimary(t, ctx, old)
	if !l.Crashed(old) {
		t.Errorf("%s promoted while the frozen %s still has power", newPrimary, old)
	}
	s.waitWrites(t, ctx, s.w, fault, "", 20)
	t.Logf("fencing %s failed for %s with nothing promoted; BMC back → %s promoted after %s",
		old, stalled.Round(100*time.Millisecond), newPrimary, time.Since(back).Round(100*time.Millisecond))
	s.requireNoLoss(t, ctx)
}

const proberWords = "100 ms prober"

// probed waits for the prober's writes after the fault and returns fault →
// its first, rounded to 10 ms.
func (s *scenario) probed(t *testing.T, ctx context.Context, fault time.Time) time.Duration {
	t.Helper()
	return s.waitWrites(t, ctx, s.probe, fault, "", 3).Sub(fault).Round(10 * time.Millisecond)
}

// waitWrites waits until w has n commits acknowledged since the fault by
// servers other than exclude ("" for any), and returns when the first was.
func (s *scenario) waitWrites(t *testing.T, ctx context.Context, w *lab.Writer, fault time.Time, exclude string, n int) time.Time {
	t.Helper()
	if err := lab.WaitFor(ctx, fmt.Sprintf("%s: %d writes acknowledged after the fault", w.Table, n), 50*time.Millisecond, func(context.Context) (bool, string, error) {
		got, _ := w.AckedSince(fault, exclude)
		return got >= n, fmt.Sprintf("%d acknowledged, %d errors", got, w.Errors()), nil
	}); err != nil {
		t.Fatal(err)
	}
	_, first := w.AckedSince(fault, exclude)
	return first
}

// bootOldPrimary boots the failed primary's host again and checks it stays
// out (invariant 3): its agent refuses the diverged data directory, its
// PostgreSQL does not run, and the new primary remains the only one.
func (s *scenario) bootOldPrimary(t *testing.T, ctx context.Context, old, newPrimary string) {
	t.Helper()
	if err := s.l.Boot(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.l.WaitClusterOnline(ctx, s.db); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "the old primary's start refused", 200*time.Millisecond, func(context.Context) (bool, string, error) {
		return strings.Contains(s.l.AgentLog(old), "may have diverged"), "", nil
	}); err != nil {
		t.Error(err)
	}
	if pg := s.l.Postgres(ctx, old); pg.Up {
		t.Errorf("old primary %s runs again (%s)", old, pg.Role())
	}
	if p, _ := promoted(ctx, s.l, newPrimary); len(p) != 1 || p[0] != newPrimary {
		t.Errorf("after the old primary booted, promoted %v, want only %s", p, newPrimary)
	}
}

// waitNewPrimary waits until a node other than old is promoted, as seen
// from a third node, and returns it.
func (s *scenario) waitNewPrimary(t *testing.T, ctx context.Context, old string) string {
	t.Helper()
	var newPrimary string
	if err := lab.WaitFor(ctx, "another node promoted", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		p, err := promoted(ctx, s.l, otherThan(s.db, old))
		if err == nil && len(p) == 1 && p[0] != old {
			newPrimary = p[0]
			return true, "", nil
		}
		return false, fmt.Sprintf("promoted %v %v", p, err), nil
	}); err != nil {
		t.Fatal(err)
	}
	return newPrimary
}

// The primary is cut off just long enough to lose quorum, and the partition
// heals while the majority is still deciding (chaos seed 19, fault 5: a
// 6.1 s partition against Corosync's 3 s token and 3.6 s consensus). The old
// primary has stopped or demoted itself for want of quorum, may or may not
// be fenced, and may be the only node the durable record names. Whatever
// the majority did, the cluster must come back to full health by itself
// (`rampart status` exit 0: one primary, every node streaming, the VIP on
// it) with nothing lost. Each subtest heals at a different moment.
func TestPrimaryPartitionHealsAsItLosesQuorum(t *testing.T) {
	for _, tt := range []struct {
		name string
		when string        // what must be seen before the heal, or
		hold time.Duration // how long the partition lasts
	}{
		{"after 6.1 s", "", 6100 * time.Millisecond},
		{"the majority has a new DC", "majority", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startScenario(t, "e2epartheal", lab.PgsqlOptions{"auto_rejoin": "true"})
			l, old := s.l, s.primary
			other := otherThan(s.db, old)
			ctx := deadline(t, 4*time.Minute)
			if err := l.Partition(ctx, [][]string{{old}}); err != nil {
				t.Fatal(err)
			}
			fault := time.Now()
			if err := lab.WaitFor(ctx, "partition noticed: "+tt.when, 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
				if tt.hold > 0 {
					return time.Since(fault) >= tt.hold, "", nil
				}
				observer := map[string]string{"alone": old, "majority": other}[tt.when]
				st, err := l.Cluster(ctx, observer)
				seen := err == nil && (tt.when == "alone" && !st.Quorate || tt.when == "majority" && st.DC != "" && st.DC != old && !slices.Contains(st.Online(), old))
				return seen, fmt.Sprintf("%s: quorate %v, DC %q, online %v, %v", observer, st.Quorate, st.DC, st.Online(), err), nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.Heal(ctx); err != nil {
				t.Fatal(err)
			}
			healed := time.Now()
			t.Logf("healed %s after the cut", healed.Sub(fault).Round(10*time.Millisecond))
			s.waitHealthy(t, ctx, old, healed)
			first := s.waitWrites(t, ctx, s.vw, healed, "", 20)
			t.Logf("first write through the VIP %s after the heal", first.Sub(healed).Round(10*time.Millisecond))
			s.requireNoLoss(t, ctx)
		})
	}
}

// waitHealthy waits until `rampart status` on a node other than hit says
// no problem for 6 s on end, booting hit if it was fenced meanwhile, and
// logs how long that took from since.
func (s *scenario) waitHealthy(t *testing.T, ctx context.Context, hit string, since time.Time) {
	t.Helper()
	var healthy time.Time
	err := lab.WaitFor(ctx, "rampart status exit 0 for 6 s", time.Second, func(ctx context.Context) (bool, string, error) {
		if s.l.Crashed(hit) {
			if ok, _, _ := s.l.FenceConfirmed(ctx, hit); ok {
				if err := s.l.Boot(ctx, hit); err != nil {
					return false, "", err
				}
				t.Logf("%s was fenced after the heal: booted", hit)
			}
		}
		out, code := rampart(t, ctx, s.l, otherThan(s.db, hit), "status")
		switch {
		case code != 0:
			healthy = time.Time{}
		case healthy.IsZero():
			healthy = time.Now()
		}
		return code == 0 && time.Since(healthy) >= 6*time.Second, fmt.Sprintf("exit %d\n%s", code, out), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("healthy %s after the heal", healthy.Sub(since).Round(100*time.Millisecond))
}

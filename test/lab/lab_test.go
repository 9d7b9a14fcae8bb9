package lab

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireLab skips a test that needs a real lab when this machine cannot
// build one, saying why. CI runs as root after `make deps`, so there they run.
func requireLab(t *testing.T, c Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: skipped with -short (it needs root, namespaces and real daemons)")
	}
	if missing := Prerequisites(c); len(missing) > 0 {
		t.Skipf("lab test needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

// startLab brings up a lab for one test and removes it, and checks that
// nothing of it is left, when the test ends.
func startLab(t *testing.T, c Config) *Lab {
	t.Helper()
	requireLab(t, c)
	log := testLogger(t)
	ctx := context.Background()
	// A lab of an interrupted earlier run has the same id: clean it first.
	if err := Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Up(upCtx, c, log)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c)
		}
		if err := Destroy(ctx, c.Root, c.ID, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab %s up in %s", c.ID, time.Since(start).Round(10*time.Millisecond))
	return l
}

func dumpLogs(t *testing.T, c Config) {
	for _, h := range c.Hosts() {
		for _, f := range []string{"log/corosync.log", "log/pacemakerd.log", "var-log-pacemaker/pacemaker.log", "var-lib-postgresql/lab/postgresql.log"} {
			b, err := os.ReadFile(filepath.Join(c.hostDir(h.Name), f))
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 25 {
				lines = lines[len(lines)-25:]
			}
			t.Logf("--- %s %s (last %d lines)\n%s", h.Name, f, len(lines), strings.Join(lines, "\n"))
		}
	}
}

// deadline is how long a fault may take to show: Corosync needs token +
// consensus (about 7.5 s with the lab's 3 s token) to drop a silent member.
func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireHealthy waits until the lab is whole again: every database host a
// member seen by all, Pacemaker quorate with all online, standbys streaming.
func requireHealthy(t *testing.T, l *Lab) {
	t.Helper()
	ctx := deadline(t, 90*time.Second)
	db := l.DBHosts()
	if err := l.WaitMembers(ctx, db, db); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitClusterOnline(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitStreaming(ctx, "n1", db[1:]); err != nil {
		t.Fatal(err)
	}
}

// requireUnreachable checks that the client host gets no PostgreSQL answer
// from host within a 2 s connect timeout.
func requireUnreachable(t *testing.T, l *Lab, host string) {
	t.Helper()
	h, _ := l.host(host)
	out, err := l.ClientPsql(deadline(t, 10*time.Second), h.Addr.String(), "SELECT 1", 2)
	if err == nil {
		t.Fatalf("client reached %s (%s): %q", host, h.Addr, out)
	}
	t.Logf("client to %s: %v", host, tail(err.Error(), 120))
}

func requireReachable(t *testing.T, l *Lab, host string) {
	t.Helper()
	h, _ := l.host(host)
	err := WaitFor(deadline(t, 30*time.Second), "client reaches "+host, pollEvery, func(ctx context.Context) (bool, string, error) {
		out, err := l.ClientPsql(ctx, h.Addr.String(), "SELECT 1", 2)
		if err != nil {
			return false, err.Error(), nil
		}
		return out == "1", out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLab(t *testing.T) {
	c := DefaultConfig()
	c.ID = "test1"
	l := startLab(t, c)
	db := l.DBHosts()
	// Each step leaves the lab whole for the next; after a failed one the
	// rest would only report its consequences, so stop there.
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("cluster is quorate with every database host online, seen from each", func(t *testing.T) {
		ctx := deadline(t, 10*time.Second)
		for _, h := range db {
			s, err := l.Cluster(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Quorate || s.DC == "" || !slices.Equal(s.Online(), db) {
				t.Errorf("%s sees dc=%q quorate=%v online=%v, want a DC, quorum and %v online", h, s.DC, s.Quorate, s.Online(), db)
			}
		}
		opts, err := l.ClusterOptions(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ClusterOptions() {
			if opts[o.Name] != o.Value {
				t.Errorf("cluster option %s = %q in the CIB, want %q", o.Name, opts[o.Name], o.Value)
			}
		}
	})

	step("primary streams to both standbys and a write reaches them", func(t *testing.T) {
		ctx := deadline(t, 30*time.Second)
		p := l.Postgres(ctx, "n1")
		if p.Role() != "primary" {
			t.Fatalf("n1 is %q (%s), want primary", p.Role(), p.Error)
		}
		var streaming []string
		for _, r := range p.Replication {
			if r.State == "streaming" {
				streaming = append(streaming, r.Name)
			}
		}
		if !slices.Equal(streaming, []string{"n2", "n3"}) {
			t.Fatalf("pg_stat_replication on n1 shows %+v streaming, want n2 and n3", p.Replication)
		}
		n1, _ := l.host("n1")
		if _, err := l.ClientPsql(ctx, n1.Addr.String(), "CREATE TABLE lab_probe (v text); INSERT INTO lab_probe VALUES ('written on n1')", 2); err != nil {
			t.Fatal(err)
		}
		for _, sb := range db[1:] {
			err := WaitFor(ctx, "the write on "+sb, pollEvery, func(ctx context.Context) (bool, string, error) {
				out, err := l.PsqlDB(ctx, sb, AppDatabase, "SELECT pg_is_in_recovery() || '|' || v FROM lab_probe")
				if err != nil {
					return false, err.Error(), nil
				}
				return out == "true|written on n1", out, nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	})

	step("kill-postmaster: the primary refuses connections and the standbys lose their walreceiver", func(t *testing.T) {
		ctx := deadline(t, 60*time.Second)
		pid, err := l.KillPostmaster(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed postmaster %d", pid)
		requireUnreachable(t, l, "n1")
		err = WaitFor(ctx, "n2's walreceiver to stop streaming", pollEvery, func(ctx context.Context) (bool, string, error) {
			s := l.Postgres(ctx, "n2")
			if s.Receiver == nil {
				return true, "no walreceiver", nil
			}
			return s.Receiver.Status != "streaming", "walreceiver " + s.Receiver.Status, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Orphaned backends notice the postmaster's death and exit; then it
		// can start on the same shared memory key again.
		err = WaitFor(ctx, "n1's postgres processes gone", pollEvery, func(context.Context) (bool, string, error) {
			procs, err := procsInNamespace(c.hostNamespace("n1"))
			var pg []proc
			for _, p := range procs {
				if p.Comm == "postgres" {
					pg = append(pg, p)
				}
			}
			return len(pg) == 0, describe(pg), err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.StartPostgres(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		requireHealthy(t, l)
	})

	step("freeze: the others' Corosync loses the host and it answers nothing; thaw brings it back", func(t *testing.T) {
		ctx := deadline(t, 60*time.Second)
		if err := l.Freeze(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		procs, _ := procsInNamespace(c.hostNamespace("n3"))
		for _, p := range procs {
			if p.State != 'T' {
				t.Errorf("process %d (%s) of frozen n3 is in state %c, want T", p.PID, p.Comm, p.State)
			}
		}
		if err := l.WaitMembers(ctx, []string{"n1", "n2"}, []string{"n1", "n2"}); err != nil {
			t.Fatal(err)
		}
		requireUnreachable(t, l, "n3")
		if m, err := l.Members(ctx, "n3"); err == nil {
			t.Errorf("frozen n3's corosync answered: members %v", m)
		}
		if err := l.Thaw("n3"); err != nil {
			t.Fatal(err)
		}
		requireHealthy(t, l)
		requireReachable(t, l, "n3")
	})

	step("cut: the host is lost from the others and sees only itself; restore brings it back", func(t *testing.T) {
		ctx := deadline(t, 60*time.Second)
		if err := l.Cut(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitMembers(ctx, []string{"n1", "n3"}, []string{"n1", "n3"}); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitMembers(ctx, []string{"n2"}, []string{"n2"}); err != nil {
			t.Fatal(err)
		}
		requireUnreachable(t, l, "n2")
		if err := l.Restore(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		requireHealthy(t, l)
		requireReachable(t, l, "n2")
	})

	step("partition: each side sees only itself; heal joins them", func(t *testing.T) {
		ctx := deadline(t, 60*time.Second)
		if err := l.Partition(ctx, [][]string{{"n1"}}); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitMembers(ctx, []string{"n1"}, []string{"n1"}); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitMembers(ctx, []string{"n2", "n3"}, []string{"n2", "n3"}); err != nil {
			t.Fatal(err)
		}
		if s, err := l.Cluster(ctx, "n1"); err != nil || s.Quorate {
			t.Errorf("n1 alone: quorate=%v err=%v, want no quorum", s.Quorate, err)
		}
		requireUnreachable(t, l, "n1") // the client stays with the majority
		requireReachable(t, l, "n2")
		if err := l.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		requireHealthy(t, l)
		requireReachable(t, l, "n1")
	})

	step("throttle: a standby on a 1 Mbit/s link falls behind a 3 MB write; unthrottled, it catches up", func(t *testing.T) {
		ctx := deadline(t, 2*time.Minute)
		if err := l.Throttle(ctx, "n2", 1000); err != nil {
			t.Fatal(err)
		}
		for _, h := range l.Status(ctx).Hosts {
			if h.Name == "n2" && !strings.Contains(h.Condition, "throttled to 1000 kbit/s") {
				t.Errorf("lab status says n2 is %q, want the throttle shown", h.Condition)
			}
		}
		n1, _ := l.host("n1")
		if _, err := l.ClientPsql(ctx, n1.Addr.String(), "INSERT INTO lab_probe SELECT repeat(md5(g::text), 30) FROM generate_series(1, 3000) g", 10); err != nil {
			t.Fatal(err)
		}
		// A megabyte a second at most: n2 still replays seconds later,
		// while n3 is done at once.
		if err := l.WaitCaughtUp(ctx, "n1", []string{"n3"}); err != nil {
			t.Fatal(err)
		}
		behind := l.Postgres(ctx, "n1")
		var n2 Replica
		for _, r := range behind.Replication {
			if r.Name == "n2" {
				n2 = r
			}
		}
		if n2.ReplayLSN == behind.LSN {
			t.Errorf("n2 replayed all of n1's WAL (%s) with n3: the throttle held nothing back", behind.LSN)
		}
		if err := l.Unthrottle(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitCaughtUp(ctx, "n1", []string{"n2"}); err != nil {
			t.Fatal(err)
		}
		t.Logf("n2 was at %s of %s while throttled; caught up once released", n2.ReplayLSN, behind.LSN)
		requireHealthy(t, l)
	})

	step("crash: no process of the host is left and the others lose it; boot brings it back", func(t *testing.T) {
		ctx := deadline(t, 60*time.Second)
		if err := l.Crash(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		if procs, err := procsInNamespace(c.hostNamespace("n3")); err != nil || len(procs) > 0 {
			t.Errorf("crashed n3 still has processes %s (%v)", describe(procs), err)
		}
		if err := l.WaitMembers(ctx, []string{"n1", "n2"}, []string{"n1", "n2"}); err != nil {
			t.Fatal(err)
		}
		requireUnreachable(t, l, "n3")
		if err := l.Boot(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		requireHealthy(t, l)
		requireReachable(t, l, "n3")
	})

	step("a second lab with another id runs beside the first and goes without a trace", func(t *testing.T) {
		c2 := DefaultConfig()
		c2.ID, c2.DBHosts = "test2", 1
		log := testLogger(t)
		upCtx := deadline(t, 3*time.Minute)
		l2, err := Up(upCtx, c2, log)
		t.Cleanup(func() { _ = Destroy(context.Background(), c2.Root, c2.ID, log) })
		if err != nil {
			t.Fatal(err)
		}
		if p := l2.Postgres(upCtx, "n1"); p.Role() != "primary" {
			t.Errorf("second lab's n1 is %q (%s), want primary", p.Role(), p.Error)
		}
		requireHealthy(t, l)
		// `rampart lab leftovers` (make test's last step) sees both labs.
		if all, err := AllLeftovers(c.Root); err != nil || len(all[c.ID]) == 0 || len(all[c2.ID]) == 0 {
			t.Errorf("AllLeftovers with two labs up: %v, %v; want both %s and %s", all, err, c.ID, c2.ID)
		}
		if err := l2.Down(context.Background()); err != nil {
			t.Fatal(err)
		}
		requireNothingLeft(t, c2)
		if all, err := AllLeftovers(c.Root); err != nil || all[c2.ID] != nil || len(all[c.ID]) == 0 {
			t.Errorf("AllLeftovers after the second lab went: %v, %v; want %s only", all, err, c.ID)
		}
		requireHealthy(t, l)
	})

	step("down leaves nothing of the lab", func(t *testing.T) {
		if err := l.Down(context.Background()); err != nil {
			t.Fatal(err)
		}
		requireNothingLeft(t, c)
	})
}

// requireNothingLeft checks for every kind of trace a lab can leave:
// namespaces and their processes, the folder, mounts, and links in the
// machine's own namespace.
func requireNothingLeft(t *testing.T, c Config) {
	t.Helper()
	left, err := Leftovers(c.Root, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("after down: %s", strings.Join(left, "; "))
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range c.Hosts() {
		if strings.Contains(string(out), " "+bridgePort(h.Name)+"@") || strings.Contains(string(out), " "+bridgePort(h.Name)+":") {
			t.Errorf("after down: link %s in the machine's namespace", bridgePort(h.Name))
		}
	}
	b, _ := os.ReadFile("/proc/mounts")
	if strings.Contains(string(b), NamespacePrefix(c.ID)) {
		t.Errorf("after down: a mount names %s", NamespacePrefix(c.ID))
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/test/lab"
)

// startPooler runs the router in this process with its listener on
// 127.0.0.1:6432 inside the lab's client host, checking nodes every
// period.
func startPooler(t *testing.T, l *lab.Lab, period time.Duration) *proxy.Proxy {
	t.Helper()
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []proxy.Node
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			nodes = append(nodes, proxy.Node{Name: h.Name, Addr: h.Addr.String() + ":5432", Weight: 1})
		}
	}
	u, err := proxy.NewUser(lab.AppUser, l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Config{
		Nodes:    nodes,
		Users:    map[string]proxy.User{lab.AppUser: u},
		PoolSize: 8, MaxPacketSize: 1 << 20, ServerResetQuery: "DISCARD ALL",
		Policy:     route.Policy{MaxLagBytes: 16 << 20},
		HealthUser: lab.AppUser, HealthDatabase: lab.AppDatabase, HealthPeriod: period,
		PrimaryWait: 30 * time.Second, Dial: dial, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	ln, err := l.Listen("client", "127.0.0.1:6432")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go p.Monitor(ctx)
	go p.Serve(ctx, ln)
	return p
}

// The pooler in front of a failover: the primary's postmaster is killed,
// Pacemaker promotes the synchronous standby, and the pooler's writes
// reach it within a second of it becoming writable (health checks every
// 500 ms), without losing an acknowledged commit; the old primary's server
// connections are not reused.
func TestPoolerFollowsFailover(t *testing.T) {
	s := startScenario(t, "e2epool", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 3*time.Minute)
	p := startPooler(t, l, 500*time.Millisecond)
	pw, err := l.NewWriter("client", "host=127.0.0.1 port=6432", 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pw.Table = "acked_pool"
	if err := pw.Start(ctx); err != nil {
		t.Fatalf("write through the pooler: %v", err)
	}
	t.Cleanup(pw.Stop)
	if err := lab.WaitFor(ctx, "100 writes through the pooler", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := pw.AckedSince(time.Time{}, "")
		return n >= 100, strconv.Itoa(n), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.KillPostmaster(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	// When the new primary became writable, sampled every 50 ms.
	var writable time.Time
	var newPrimary string
	if err := lab.WaitFor(ctx, "a standby writable", 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		for _, h := range s.db {
			if h != old && l.Postgres(ctx, h).Role() == "primary" {
				writable, newPrimary = time.Now(), h
				return true, "", nil
			}
		}
		return false, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "20 writes through the pooler after the failover", 20*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := pw.AckedSince(fault, "")
		return n >= 20, fmt.Sprintf("%d acknowledged, %d errors", n, pw.Errors()), nil
	}); err != nil {
		t.Fatal(err)
	}
	_, first := pw.AckedSince(fault, "")
	lag := first.Sub(writable)
	t.Logf("%s writable %s after the kill; first write through the pooler %s after that", newPrimary,
		writable.Sub(fault).Round(10*time.Millisecond), lag.Round(10*time.Millisecond))
	if lag > time.Second {
		t.Errorf("the pooler's first write on the new primary came %s after it was writable, want within a second", lag)
	}
	pw.Stop()
	// Every commit the pooler acknowledged is on the new primary.
	got, err := l.PsqlDB(ctx, newPrimary, lab.AppDatabase, "SELECT string_agg(id::text, ' ') FROM acked_pool")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, id := range strings.Fields(got) {
		have[id] = true
	}
	var lost []int64
	for _, id := range pw.IDs() {
		if !have[strconv.FormatInt(id, 10)] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d commits acknowledged through the pooler are not on %s: %v", len(lost), len(pw.IDs()), newPrimary, lost[:min(len(lost), 20)])
	}
	for _, b := range p.Backends() {
		if b.Name == old && b.Role == route.RolePrimary {
			t.Errorf("the pooler still calls %s primary", old)
		}
	}
	s.requireNoLoss(t, ctx)
}

// The pooler as an operator runs it: `rampart pooler run --config` in the
// client host, with an auth file; psql through it reaches a standby for a
// read and the primary for a write; /health answers 200; SIGTERM ends it
// cleanly (exit 0).
func TestPoolerRun(t *testing.T) {
	c := lab.DefaultConfig()
	c.ID = "e2eprun"
	l := startLab(t, c)
	ctx := deadline(t, 2*time.Minute)
	dir, err := os.MkdirTemp("/var/lib/rampart", "pooler-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var nodes strings.Builder
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			fmt.Fprintf(&nodes, "%s = host=%s\n", h.Name, h.Addr)
		}
	}
	conf := fmt.Sprintf(`[pooler]
listen_addr = 127.0.0.1
listen_port = 6432
auth_file = %[1]s/userlist.txt
health_check_user = %[2]s
health_check_dbname = %[3]s
admin_users = %[2]s
http_listen = 127.0.0.1:9187
[nodes]
%[4]s`, dir, lab.AppUser, lab.AppDatabase, nodes.String())
	if err := os.WriteFile(filepath.Join(dir, "pooler.ini"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(fmt.Sprintf("%q %q\n", lab.AppUser, l.Password(lab.AppUser))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, err := l.Exec(ctx, "client", agentBinary, "pooler", "run", "--config", filepath.Join(dir, "pooler.ini"))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("--- rampart pooler run\n%s", log.String())
		}
	})
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 2 * time.Second}
	if err := lab.WaitFor(ctx, "/health 200", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		r, err := web.Get("http://127.0.0.1:9187/health")
		if err != nil {
			return false, err.Error(), nil
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r.StatusCode == 200, fmt.Sprintf("%d %s", r.StatusCode, b), nil
	}); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, h := range l.Hosts() {
		addrs[h.Addr.String()] = h.Name
	}
	psqlDB := func(db, sql string) string {
		t.Helper()
		c, err := l.Exec(ctx, "client", "psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser, "-d", db, "-c", sql)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q through rampart pooler run: %v\n%s", sql, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	psql := func(sql string) string { t.Helper(); return psqlDB(lab.AppDatabase, sql) }
	if got := addrs[psql("SELECT host(inet_server_addr())")]; got != "n2" && got != "n3" {
		t.Errorf("a read ran on %q, want a standby", got)
	}
	psql("CREATE TABLE IF NOT EXISTS run_check (at inet)")
	if got := addrs[psql("INSERT INTO run_check VALUES (inet_server_addr()) RETURNING host(at)")]; got != "n1" {
		t.Errorf("a write ran on %q, want the primary n1", got)
	}
	if nodes := psqlDB("rampart", "SHOW NODES"); !strings.Contains(nodes, "n1|") || !strings.Contains(nodes, "|primary|") {
		t.Errorf("console SHOW NODES:\n%s", nodes)
	}
	// The same console through `rampart pool`.
	pool := func(args ...string) string {
		t.Helper()
		out, err := l.Output(ctx, "client", append([]string{agentBinary, "pool"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pool("drain", "--user", lab.AppUser, "n2")
	if out := pool("show", "--user", lab.AppUser, "nodes"); !strings.Contains(out, "draining") || !strings.Contains(out, "NODE") {
		t.Errorf("rampart pool show nodes after drain n2:\n%s", out)
	}
	pool("attach", "--user", lab.AppUser, "n2")

	// nsenter (entering the host's PID namespace) forks: the pooler is its
	// child, and the one to signal, as systemd would.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil || len(strings.Fields(string(children))) != 1 {
		t.Fatalf("the pooler under nsenter %d: %q %v", cmd.Process.Pid, children, err)
	}
	pid, _ := strconv.Atoi(strings.Fields(string(children))[0])
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("rampart pooler run after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("rampart pooler run still running after SIGTERM")
	}
}

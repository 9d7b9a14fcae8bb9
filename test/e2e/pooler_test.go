package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
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
	v, err := proxy.NewVerifier(l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Config{
		Nodes:    nodes,
		Users:    map[string]proxy.User{lab.AppUser: {Name: lab.AppUser, Password: l.Password(lab.AppUser), Verifier: v}},
		PoolSize: 8, MaxPacketSize: 1 << 20, ServerResetQuery: "DISCARD ALL",
		Policy:     route.Policy{MaxLagBytes: 16 << 20},
		HealthUser: lab.AppUser, HealthDatabase: lab.AppDatabase, HealthPeriod: period,
		PrimaryWait: 30 * time.Second, Dial: dial, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	var ln net.Listener
	if err := l.InNetwork("client", func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:6432")
		return err
	}); err != nil {
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

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/pooler/watchdog"
	"github.com/rampart-ha/rampart/pooler/watchdog/election"
	"github.com/rampart-ha/rampart/test/lab"
)

// rampartProc is a rampart process started in a lab host.
type rampartProc struct {
	name string
	pid  int // the process itself (nsenter's child)
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRampart runs the rampart binary with args in host until the test
// ends.
func startRampart(t *testing.T, l *lab.Lab, host string, args ...string) *rampartProc {
	t.Helper()
	cmd, err := l.Exec(context.Background(), host, append([]string{agentBinary}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	d := &rampartProc{name: host + ": rampart " + strings.Join(args, " "), log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if d.pid > 0 {
			syscall.Kill(d.pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("--- %s\n%s", d.name, d.log.String())
		}
	})
	// nsenter --pid forks: the rampartProc is its child.
	if err := lab.WaitFor(context.Background(), d.name+" started", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); err == nil && len(f) == 1 {
			d.pid, _ = strconv.Atoi(f[0])
			return true, "", nil
		}
		return false, string(b), nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPoolerPair: two poolers (p1 preferred) and a witness, clients on the
// client host through the pair's VIP. The leader is killed, frozen, cut
// off, and partitioned from the others; every time the other pooler holds
// the VIP within 3 s and clients go on; an observer asking who has the
// VIP every 50 ms never gets two answers.
func TestPoolerPair(t *testing.T) {
	c := lab.DefaultConfig()
	c.ID, c.DBHosts, c.Poolers, c.Witness = "e2epair", 1, 2, true
	l := startLab(t, c)
	ctx := deadline(t, 6*time.Minute)
	vip := c.PoolerVIP()

	dir, err := os.MkdirTemp("/var/lib/rampart", "pair-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	secret := make([]byte, 32)
	rand.Read(secret)
	files := map[string]string{
		"watchdog.key": base64.StdEncoding.EncodeToString(secret),
		"userlist.txt": fmt.Sprintf("%q %q\n", lab.AppUser, l.Password(lab.AppUser)),
	}
	addr := map[string]netip.Addr{}
	for _, h := range l.Hosts() {
		addr[h.Name] = h.Addr
	}
	members := fmt.Sprintf("[members]\np1 = %s:7480 priority=100\np2 = %s:7480 priority=50\nw = %s:7480 witness\n", addr["p1"], addr["p2"], addr["w"])
	for _, p := range []string{"p1", "p2"} {
		files[p+".ini"] = fmt.Sprintf(`[pooler]
listen_addr = *
listen_port = 6432
auth_file = %[1]s/userlist.txt
health_check_user = %[2]s
health_check_dbname = %[3]s
admin_users = %[2]s
http_listen = 127.0.0.1:9187
[nodes]
n1 = host=%[4]s
[watchdog]
self = %[5]s
key_file = %[1]s/watchdog.key
heartbeat = 500ms
vip = %[6]s
%[7]s`, dir, lab.AppUser, lab.AppDatabase, addr["n1"], p, vip, members)
	}
	files["w.ini"] = fmt.Sprintf("[watchdog]\nself = w\nkey_file = %s/watchdog.key\nheartbeat = 500ms\n%s", dir, members)
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := lab.ObserveARP(l, "client", vip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(obs.Stop)
	started := time.Now()
	// The pair's one rule, over the whole test: never two answers (checked
	// after every fault, so that a failure shows the daemons' logs).
	checkOne := func(phase string) {
		t.Helper()
		for _, s := range obs.Since(started) {
			if len(s.Holders) > 1 {
				t.Errorf("%s: at %s %v both answered for the VIP (%s); answers:%s", phase, s.At.Sub(started).Round(time.Millisecond), s.Holders,
					strings.Join(s.Frames, "; "), obs.Transitions(started))
				return
			}
		}
	}
	poolers := map[string]*rampartProc{}
	run := func(p string) {
		poolers[p] = startRampart(t, l, p, "pooler", "run", "--config", filepath.Join(dir, p+".ini"))
	}
	startRampart(t, l, "w", "witness", "run", "--config", filepath.Join(dir, "w.ini"))
	run("p1")
	run("p2")

	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	query := func() error {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=6432 user=%s password=%s dbname=%s sslmode=disable connect_timeout=1",
			vip, lab.AppUser, l.Password(lab.AppUser), lab.AppDatabase))
		if err != nil {
			return err
		}
		cfg.DialFunc = dial
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(qctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var one int
		return conn.QueryRow(qctx, "SELECT 1").Scan(&one)
	}
	// holds waits until the observer sees only want answer, then a client
	// query through the VIP succeeds; it returns both times since from.
	holds := func(want string, from time.Time, limit time.Duration) (time.Duration, time.Duration) {
		t.Helper()
		if err := lab.WaitFor(ctx, want+" answers for the VIP", 20*time.Millisecond, func(context.Context) (bool, string, error) {
			h := obs.Holder()
			return h == want, "answering: " + h, nil
		}); err != nil || time.Since(from) > limit+time.Second {
			t.Fatalf("%s did not take the VIP within %s: %v", want, limit, err)
		}
		took := time.Since(from)
		if err := lab.WaitFor(ctx, "a query through the VIP", 50*time.Millisecond, func(context.Context) (bool, string, error) {
			err := query()
			if err != nil {
				return false, err.Error(), nil
			}
			return true, "", nil
		}); err != nil {
			t.Fatal(err)
		}
		return took, time.Since(from)
	}
	holds("p1", time.Now(), time.Minute)
	t.Log("p1 holds the VIP; clients reach PostgreSQL through it")

	// 1. The leader's pooler killed (SIGKILL: it cannot remove the address;
	// the address's lifetime does).
	at := time.Now()
	syscall.Kill(poolers["p1"].pid, syscall.SIGKILL)
	took, query1 := holds("p2", at, 3*time.Second)
	t.Logf("p1's pooler killed: p2 answers for the VIP after %s, first query through it after %s; ARP answers:%s",
		took.Round(10*time.Millisecond), query1.Round(10*time.Millisecond), obs.Transitions(at))
	checkOne("kill")
	if took > 3*time.Second {
		t.Errorf("takeover after a kill took %s; want at most 3 s", took)
	}
	run("p1") // back as a follower: it must not take the VIP back
	if err := lab.WaitFor(ctx, "p1 follows p2", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		out, err := l.Output(ctx, "p1", agentBinary, "pool", "status", "--host", addr["p1"].String(), "--user", lab.AppUser)
		for _, line := range strings.Split(out, "\n") {
			// p1  ADDR  100  follower (this pooler)  p2  TERM …
			if f := strings.Fields(line); len(f) > 6 && f[0] == "p1" && f[3] == "follower" && f[6] == "p2" {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%s %v", out, err), nil // the console may not be up yet
	}); err != nil {
		t.Fatal(err)
	}
	// rampart status on a pooler host: the pair and the servers as its
	// pooler sees them.
	for host, leads := range map[string]bool{"p1": false, "p2": true} {
		if err := lab.WaitFor(ctx, "rampart status on "+host, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			v, code := statusJSON(t, ctx, l, host, "--pooler", "http://127.0.0.1:9187")
			if len(v.Poolers) != 1 {
				return false, fmt.Sprintf("exit %d, poolers %+v", code, v.Poolers), nil
			}
			p := v.Poolers[0]
			return code == 0 && p.Member == host && p.Leader == leads && p.LeaderID == "p2" && v.Primary == "n1",
				fmt.Sprintf("exit %d, %+v, problems %v", code, p, v.Problems), nil
		}); err != nil {
			t.Error(err)
		}
	}

	// 2. The leader's host frozen: the other takes over; thawed, the old
	// leader never answers for the VIP again.
	at = time.Now()
	if err := l.Freeze(ctx, "p2"); err != nil {
		t.Fatal(err)
	}
	froze := time.Since(at)
	took, query1 = holds("p1", at, 3*time.Second)
	t.Logf("p2 frozen (freezing took %s): p1 answers for the VIP after %s, first query after %s; ARP answers:%s",
		froze.Round(10*time.Millisecond), took.Round(10*time.Millisecond), query1.Round(10*time.Millisecond), obs.Transitions(at))
	if took > 3*time.Second {
		t.Errorf("takeover after a freeze took %s; want at most 3 s", took)
	}
	checkOne("freeze")
	thawed := time.Now()
	if err := l.Thaw("p2"); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "p2 thawed follows", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return time.Since(thawed) > 3*time.Second, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range obs.Since(thawed) {
		if strings.Contains(strings.Join(s.Holders, " "), "p2") {
			t.Fatalf("the thawed old leader answered for the VIP at +%s", s.At.Sub(thawed).Round(time.Millisecond))
		}
	}

	// 3. The leader's link cut.
	at = time.Now()
	if err := l.Cut(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	took, query1 = holds("p2", at, 3*time.Second)
	t.Logf("p1's link cut: p2 answers for the VIP after %s, first query after %s", took.Round(10*time.Millisecond), query1.Round(10*time.Millisecond))
	checkOne("cut")
	if err := l.Restore(ctx, "p1"); err != nil {
		t.Fatal(err)
	}

	// 4. Partition {leader} | {follower, witness, database, client}.
	if err := lab.WaitFor(ctx, "p1 back as a follower", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return time.Since(at) > 6*time.Second && obs.Holder() == "p2", obs.Holder(), nil
	}); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	if err := l.Partition(ctx, [][]string{{"p2"}, {"p1", "w", "n1", "client"}}); err != nil {
		t.Fatal(err)
	}
	took, query1 = holds("p1", at, 3*time.Second)
	t.Logf("{p2} | {p1, w, n1, client}: p1 answers for the VIP after %s, first query after %s", took.Round(10*time.Millisecond), query1.Round(10*time.Millisecond))
	if err := l.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := lab.WaitFor(ctx, "the healed pair settles", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return time.Since(healed) > 3*time.Second, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if h := obs.Holder(); h != "p1" {
		t.Errorf("after healing the VIP is answered by %q; want p1 still", h)
	}
	checkOne("partition")
	t.Logf("%d ARP samples of the VIP, never two answers", len(obs.Since(started)))

	// Bad heartbeats from the client host to both poolers: signed with
	// another key and claiming a high term, replayed (the right key, a
	// packet number below the witness's), garbage, truncated.
	forger, _ := watchdog.NewSealer([]byte("not the pair's key at all"), "p2", time.Now())
	forged, _ := forger.Seal(election.Message{Kind: election.Heartbeat, Term: 1000, Seq: 1}, time.Now())
	old, _ := watchdog.NewSealer([]byte(files["watchdog.key"]), "w", time.Now().Add(-time.Hour))
	replayed, _ := old.Seal(election.Message{Kind: election.VoteRequest, Term: 1000}, time.Now())
	before := obs.Holder()
	for _, p := range []string{"p1", "p2"} {
		uc, err := dial(ctx, "udp", netip.AddrPortFrom(addr[p], 7480).String())
		if err != nil {
			t.Fatal(err)
		}
		for _, pkt := range [][]byte{forged, replayed, []byte("RPWD\x01garbage"), forged[:30]} {
			uc.Write(pkt)
		}
		uc.Close()
	}
	sent := time.Now()
	if err := lab.WaitFor(ctx, "the bad packets are behind us", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return time.Since(sent) > 2*time.Second, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if h := obs.Holder(); h != before {
		t.Errorf("bad heartbeats moved the VIP from %q to %q", before, h)
	}
	for _, s := range obs.Since(sent) {
		if strings.Join(s.Holders, "+") != before {
			t.Errorf("after the bad heartbeats the VIP was answered by %v", s.Holders)
			break
		}
	}

	// The pair in /metrics: p1 leads, p2 follows, both see a quorum and
	// counted the bad packets.
	for host, leader := range map[string]string{"p1": "1", "p2": "0"} {
		hdial, err := l.Dialer(host)
		if err != nil {
			t.Fatal(err)
		}
		web := &http.Client{Transport: &http.Transport{DialContext: hdial}, Timeout: 2 * time.Second}
		r, err := web.Get("http://127.0.0.1:9187/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		for _, want := range []string{"rampart_pair_leader " + leader, "rampart_pair_quorum 1", `rampart_pair_last_heard_seconds{member="w"}`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s /metrics lacks %q", host, want)
			}
		}
		for reason, least := range map[string]float64{"forged": 1, "replayed": 1, "malformed": 2} {
			name := `rampart_pair_packets_dropped_total{reason="` + reason + `"} `
			var n float64
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, name); ok {
					n, _ = strconv.ParseFloat(v, 64)
				}
			}
			if n < least {
				t.Errorf("%s counted %v %s packets; want at least %v", host, n, reason, least)
			}
		}
	}
}

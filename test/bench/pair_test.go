package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// A pooler pair under test: its processes in the lab hosts p1, p2 and w.
type pairStack struct {
	name  string
	start func(host string) error // (re)starts the member on host
	procs map[string]int          // host → PID of its process (group leader)
	// restart brings a killed member back (start, unless the stack needs
	// more).
	restart func(host string) error
}

// TestPairBench: the pooler pair's takeover, faults of each kind (the
// leader's process killed, its host frozen, its link cut) repeated, the
// time until the other pooler alone answers ARP for the VIP, sampled
// every 50 ms from the client host; medians, and any sample where two
// hosts answered.
func TestPairBench(t *testing.T) {
	selected(t, "pair")
	runs := 10
	if n, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	c := lab.DefaultConfig()
	c.ID, c.DBHosts, c.Poolers, c.Witness = "benchpair", 1, 2, true
	l := benchLab(t, c)
	ctx := context.Background()
	vip := c.PoolerVIP()
	obs, err := lab.ObserveARP(l, "client", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()

	var report strings.Builder
	fmt.Fprintf(&report, "\npair: takeover, %d faults of each kind; fault → the other pooler alone answers ARP for the VIP (sampled every 50 ms)\n", runs)
	stacks := []func() *pairStack{
		func() *pairStack { return rampartPair(t, l, "1s") },
		func() *pairStack { return pgpoolPair(t, l) },
		func() *pairStack { return rampartPair(t, l, "500ms") },
	}
	for _, make := range stacks {
		st := make()
		for _, kind := range []string{"kill", "freeze", "cut"} {
			times, doubles, note := pairFaults(t, ctx, l, obs, st, kind, runs)
			if len(times) == 0 {
				fmt.Fprintf(&report, "  %-52s %-7s no takeover measured: %s\n", st.name, kind, note)
				continue
			}
			fmt.Fprintf(&report, "  %-52s %-7s median %-7s (min %s, max %s, %d faults)  samples with two answers: %d %s\n",
				st.name, kind, median(times), slices.Min(times).Round(10*time.Millisecond), slices.Max(times).Round(10*time.Millisecond),
				len(times), doubles, note)
			t.Logf("%s, %s: %v", st.name, kind, times)
		}
		stopPair(st)
		for _, h := range []string{"p1", "p2"} {
			dropVIP(l, h, vip)
		}
	}
	t.Log(report.String())
	fmt.Println(report.String())
}

// rampartPair starts rampart's pair (poolers on p1 and p2, witness on w)
// with heartbeat hb, and waits until one holds the VIP.
func rampartPair(t *testing.T, l *lab.Lab, hb string) *pairStack {
	t.Helper()
	dir := baselineDir(t, "pair-")
	secret := make([]byte, 32)
	rand.Read(secret)
	addr := map[string]netip.Addr{}
	for _, h := range l.Hosts() {
		addr[h.Name] = h.Addr
	}
	members := fmt.Sprintf("[members]\np1 = %s:7480 priority=100\np2 = %s:7480 priority=50\nw = %s:7480 witness\n", addr["p1"], addr["p2"], addr["w"])
	files := map[string]string{
		"watchdog.key": base64.StdEncoding.EncodeToString(secret),
		"userlist.txt": fmt.Sprintf("%q %q\n", lab.AppUser, l.Password(lab.AppUser)),
		"w.ini":        fmt.Sprintf("[watchdog]\nself = w\nkey_file = %s/watchdog.key\nheartbeat = %s\n%s", dir, hb, members),
	}
	for _, p := range []string{"p1", "p2"} {
		files[p+".ini"] = fmt.Sprintf("[pooler]\nlisten_addr = *\nlisten_port = 6432\nauth_file = %[1]s/userlist.txt\nhealth_check_user = %[2]s\n"+
			"health_check_dbname = %[3]s\n[nodes]\nn1 = host=%[4]s\n[watchdog]\nself = %[5]s\nkey_file = %[1]s/watchdog.key\nheartbeat = %[6]s\nvip = %[7]s\n%[8]s",
			dir, lab.AppUser, lab.AppDatabase, addr["n1"], p, hb, l.Config().PoolerVIP(), members)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := &pairStack{name: "rampart pooler pair (heartbeat " + hb + ")", procs: map[string]int{}}
	st.start = func(host string) error {
		args := []string{agentBinary, "pooler", "run", "--config", filepath.Join(dir, host+".ini")}
		if host == "w" {
			args = []string{agentBinary, "witness", "run", "--config", filepath.Join(dir, "w.ini")}
		}
		pid, err := startInHost(l, host, filepath.Join(dir, host+".log"), args...)
		st.procs[host] = pid
		return err
	}
	for _, h := range []string{"w", "p1", "p2"} {
		if err := st.start(h); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { stopPair(st) })
	return st
}

func stopPair(st *pairStack) {
	for h, pid := range st.procs {
		syscall.Kill(-pid, syscall.SIGKILL)
		delete(st.procs, h)
	}
}

// startInHost starts argv in host in a process group of its own, its
// output appended to logPath, and returns its PID (nsenter's child).
func startInHost(l *lab.Lab, host, logPath string, argv ...string) (int, error) {
	cmd, err := l.Exec(context.Background(), host, argv...)
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

// pairFaults applies runs faults of kind to whichever pooler answers for
// the VIP and measures until the other alone answers; it undoes each fault
// and lets the pair settle before the next. A pair that does not get back
// to one holder within a minute ends the series (note says so).
func pairFaults(t *testing.T, ctx context.Context, l *lab.Lab, obs *lab.ARPObserver, st *pairStack, kind string, runs int) (times []time.Duration, doubles int, note string) {
	t.Helper()
	within := func(what string, limit time.Duration, cond func() (bool, string)) error {
		wctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		return lab.WaitFor(wctx, what, 20*time.Millisecond, func(context.Context) (bool, string, error) {
			ok, last := cond()
			return ok, last, nil
		})
	}
	for range runs {
		var leader string
		if err := within("one pooler holds the VIP", time.Minute, func() (bool, string) {
			leader = obs.Holder()
			return leader == "p1" || leader == "p2", "answering: " + leader
		}); err != nil {
			return times, doubles, fmt.Sprintf("did not get back to one holder: %v", err)
		}
		other := map[string]string{"p1": "p2", "p2": "p1"}[leader]
		at := time.Now()
		switch kind {
		case "kill":
			syscall.Kill(-st.procs[leader], syscall.SIGKILL)
		case "freeze":
			if err := l.Freeze(ctx, leader); err != nil {
				t.Fatal(err)
			}
		case "cut":
			if err := l.Cut(ctx, leader); err != nil {
				t.Fatal(err)
			}
		}
		err := within(other+" takes the VIP after "+kind+" of "+leader, 30*time.Second, func() (bool, string) {
			h := obs.Holder()
			return h == other, "answering: " + h + ";" + obs.Transitions(at)
		})
		if err == nil {
			times = append(times, time.Since(at))
		}
		switch kind {
		case "kill":
			restart := st.start
			if st.restart != nil {
				restart = st.restart
			}
			if err := restart(leader); err != nil {
				t.Fatal(err)
			}
		case "freeze":
			if err := l.Thaw(leader); err != nil {
				t.Fatal(err)
			}
		case "cut":
			if err := l.Restore(ctx, leader); err != nil {
				t.Fatal(err)
			}
		}
		if err == nil {
			// Settle: the old leader back as a follower, a few heartbeats.
			back := time.Now()
			within("the pair settles", time.Minute, func() (bool, string) { return time.Since(back) > 5*time.Second, "" })
		}
		for _, s := range obs.Since(at) {
			if len(s.Holders) > 1 {
				doubles++
			}
		}
		if err != nil {
			return times, doubles, fmt.Sprintf("no takeover: %v", err)
		}
	}
	return times, doubles, ""
}

// median of ds (the upper one of an even count), rounded for a report.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}

// pgpoolPair runs Debian's pgpool-II with its watchdog on p1, p2 and w
// (three votes, as rampart's pair has; pgpool-II has no witness mode, so
// w runs a pgpool-II too, at the lowest priority), heartbeat every 1 s,
// dead after 3 s (its shortest settings in whole seconds), the VIP by
// if_up_cmd/if_down_cmd with ip, as its documentation configures it.
func pgpoolPair(t *testing.T, l *lab.Lab) *pairStack {
	t.Helper()
	dir := baselineDir(t, "pgpool-pair-")
	addr := map[string]netip.Addr{}
	for _, h := range l.Hosts() {
		addr[h.Name] = h.Addr
	}
	hosts := []string{"p1", "p2", "w"}
	var nodes strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&nodes, "hostname%[1]d = '%[2]s'\nwd_port%[1]d = 9000\npgpool_port%[1]d = 9999\n"+
			"heartbeat_hostname%[1]d = '%[2]s'\nheartbeat_port%[1]d = 9694\nheartbeat_device%[1]d = ''\n", i, addr[h])
	}
	vip := l.Config().PoolerVIP()
	for i, h := range hosts {
		hd := filepath.Join(dir, h)
		if err := os.MkdirAll(hd, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`backend_clustering_mode = 'streaming_replication'
listen_addresses = '*'
port = 9999
pcp_listen_addresses = ''
pcp_port = 9898
unix_socket_directories = '%[1]s'
pcp_socket_dir = '%[1]s'
wd_ipc_socket_dir = '%[1]s'
backend_hostname0 = '%[2]s'
backend_port0 = 5432
backend_flag0 = 'ALWAYS_PRIMARY'
num_init_children = 4
sr_check_period = 0
health_check_period = 0
use_watchdog = on
%[3]s
wd_priority = %[4]d
delegate_IP = '%[5]s'
if_cmd_path = '/usr/sbin'
if_up_cmd = 'ip addr add $_IP_$/24 dev eth0'
if_down_cmd = 'ip addr del $_IP_$/24 dev eth0'
arping_path = '/bin'
arping_cmd = 'true'
wd_lifecheck_method = 'heartbeat'
wd_interval = 1
wd_heartbeat_keepalive = 1
wd_heartbeat_deadtime = 3
failover_when_quorum_exists = on
pid_file_name = '%[1]s/pgpool.pid'
logdir = '%[1]s'
log_destination = 'stderr'
`, hd, addr["n1"], nodes.String(), 100-50*i, vip)
		for name, text := range map[string]string{"pgpool.conf": conf, "pgpool_node_id": strconv.Itoa(i) + "\n", "pcp.conf": ""} {
			if err := os.WriteFile(filepath.Join(hd, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := &pairStack{name: "pgpool-II 4.3 watchdog (heartbeat 1s, deadtime 3s)", procs: map[string]int{}}
	st.start = func(host string) error {
		hd := filepath.Join(dir, host)
		os.Remove(filepath.Join(hd, "pgpool.pid"))
		pid, err := startInHost(l, host, filepath.Join(hd, "pgpool.log"),
			"pgpool", "-n", "-D", "-f", filepath.Join(hd, "pgpool.conf"), "-F", filepath.Join(hd, "pcp.conf"))
		st.procs[host] = pid
		return err
	}
	for _, h := range hosts {
		if err := st.start(h); err != nil {
			t.Fatal(err)
		}
	}
	// A killed pgpool-II leaves its address behind (it has no lifetime):
	// an operator removes it before starting it again.
	st.restart = func(host string) error {
		dropVIP(l, host, vip)
		return st.start(host)
	}
	t.Cleanup(func() {
		stopPair(st)
		for _, h := range []string{"p1", "p2"} {
			dropVIP(l, h, vip)
		}
		if t.Failed() {
			for _, h := range hosts {
				b, _ := os.ReadFile(filepath.Join(dir, h, "pgpool.log"))
				t.Logf("--- pgpool-II on %s (last lines)\n%s", h, tail(string(b), 30))
			}
		}
	})
	return st
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// dropVIP removes the pair's address from host, if it is there.
func dropVIP(l *lab.Lab, host string, vip netip.Addr) {
	l.Output(context.Background(), host, "ip", "addr", "del", vip.String()+"/24", "dev", "eth0") // absent already: fine
}

// selected skips a benchmark unless RAMPART_BENCH is set and
// RAMPART_BENCH_SCENARIO (when set) names one of its scenarios.
func selected(t *testing.T, scenarios string) {
	t.Helper()
	if os.Getenv("RAMPART_BENCH") == "" {
		t.Skip("benchmark: run it with `make bench` (RAMPART_BENCH=1)")
	}
	if only := os.Getenv("RAMPART_BENCH_SCENARIO"); only != "" && !strings.Contains(scenarios, only) {
		t.Skip("not selected by RAMPART_BENCH_SCENARIO")
	}
}

// benchLab builds the lab c (replacing one left over) for the test.
func benchLab(t *testing.T, c lab.Config) *lab.Lab {
	t.Helper()
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("benchmark needs %s", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	lab.Destroy(ctx, c.Root, c.ID, log)
	l, err := lab.Up(ctx, c, log)
	t.Cleanup(func() { lab.Destroy(context.Background(), c.Root, c.ID, log) })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

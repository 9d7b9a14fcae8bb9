package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/test/lab"
)

// A pooler under test: where pgbench connects.
type poolTarget struct {
	name string
	port int
	host string   // "" = 127.0.0.1 inside the client host
	cpu  cpuClock // the pooler's CPU time; nil for a direct connection
}

// benchRun is what one pgbench run measured.
type benchRun struct {
	tps  float64
	p99  time.Duration
	txns int // transactions actually processed
}

// TestPoolerBench runs pgbench -S through each target side by side
// (interleaved, same lab, same primary): straight to the primary, through
// rampart's router (one node: parsing and routing, no standby to spread
// over), through PgBouncer in transaction mode and through pgpool-II;
// TPS and p99 latency.
// Then read scale-out: a latency-bound read through rampart with 1, 2 and
// 3 standbys (pool of 4 per standby), against linear; and the price of
// durable_reads (a barrier per read on the primary, a synchronous standby
// named) against rampart without it.
func TestPoolerBench(t *testing.T) {
	selected(t, "pooler")
	for _, bin := range []string{"pgbouncer", "pgpool"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (make deps)", bin)
		}
	}
	secs := 10
	if n, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_SECONDS")); err == nil && n > 0 {
		secs = n
	}
	c := lab.DefaultConfig()
	c.ID, c.DBHosts = "pbench", 4
	l := benchLab(t, c)
	ctx := context.Background()
	// Room for 256 direct clients beside the poolers' connections (pgpool-II
	// keeps one per child it has used); standbys first (theirs must not be
	// lower than the primary's).
	for _, h := range append(l.DBHosts()[1:], "n1") {
		if _, err := l.Psql(ctx, h, "ALTER SYSTEM SET max_connections = 700"); err != nil {
			t.Fatal(err)
		}
		if err := l.StopPostgres(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := l.StartPostgres(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WaitStreaming(ctx, "n1", l.DBHosts()[1:]); err != nil {
		t.Fatal(err)
	}
	primary := l.Hosts()[0].Addr.String()
	pw := l.Password(lab.AppUser)
	var standbys []proxy.Node
	for _, h := range l.Hosts()[1:c.DBHosts] {
		standbys = append(standbys, proxy.Node{Name: h.Name, Addr: h.Addr.String() + ":5432", Weight: 1})
	}
	startRampart(t, l, 6432, []proxy.Node{{Name: "n1", Addr: primary + ":5432", Weight: 1}}, 20)
	bouncer := startPgBouncer(t, l, 6434, primary, nil)
	bouncer124 := startPgBouncer(t, l, 6435, primary, pgbouncer124(t))
	pgpool := startPgpool(t, l, 6436, primary, 256)
	work := t.TempDir()
	os.Chmod(work, 0o755)
	pgbench := func(port int, host string, args ...string) (benchRun, error) {
		prefix := filepath.Join(work, fmt.Sprintf("log%d", time.Now().UnixNano()))
		argv := append([]string{"pgbench", "-h", host, "-p", strconv.Itoa(port), "-U", lab.AppUser, "-n", "-T", strconv.Itoa(secs),
			"-l", "--log-prefix", prefix}, args...)
		argv = append(argv, lab.AppDatabase)
		cmd, err := l.Exec(ctx, "client", argv...)
		if err != nil {
			return benchRun{}, err
		}
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			return benchRun{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
		var r benchRun
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "tps = ") {
				fmt.Sscanf(line, "tps = %f", &r.tps)
			}
			if strings.HasPrefix(line, "number of transactions actually processed: ") {
				fmt.Sscanf(line, "number of transactions actually processed: %d", &r.txns)
			}
		}
		r.p99, err = p99FromLogs(prefix)
		return r, err
	}
	// Tables through the primary, directly.
	if err := run(ctx, l, "client", []string{"PGPASSWORD=" + pw}, "pgbench", "-i", "-q", "-s", "10", "-h", primary, "-U", lab.AppUser, lab.AppDatabase); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitCaughtUp(ctx, "n1", l.DBHosts()[1:]); err != nil {
		t.Fatal(err)
	}
	targets := []poolTarget{{"direct to the primary", 5432, primary, nil}, {"rampart pooler (routing, 1 node)", 6432, "", selfCPU},
		{"PgBouncer 1.18 (transaction)", 6434, "", bouncer}, {"pgpool-II 4.3 (streaming repl.)", 6436, "", pgpool},
		{"PgBouncer 1.24 (transaction)", 6435, "", bouncer124}}
	// CPU per transaction, µs, by "mode clients" and target.
	cpuPerTxn := map[string]map[string]float64{}
	var report strings.Builder
	fmt.Fprintf(&report, "\npooler: pgbench -S, %d s each, same primary, interleaved; TPS (p99 latency)\n", secs)
	fmt.Fprintf(&report, "  %-8s %-8s", "mode", "clients")
	for _, tg := range targets {
		fmt.Fprintf(&report, " %-34s", tg.name)
	}
	fmt.Fprintf(&report, " %s\n", "rampart/PgBouncer  rampart/PgBouncer 1.24  rampart/pgpool-II  rampart/direct")
	added := map[string]time.Duration{}
	for _, mode := range []string{"simple", "prepared"} {
		for _, clients := range []int{1, 16, 64, 256} {
			fmt.Fprintf(&report, "  %-8s %-8d", mode, clients)
			tps := map[string]float64{}
			for _, tg := range targets {
				host := tg.host
				if host == "" {
					host = "127.0.0.1"
				}
				var cpu0 time.Duration
				if tg.cpu != nil {
					var err error
					if cpu0, err = tg.cpu(); err != nil {
						t.Fatalf("%s's CPU time: %v", tg.name, err)
					}
				}
				r, err := pgbench(tg.port, host, "-S", "-M", mode, "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)))
				v, p99 := r.tps, r.p99
				if err != nil && tg.port == 6434 && mode == "prepared" && strings.Contains(err.Error(), "prepared statement") {
					// PgBouncer before 1.21 cannot keep protocol-level prepared
					// statements in transaction mode: a finding, not a bench failure.
					fmt.Fprintf(&report, " %-34s", "fails: prepared statement errors")
					t.Logf("%s -c %d %s: fails (prepared statements in transaction mode)", mode, clients, tg.name)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				tps[tg.name] = v
				if tg.cpu != nil && r.txns > 0 {
					cpu1, err := tg.cpu()
					if err != nil {
						t.Fatalf("%s's CPU time: %v", tg.name, err)
					}
					row := fmt.Sprintf("%s %d", mode, clients)
					if cpuPerTxn[row] == nil {
						cpuPerTxn[row] = map[string]float64{}
					}
					cpuPerTxn[row][tg.name] = float64((cpu1 - cpu0).Microseconds()) / float64(r.txns)
				}
				if clients == 1 && v > 0 {
					added[mode+" "+tg.name] = time.Duration(float64(time.Second) / v)
				}
				fmt.Fprintf(&report, " %-34s", fmt.Sprintf("%.0f (%s)", v, p99.Round(10*time.Microsecond)))
				t.Logf("%s -c %d %s: %.0f tps, p99 %s", mode, clients, tg.name, v, p99)
			}
			ours, bouncer, pgpool, direct := tps[targets[1].name], tps[targets[2].name], tps[targets[3].name], tps[targets[0].name]
			bouncer124 := tps[targets[4].name]
			fmt.Fprintf(&report, " %-18s %-23s %-18s %s\n", ratio(ours, bouncer), ratio(ours, bouncer124), ratio(ours, pgpool), ratio(ours, direct))
		}
	}
	fmt.Fprintf(&report, "\npooler CPU per transaction, µs (process CPU time over pgbench's transactions, same runs; rampart's in the test process)\n")
	fmt.Fprintf(&report, "  %-8s %-8s %-10s %-16s %-16s %-12s %s\n", "mode", "clients", "rampart", "PgBouncer 1.18", "PgBouncer 1.24", "pgpool-II", "rampart/PgBouncer 1.18  rampart/PgBouncer 1.24")
	for _, mode := range []string{"simple", "prepared"} {
		for _, clients := range []int{1, 16, 64, 256} {
			c := cpuPerTxn[fmt.Sprintf("%s %d", mode, clients)]
			us := func(name string) string {
				if v, ok := c[name]; ok {
					return fmt.Sprintf("%.1f", v)
				}
				return "—"
			}
			fmt.Fprintf(&report, "  %-8s %-8d %-10s %-16s %-16s %-12s %-23s %s\n", mode, clients, us(targets[1].name), us(targets[2].name), us(targets[4].name), us(targets[3].name),
				ratio(c[targets[1].name], c[targets[2].name]), ratio(c[targets[1].name], c[targets[4].name]))
		}
	}
	for _, mode := range []string{"simple", "prepared"} {
		d := added[mode+" "+targets[0].name]
		fmt.Fprintf(&report, "  added latency per query at 1 client (%s): rampart %s, PgBouncer 1.18 %s, PgBouncer 1.24 %s, pgpool-II %s\n", mode,
			(added[mode+" "+targets[1].name] - d).Round(time.Microsecond), (added[mode+" "+targets[2].name] - d).Round(time.Microsecond),
			(added[mode+" "+targets[4].name] - d).Round(time.Microsecond), (added[mode+" "+targets[3].name] - d).Round(time.Microsecond))
	}

	// The floor under a pooler in Go: byte-blind relays (one server
	// connection per client, nothing parsed) in this process, against
	// rampart's and PgBouncer's CPU from the rows above.
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelays := context.WithCancel(ctx)
	defer stopRelays()
	relays := []struct {
		name  string
		port  int
		serve func(context.Context, net.Listener)
	}{
		{"blind relay, goroutines", 6460, func(ctx context.Context, ln net.Listener) { goroutineRelay(ctx, ln, dial, primary+":5432") }},
		{"blind relay, epoll loop", 6461, func(ctx context.Context, ln net.Listener) {
			if err := epollRelay(ctx, ln, dial, primary+":5432"); err != nil {
				t.Errorf("epoll relay: %v", err)
			}
		}},
	}
	for _, r := range relays {
		ln, err := l.Listen("client", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err != nil {
			t.Fatal(err)
		}
		go r.serve(relayCtx, ln)
	}
	fmt.Fprintf(&report, "\nthe floor under a pooler in Go: byte-blind relays in the test process (a server connection per client, nothing parsed), pgbench -S simple; CPU µs per transaction (TPS)\n")
	fmt.Fprintf(&report, "  %-8s %-26s %-26s %-12s %s\n", "clients", relays[0].name, relays[1].name, "rampart", "PgBouncer 1.24")
	for _, clients := range []int{16, 64} {
		cells := []string{}
		for _, r := range relays {
			cpu0, err := selfCPU()
			if err != nil {
				t.Fatal(err)
			}
			b, err := pgbench(r.port, "127.0.0.1", "-S", "-M", "simple", "-c", strconv.Itoa(clients), "-j", "2")
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			cpu1, err := selfCPU()
			if err != nil {
				t.Fatal(err)
			}
			cells = append(cells, fmt.Sprintf("%.1f (%.0f)", float64((cpu1-cpu0).Microseconds())/float64(max(b.txns, 1)), b.tps))
		}
		c := cpuPerTxn[fmt.Sprintf("simple %d", clients)]
		fmt.Fprintf(&report, "  %-8d %-26s %-26s %-12.1f %.1f\n", clients, cells[0], cells[1], c[targets[1].name], c[targets[4].name])
	}
	stopRelays()

	// Read scale-out: a 2 ms read, pool of 4 per standby, 32 clients.
	script := filepath.Join(work, "sleep.sql")
	if err := os.WriteFile(script, []byte("SELECT pg_sleep(0.002);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&report, "  read scale-out (SELECT pg_sleep(0.002), 32 clients, pool of 4 per standby, prepared):\n")
	var one float64
	for k := 1; k <= len(standbys); k++ {
		port := 6440 + k
		startRampart(t, l, port, append([]proxy.Node{{Name: "n1", Addr: primary + ":5432", Weight: 1}}, standbys[:k]...), 4)
		r, err := pgbench(port, "127.0.0.1", "-f", script, "-M", "prepared", "-c", "32", "-j", "2")
		if err != nil {
			t.Fatal(err)
		}
		v, p99 := r.tps, r.p99
		if k == 1 {
			one = v
		}
		fmt.Fprintf(&report, "    %d standby(s): %.0f tps (p99 %s), %.0f%% of linear\n", k, v, p99.Round(100*time.Microsecond), 100*v/(float64(k)*one))
	}

	// durable_reads: every read on the primary waits for a barrier commit
	// confirmed by a synchronous standby (n2 named for this part).
	if _, err := l.Psql(ctx, "n1", "ALTER SYSTEM SET synchronous_standby_names = 'n2'"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Psql(ctx, "n1", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	startRampartWith(t, l, 6450, []proxy.Node{{Name: "n1", Addr: primary + ":5432", Weight: 1}}, 20, true)
	fmt.Fprintf(&report, "  durable_reads (pgbench -S -M prepared on the primary, n2 synchronous): TPS (p99)\n")
	for _, clients := range []int{1, 16, 64} {
		p, err := pgbench(6432, "127.0.0.1", "-S", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)))
		if err != nil {
			t.Fatal(err)
		}
		d, err := pgbench(6450, "127.0.0.1", "-S", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)))
		if err != nil {
			t.Fatal(err)
		}
		plain, plainP99, durable, durableP99 := p.tps, p.p99, d.tps, d.p99
		fmt.Fprintf(&report, "    %3d clients: rampart %.0f (%s), rampart durable_reads %.0f (%s), durable/plain %s\n", clients,
			plain, plainP99.Round(10*time.Microsecond), durable, durableP99.Round(10*time.Microsecond), ratio(durable, plain))
	}
	t.Log(report.String())
	fmt.Println(report.String())
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// p99FromLogs reads pgbench's per-transaction logs (prefix.PID[.thread]):
// the third field is the latency in µs.
func p99FromLogs(prefix string) (time.Duration, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no pgbench logs at %s.*", prefix)
	}
	var lat []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 3 {
				if us, err := strconv.Atoi(fields[2]); err == nil {
					lat = append(lat, us)
				}
			}
		}
		os.Remove(f)
	}
	if len(lat) == 0 {
		return 0, fmt.Errorf("empty pgbench logs at %s.*", prefix)
	}
	slices.Sort(lat)
	return time.Duration(lat[len(lat)*99/100]) * time.Microsecond, nil
}

// startRampart runs rampart's router in this process, listening on
// 127.0.0.1:port inside the client host.
func startRampart(t *testing.T, l *lab.Lab, port int, nodes []proxy.Node, poolSize int) {
	t.Helper()
	startRampartWith(t, l, port, nodes, poolSize, false)
}

// startRampartWith is startRampart, with durable_reads when durable.
func startRampartWith(t *testing.T, l *lab.Lab, port int, nodes []proxy.Node, poolSize int, durable bool) {
	t.Helper()
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	u, err := proxy.NewUser(lab.AppUser, l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Config{
		Nodes:    nodes,
		Users:    map[string]proxy.User{lab.AppUser: u},
		PoolSize: poolSize, MaxPacketSize: 1 << 20, ServerTLSMode: "disable",
		Policy:     route.Policy{MaxLagBytes: 64 << 20},
		HealthUser: lab.AppUser, HealthDatabase: lab.AppDatabase, HealthPeriod: time.Second,
		DurableReads: durable,
		Dial:         dial, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	ln, err := l.Listen("client", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go p.Monitor(ctx)
	go p.Serve(ctx, ln)
	if err := lab.WaitFor(ctx, "rampart sees its nodes", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		for _, b := range p.Backends() {
			if !b.Up {
				return false, b.Name + " not up", nil
			}
		}
		return true, "", nil
	}); err != nil {
		t.Fatal(err)
	}
}

// pgbouncer124 is the argv prefix that runs Debian 13's PgBouncer 1.24
// on this machine: its binary through its release's own dynamic loader and
// libraries, from a root built for it (lab.PgBouncerRelease, once).
func pgbouncer124(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := lab.Root(ctx, "/var/cache/rampart/roots", lab.PgBouncerRelease(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	libs := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	argv := []string{filepath.Join(libs, "ld-linux-x86-64.so.2"), "--library-path", libs, filepath.Join(root, "usr/sbin/pgbouncer")}
	out, err := exec.Command(argv[0], append(argv[1:], "--version")...).Output()
	if err != nil || !strings.HasPrefix(string(out), "PgBouncer 1.24") {
		t.Fatalf("PgBouncer from the Debian 13 root: %q %v; want 1.24", out, err)
	}
	return argv
}

// startPgBouncer runs PgBouncer in the client host, in transaction mode
// in front of the primary: this machine's (1.18), or the one argv runs
// (1.24, keeping protocol-level prepared statements: a setting 1.18
// refuses to start with).
func startPgBouncer(t *testing.T, l *lab.Lab, port int, primary string, argv []string) cpuClock {
	t.Helper()
	dir := baselineDir(t, "pgbouncer-")
	ini := fmt.Sprintf(`[databases]
%s = host=%s port=5432 dbname=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
auth_type = scram-sha-256
auth_file = %s/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
unix_socket_dir =
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
`, lab.AppDatabase, primary, lab.AppDatabase, port, dir, dir, dir)
	files := map[string]string{
		"pgbouncer.ini": ini,
		"userlist.txt":  fmt.Sprintf("%q %q\n", lab.AppUser, l.Password(lab.AppUser)),
	}
	if argv == nil {
		argv = []string{"pgbouncer"}
	} else {
		files["pgbouncer.ini"] += "max_prepared_statements = 200\n"
	}
	return runAsPostgres(t, l, dir, files, port, filepath.Join(dir, "pgbouncer.out"), syscall.SIGTERM,
		append(argv, filepath.Join(dir, "pgbouncer.ini"))...)
}

// startPgpool runs pgpool-II in the client host in front of the primary,
// configured as its users run it in front of streaming replication (it
// parses every query to route it, as rampart does): one child process per
// client (num_init_children must cover the largest client count, or extra
// clients wait for a free child), connection cache on.
func startPgpool(t *testing.T, l *lab.Lab, port int, primary string, maxClients int) cpuClock {
	t.Helper()
	dir := baselineDir(t, "pgpool-")
	conf := fmt.Sprintf(`backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = %[1]d
unix_socket_directories = '%[2]s'
pcp_listen_addresses = ''
pcp_socket_dir = '%[2]s'
backend_hostname0 = '%[3]s'
backend_port0 = 5432
backend_weight0 = 1
backend_flag0 = 'ALWAYS_PRIMARY'
enable_pool_hba = on
pool_passwd = '%[2]s/pool_passwd'
num_init_children = %[4]d
max_pool = 1
child_life_time = 0
connection_cache = on
load_balance_mode = on
sr_check_period = 0
health_check_period = 0
pid_file_name = '%[2]s/pgpool.pid'
logdir = '%[2]s'
log_destination = 'stderr'
`, port, dir, primary, maxClients)
	files := map[string]string{
		"pgpool.conf":   conf,
		"pool_hba.conf": "host all all 127.0.0.1/32 scram-sha-256\n",
		"pool_passwd":   fmt.Sprintf("%s:TEXT%s\n", lab.AppUser, l.Password(lab.AppUser)),
		"pcp.conf":      "",
	}
	return runAsPostgres(t, l, dir, files, port, filepath.Join(dir, "pgpool.log"), syscall.SIGINT, // fast shutdown, children too
		"pgpool", "-n", "-f", filepath.Join(dir, "pgpool.conf"), "-a", filepath.Join(dir, "pool_hba.conf"), "-F", filepath.Join(dir, "pcp.conf"))
}

// baselineDir is a directory for a baseline's files, removed at the end.
func baselineDir(t *testing.T, prefix string) string {
	dir, err := os.MkdirTemp("/var/lib/rampart", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runAsPostgres writes files into dir and runs argv in the client host as
// postgres (both baselines refuse root), logging to logPath, until the test
// ends (then stop, the daemon's shutdown signal, reaches it); it returns
// once port accepts connections, with the daemon's CPU clock.
func runAsPostgres(t *testing.T, l *lab.Lab, dir string, files map[string]string, port int, logPath string, stop syscall.Signal, argv ...string) cpuClock {
	t.Helper()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	cmd, err := l.Exec(context.Background(), "client", append([]string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, argv...)...)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// nsenter --pid forks: the daemon is its child.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, stop)
				}
			}
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial, _ := l.Dialer("client")
	if err := lab.WaitFor(ctx, argv[0]+" listening", 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		c, err := dial(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false, err.Error(), nil
		}
		c.Close()
		return true, "", nil
	}); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("%v\n%s", err, b)
	}
	return treeCPU(cmd.Process.Pid)
}

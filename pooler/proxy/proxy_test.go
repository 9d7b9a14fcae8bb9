package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/test/lab"
)

// proxyLab is a lab (n1 primary, n2 and n3 streaming, run by the lab) with
// a proxy listening on 127.0.0.1:6432 inside its client host.
type proxyLab struct {
	l     *lab.Lab
	cfg   Config // of p
	p     *Proxy
	stop  func()            // stops Serve and Monitor
	addrs map[string]string // server address → host name
}

func startProxyLab(t *testing.T, id string) *proxyLab {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a lab: skipped with -short")
	}
	c := lab.DefaultConfig()
	c.ID = id
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	l, err := lab.Up(upCtx, c, log)
	t.Cleanup(func() {
		if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	dial, err := l.Dialer("client")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyLab{l: l, addrs: map[string]string{}}
	var nodes []Node
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			nodes = append(nodes, Node{Name: h.Name, Addr: h.Addr.String() + ":5432", Weight: 1})
			pl.addrs[h.Addr.String()] = h.Name
		}
	}
	u, err := NewUser(lab.AppUser, l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	pl.cfg = Config{
		Nodes:    nodes,
		Users:    map[string]User{lab.AppUser: u},
		PoolSize: 4, MaxPacketSize: 1 << 20, ServerResetQuery: "DISCARD ALL",
		Policy:     route.Policy{MaxLagBytes: 16 << 20, ReadYourWrites: 0},
		HealthUser: lab.AppUser, HealthDatabase: lab.AppDatabase, HealthPeriod: 200 * time.Millisecond,
		PrimaryWait: 5 * time.Second, Dial: dial, Log: log, AdminUsers: []string{lab.AppUser},
	}
	var stop func()
	pl.p, stop = pl.serve(t, pl.cfg, 6432)
	pl.stop = stop
	return pl
}

// serve runs a proxy with cfg on 127.0.0.1:port inside the client host
// until the test ends or stop is called.
func (pl *proxyLab) serve(t *testing.T, cfg Config, port int) (*Proxy, func()) {
	t.Helper()
	p := New(cfg)
	ln, err := pl.l.Listen("client", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go p.Monitor(ctx)
	go p.Serve(ctx, ln)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lab.WaitFor(wctx, "the proxy sees a primary and two standbys", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		var roles []string
		for _, b := range p.Backends() {
			if b.Up {
				roles = append(roles, b.Name+"="+b.Role.String())
			}
		}
		return strings.Join(roles, " ") == "n1=primary n2=standby n3=standby", strings.Join(roles, " "), nil
	}); err != nil {
		t.Fatal(err)
	}
	return p, stop
}

// connect opens a pgx connection to the proxy from the client host.
func (pl *proxyLab) connect(t *testing.T, ctx context.Context, extra string) *pgx.Conn {
	t.Helper()
	return pl.connectConninfo(t, ctx, "host=127.0.0.1 port=6432 "+extra)
}

// connectConninfo opens a pgx connection from the client host as the
// lab's application user, where conninfo says.
func (pl *proxyLab) connectConninfo(t *testing.T, ctx context.Context, conninfo string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("user=%s password=%s dbname=%s sslmode=disable %s",
		lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase, conninfo))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DialFunc, err = pl.l.Dialer("client"); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect (%s): %v", conninfo, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// where runs sql (which must return inet_server_addr() in its first
// column) and names the host that ran it.
func (pl *proxyLab) where(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var addr string
	if err := c.QueryRow(ctx, sql, args...).Scan(&addr); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return pl.addrs[strings.TrimSuffix(addr, "/32")]
}

// The proxy in a lab: one lab for the subtests, which run in order.
func TestProxy(t *testing.T) {
	pl := startProxyLab(t, "pxy")
	t.Run("routes", func(t *testing.T) { testRoutes(t, pl) })
	t.Run("clients", func(t *testing.T) { testClients(t, pl) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, pl) })
	t.Run("long pipeline", func(t *testing.T) { testLongPipeline(t, pl) })
	t.Run("detach under load", func(t *testing.T) { testDetachUnderLoad(t, pl) })
	t.Run("hold", func(t *testing.T) { testHold(t, pl) })
	t.Run("hold under load", func(t *testing.T) { testHoldUnderLoad(t, pl) })
	t.Run("primary restart", func(t *testing.T) { testPrimaryRestart(t, pl) })
	t.Run("psycopg2", func(t *testing.T) { testPsycopg(t, pl) })
	t.Run("psycopg 3 pipelines", func(t *testing.T) { testPsycopg3Pipeline(t, pl) })
	t.Run("jdbc", func(t *testing.T) { testJDBC(t, pl) })
	t.Run("session parameters", func(t *testing.T) { testSessionParams(t, pl) })
	t.Run("large results", func(t *testing.T) { testLargeResults(t, pl) })
	t.Run("scram pass-through", func(t *testing.T) { testPassThrough(t, pl) })
	t.Run("tls", func(t *testing.T) { testTLS(t, pl) })
	t.Run("tls-only cluster", func(t *testing.T) { testTLSOnlyCluster(t, pl) })
	t.Run("lag", func(t *testing.T) { testLagAware(t, pl) })
	t.Run("durable reads", func(t *testing.T) { testDurableReads(t, pl) })
	t.Run("causal reads", func(t *testing.T) { testCausalReads(t, pl) })
	t.Run("listen and notify", func(t *testing.T) { testListenNotify(t, pl) }) // leaves n2 the primary
	t.Run("shutdown", func(t *testing.T) { testShutdown(t, pl) })              // last: it stops the proxy
}

// The seed's pgpool failure: with lag-aware routing on, an extended-
// protocol client got "bind message supplies 0 parameters" (Parse on one
// node, Bind on another). Here n2's replay is paused until it lags past
// max_lag_bytes: pgbench's Parse/Bind/Execute reads all go to n3, none
// fails, and n2 takes reads again once it catches up.
func testLagAware(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := pl.p.settings()
	pl.p.Update(s.users, route.Policy{MaxLagBytes: 64 << 10}, nil)
	defer pl.p.Update(s.users, s.policy, nil)
	lag := func() int64 {
		for _, b := range pl.p.Backends() {
			if b.Name == "n2" {
				return b.LagBytes
			}
		}
		return -1
	}
	if _, err := pl.l.Psql(ctx, "n2", "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	defer pl.l.Psql(context.Background(), "n2", "SELECT pg_wal_replay_resume()")
	if _, err := pl.l.PsqlDB(ctx, "n1", lab.AppDatabase, "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000) g"); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "the proxy sees n2 lag past 64 kB", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		return lag() > 64<<10, fmt.Sprintf("%d bytes", lag()), nil
	}); err != nil {
		t.Fatal(err)
	}
	cmd, err := pl.l.Exec(ctx, "client", "pgbench", "-S", "-M", "extended", "-c", "4", "-T", "2", "--max-tries=1",
		"-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser, lab.AppDatabase)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	var processed, failed int
	for _, line := range strings.Split(string(out), "\n") {
		fmt.Sscanf(line, "number of transactions actually processed: %d", &processed)
		fmt.Sscanf(line, "number of failed transactions: %d", &failed)
	}
	t.Logf("n2 %d bytes behind: pgbench -S -M extended: %d transactions, %d failed", lag(), processed, failed)
	if err != nil || processed < 100 || failed != 0 || strings.Contains(string(out), "error") {
		t.Errorf("pgbench with a lagging standby: %v\n%s", err, out)
	}
	for _, b := range pl.p.Backends() {
		if b.Name == "n2" && b.Outstanding != 0 {
			t.Errorf("n2, lagging, runs %d transactions", b.Outstanding)
		}
	}
	if _, err := pl.l.Psql(ctx, "n2", "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, "n2 caught up in the proxy's view", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		return lag() <= 64<<10, fmt.Sprintf("%d bytes", lag()), nil
	}); err != nil {
		t.Error(err)
	}
}

// Shutdown ends an idle client's session with 57P01, as a PostgreSQL
// shutting down does.
func testShutdown(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pl.connect(t, ctx, "")
	pl.stop()
	pl.p.Shutdown(5 * time.Second)
	var one int
	err := c.QueryRow(ctx, "SELECT 1").Scan(&one)
	if err == nil || !strings.Contains(err.Error(), "57P01") {
		t.Errorf("query after shutdown: %v, want 57P01 terminating connection", err)
	}
}

// A restart of the primary between transactions costs its clients no
// error: the pooled connections the shutdown ended are not handed out, a
// write that comes while it is down waits for it (primary_wait) instead of
// failing, and a client that connects meanwhile gets in.
func testPrimaryRestart(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := pl.connect(t, ctx, "")
	if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS restarted (at inet)"); err != nil {
		t.Fatal(err)
	}
	const write = "INSERT INTO restarted (at) VALUES (inet_server_addr()) RETURNING host(at)"
	if got := pl.where(t, ctx, c, write); got != "n1" {
		t.Fatalf("the write ran on %s, want n1", got)
	}
	// A server connection to n1 is idle in the pool now; the fast
	// shutdown ends it.
	if err := pl.l.StopPostgres(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() {
		var at string
		held <- c.QueryRow(ctx, write).Scan(&at)
	}()
	// A client that connects now gets in: its start-up asks a standby.
	late := pl.connect(t, ctx, "")
	if err := pl.l.StartPostgres(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Errorf("a write while the primary restarted: %v; want it held until n1 is back", err)
	}
	if got := pl.where(t, ctx, late, write); got != "n1" {
		t.Errorf("the late client's write ran on %s, want n1", got)
	}
	if got := pl.where(t, ctx, c, write); got != "n1" {
		t.Errorf("the next write ran on %s, want n1", got)
	}
	if err := pl.l.WaitStreaming(ctx, "n1", []string{"n2", "n3"}); err != nil {
		t.Error(err)
	}
}

// The seed's finding: detaching a node made clients fail. Here pgbench
// reads through the proxy (--max-tries=1: any error fails a transaction)
// while an operator drains, detaches and attaches a standby through the
// console with psql: not one transaction fails.
func testDetachUnderLoad(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := []string{"-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser}
	bench := startReadBench(t, ctx, pl)
	busy := func(node string) int {
		for _, b := range pl.p.Backends() {
			if b.Name == node {
				return b.Outstanding
			}
		}
		return -1
	}
	if err := lab.WaitFor(ctx, "pgbench reading from n2", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return busy("n2") > 0, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	console := func(sql string) string {
		t.Helper()
		cmd, err := pl.l.Exec(ctx, "client", append(append([]string{"psql", "-X", "-At", "-F", " "}, conn...), "-d", "rampart", "-c", sql)...)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("console %q: %v\n%s", sql, err, b)
		}
		return string(b)
	}
	console("DRAIN n2")
	console("DETACH n2")
	if n := busy("n2"); n != 0 {
		t.Errorf("after DETACH n2 still runs %d transactions", n)
	}
	if nodes := console("SHOW NODES"); !strings.Contains(nodes, "n2 ") || !strings.Contains(nodes, " detached ") {
		t.Errorf("SHOW NODES after DETACH n2:\n%s", nodes)
	}
	if err := lab.WaitFor(ctx, "pgbench still running, on n3 alone", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return busy("n3") > 0 && busy("n2") == 0, fmt.Sprintf("n2 %d, n3 %d", busy("n2"), busy("n3")), nil
	}); err != nil {
		t.Error(err)
	}
	console("ATTACH n2")
	if err := lab.WaitFor(ctx, "n2 reading again", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return busy("n2") > 0, "", nil
	}); err != nil {
		t.Error(err)
	}
	bench.finish(t, "during DRAIN, DETACH, ATTACH n2")
}

// A client that sends an oversized or unknown message gets an
// ErrorResponse and loses its connection; another client goes on.
// A pipeline of 54 MB before its first Sync (60 Bind and Execute, each
// with a 900 kB parameter) is answered in full while the pooler holds at
// most a little of it: it goes on to the primary as it comes, its answers
// back as they come (issue 18: the pooler kept a client's messages until
// Sync, without bound).
func testLongPipeline(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pc := pl.connect(t, ctx, "").PgConn()
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	fe := pgproto3.NewFrontend(hj.Conn, hj.Conn)
	const n, size = 60, 900 << 10
	heapGrowth := sampleHeap(ctx)
	type result struct {
		rows, wrong int
		err         error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			msg, err := fe.Receive()
			if err != nil {
				r.err = err
				break
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				r.rows++
				if string(m.Values[0]) != strconv.Itoa(size) {
					r.wrong++
				}
			case *pgproto3.ErrorResponse:
				r.err = fmt.Errorf("%s: %s", m.Code, m.Message)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		done <- r
	}()
	param := bytes.Repeat([]byte("x"), size)
	fe.Send(&pgproto3.Parse{Query: "SELECT length($1::text)"})
	for range n {
		fe.Send(&pgproto3.Bind{Parameters: [][]byte{param}})
		fe.Send(&pgproto3.Execute{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	grew := heapGrowth()
	t.Logf("%d MB pipelined before one Sync: %d rows, the pooler's heap grew at most %d MB", n*size>>20, r.rows, grew>>20)
	if r.err != nil || r.rows != n || r.wrong != 0 {
		t.Errorf("rows %d (wrong %d), err %v; want %d rows", r.rows, r.wrong, r.err, n)
	}
	if grew > 40<<20 {
		t.Errorf("the pooler's heap grew %d MB while a client pipelined %d MB", grew>>20, n*size>>20)
	}
}

func testBadInput(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	other := pl.connect(t, ctx, "")
	for name, msg := range map[string][]byte{
		"oversized": {'Q', 0, 0x20, 0, 0}, // claims 2 MiB, over max_packet_size (1 MiB)
		"unknown":   {'y', 0, 0, 0, 4},
	} {
		c := pl.connect(t, ctx, "")
		raw, err := c.PgConn().Hijack()
		if err != nil {
			t.Fatal(err)
		}
		raw.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := raw.Conn.Write(msg); err != nil {
			t.Fatal(err)
		}
		reply, err := raw.Frontend.Receive()
		e, ok := reply.(*pgproto3.ErrorResponse)
		if err != nil || !ok || e.Code != "08P01" {
			t.Errorf("%s message: got %#v, %v; want an ErrorResponse 08P01", name, reply, err)
		}
		if _, err := raw.Frontend.Receive(); err == nil {
			t.Errorf("%s message: the connection stays open", name)
		}
		raw.Conn.Close()
		var one int
		if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Errorf("after the %s message another client's query: %d, %v", name, one, err)
		}
	}
}

// Where each kind of statement runs, proven by inet_server_addr(), over
// pgx's extended protocol (prepared statements cached per connection) and
// simple protocol.
func testRoutes(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, mode := range []string{"", "default_query_exec_mode=simple_protocol"} {
		t.Run("mode="+mode, func(t *testing.T) {
			c := pl.connect(t, ctx, mode)
			if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS routed (id serial PRIMARY KEY, at inet)"); err != nil {
				t.Fatal(err)
			}
			standbys := map[string]bool{}
			for i := 0; i < 8; i++ {
				standbys[pl.where(t, ctx, c, "SELECT inet_server_addr()::text")] = true
			}
			if standbys["n1"] || len(standbys) == 0 {
				t.Errorf("reads ran on %v, want standbys only", standbys)
			}
			if len(standbys) != 2 {
				t.Errorf("8 reads ran on %v, want both standbys taking turns", standbys)
			}
			for _, sql := range []string{
				"INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING host(at)",
				"WITH w AS (INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING at) SELECT host(at) FROM w",
				"SELECT host(inet_server_addr()) FROM routed FOR UPDATE LIMIT 1",
				"SELECT host(inet_server_addr()) WHERE nextval('routed_id_seq') > 0",
			} {
				if got := pl.where(t, ctx, c, sql); got != "n1" {
					t.Errorf("%s ran on %s, want the primary n1", sql, got)
				}
			}
			// A transaction stays on one server, the primary, to its end.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var hosts []string
			for i := 0; i < 3; i++ {
				var a string
				if err := tx.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&a); err != nil {
					t.Fatal(err)
				}
				hosts = append(hosts, pl.addrs[a])
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Join(hosts, " ") != "n1 n1 n1" {
				t.Errorf("a transaction block ran on %v, want n1 throughout", hosts)
			}
		})
	}
}

// Real clients through the proxy: pgbench initialises through it (COPY
// FROM STDIN, DDL, VACUUM: all on the primary), then runs read-only
// transactions in each protocol, which the standbys answer; psql
// connects with SCRAM like any application.
func testClients(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(argv ...string) string {
		t.Helper()
		out, err := pl.l.Output(ctx, "client", argv...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	conn := []string{"-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser}
	run(append(append([]string{"pgbench", "-i", "-s", "2", "-q"}, conn...), lab.AppDatabase)...)
	if err := pl.l.WaitCaughtUp(ctx, "n1", []string{"n2", "n3"}); err != nil {
		t.Fatal(err)
	}
	commits := func() map[string]int {
		m := map[string]int{}
		for _, h := range []string{"n1", "n2", "n3"} {
			out, err := pl.l.Psql(ctx, h, "SELECT xact_commit FROM pg_stat_database WHERE datname = '"+lab.AppDatabase+"'")
			if err != nil {
				t.Fatal(err)
			}
			var n int
			fmt.Sscan(out, &n)
			m[h] = n
		}
		return m
	}
	for _, mode := range []string{"simple", "extended", "prepared"} {
		before := commits()
		out := run(append(append([]string{"pgbench", "-S", "-M", mode, "-c", "4", "-j", "2", "-T", "3", "--max-tries=1"}, conn...), lab.AppDatabase)...)
		var processed, failed int
		for _, line := range strings.Split(out, "\n") {
			fmt.Sscanf(line, "number of transactions actually processed: %d", &processed)
			fmt.Sscanf(line, "number of failed transactions: %d", &failed)
		}
		if processed < 100 || failed != 0 || strings.Contains(out, "error") {
			t.Errorf("pgbench -S -M %s: %d processed, %d failed\n%s", mode, processed, failed, out)
		}
		// Pooled server connections stay open: their statistics reach
		// pg_stat_database within PostgreSQL's idle flush interval (10 s).
		var onStandbys, onPrimary int
		err := lab.WaitFor(ctx, "the standbys' commit counts", 200*time.Millisecond, func(context.Context) (bool, string, error) {
			after := commits()
			onStandbys = after["n2"] - before["n2"] + after["n3"] - before["n3"]
			onPrimary = after["n1"] - before["n1"]
			return onStandbys >= processed, fmt.Sprintf("%d of %d on n2+n3, %d on n1", onStandbys, processed, onPrimary), nil
		})
		t.Logf("pgbench -S -M %s: %d transactions, %d failed; commits on n2+n3 %d, on n1 %d", mode, processed, failed, onStandbys, onPrimary)
		if err != nil {
			t.Errorf("pgbench -S -M %s: the standbys did not run its read-only transactions: %v", mode, err)
		}
	}
	if got := strings.TrimSpace(run(append(append([]string{"psql", "-X", "-At"}, conn...), "-d", lab.AppDatabase, "-c", "SELECT host(inet_server_addr())")...)); pl.addrs[got] != "n2" && pl.addrs[got] != "n3" {
		t.Errorf("psql's SELECT ran on %q, want a standby", got)
	}
}

// psycopg2 (libpq, simple protocol, parameters interpolated by the
// driver): reads in autocommit reach a standby, writes the primary, and
// its default mode (every statement inside BEGIN) stays on the primary.
func testPsycopg(t *testing.T, pl *proxyLab) {
	const python = "/usr/bin/python3" // Debian's, with python3-psycopg2
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3 with python3-psycopg2 (make deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := `
import psycopg2
c = psycopg2.connect(host="127.0.0.1", port=6432, user="app", dbname="lab")
c.autocommit = True
cur = c.cursor()
def where(label, sql, args=None):
    cur.execute(sql, args)
    print(label, cur.fetchone()[0])
where("read", "SELECT host(inet_server_addr())")
where("param", "SELECT host(inet_server_addr()) WHERE %s = %s", (1, 1))
where("write", "INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING host(at)")
c.autocommit = False
where("block", "SELECT host(inet_server_addr())")
c.commit()
`
	cmd, err := pl.l.Exec(ctx, "client", python, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psycopg2 through the proxy: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if label, addr, ok := strings.Cut(line, " "); ok {
			got[label] = pl.addrs[addr]
		}
	}
	standby := func(h string) bool { return h == "n2" || h == "n3" }
	if !standby(got["read"]) || !standby(got["param"]) || got["write"] != "n1" || got["block"] != "n1" {
		t.Errorf("psycopg2 statements ran on %v; want read and param on a standby, write and block on n1\n%s", got, out)
	}
}

// psycopg 3 (libpq's pipeline mode): twenty queries and a write before one
// Sync, answered in order from the primary; an error in a pipeline skips
// the rest of it up to its Sync, and the connection goes on; LISTEN, then
// a notification sent by another client reaches this one while it is idle
// (issue 17).
func testPsycopg3Pipeline(t *testing.T, pl *proxyLab) {
	const python = "/usr/bin/python3" // Debian's, with python3-psycopg
	if err := exec.Command(python, "-c", "import psycopg").Run(); err != nil {
		t.Skip("needs Debian's python3 with python3-psycopg (make deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := `
import psycopg, select
dsn = "host=127.0.0.1 port=6432 user=app dbname=lab"
with psycopg.connect(dsn, autocommit=True) as c:
    with c.pipeline() as p:
        reads = [c.execute("SELECT host(inet_server_addr()), %s::int", (i,)) for i in range(20)]
        write = c.execute("INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING host(at)")
        p.sync()
    print("order", all(r.fetchone()[1] == i for i, r in enumerate(reads)))
    print("write", write.fetchone()[0])
    try:
        with c.pipeline():
            c.execute("SELECT 1/0")
            c.execute("SELECT 2")
    except psycopg.errors.DivisionByZero:
        print("skipped to sync")
    print("after", c.execute("SELECT 42").fetchone()[0])
    c.execute("LISTEN rampart_pipeline")
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("NOTIFY rampart_pipeline, 'hello'")
    if select.select([c.fileno()], [], [], 10) == ([], [], []):
        print("notified nothing")
    for n in c.notifies():
        print("notified", n.payload)
        break
`
	cmd, err := pl.l.Exec(ctx, "client", python, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psycopg 3 through the proxy: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if label, v, ok := strings.Cut(line, " "); ok {
			got[label] = v
		}
	}
	if got["order"] != "True" || pl.addrs[got["write"]] != "n1" || got["notified"] != "hello" {
		t.Errorf("psycopg 3: %v\n%s", got, out)
	}
	if !strings.Contains(string(out), "skipped to sync") || got["after"] != "42" {
		t.Errorf("an error in a pipeline: %q", out)
	}
}

// pgjdbc (Debian's libpostgresql-jdbc-java), extended protocol with named
// server-side statements from the first execution: reads spread over both
// standbys (so the statement is prepared again where it lands), the write
// and the transaction reach the primary, and the driver's start-up
// parameters (application_name) reach whichever server runs its queries.
func testJDBC(t *testing.T, pl *proxyLab) {
	const jar = "/usr/share/java/postgresql.jar"
	java, err := exec.LookPath("java")
	if _, jerr := os.Stat(jar); err != nil || jerr != nil {
		t.Skip("needs a JDK and libpostgresql-jdbc-java (make deps)")
	}
	src, err := filepath.Abs("testdata/Where.java")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, err := pl.l.Exec(ctx, "client", java, "-cp", jar, src, "6432", lab.AppDatabase, lab.AppUser, pl.l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgjdbc through the proxy: %v\n%s", err, out)
	}
	reads := map[string]int{}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		label, value, _ := strings.Cut(line, " ")
		switch label {
		case "read":
			reads[pl.addrs[value]]++
		case "application_name":
			got[label] = value
		default:
			got[label] = pl.addrs[value]
		}
	}
	if reads["n2"] == 0 || reads["n3"] == 0 || reads["n2"]+reads["n3"] != 8 {
		t.Errorf("pgjdbc's 8 prepared reads ran on %v; want all on standbys, both used\n%s", reads, out)
	}
	if got["write"] != "n1" || got["block"] != "n1" {
		t.Errorf("pgjdbc's write ran on %q and its transaction on %q; want n1 for both\n%s", got["write"], got["block"], out)
	}
	if got["application_name"] != "PostgreSQL_JDBC_Driver" {
		t.Errorf("application_name on the server = %q; want the driver's start-up value PostgreSQL_JDBC_Driver\n%s", got["application_name"], out)
	}
}

// Start-up parameters and SET follow a client to every server it reaches
// (no pinning: its reads still spread over the standbys) and never leak to
// the next client of those server connections; a value the server refuses
// fails the start-up as it would without the pooler.
func testSessionParams(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const probe = "SELECT host(inet_server_addr()), current_setting('application_name'), current_setting('TimeZone'), current_setting('search_path')"
	type seen struct{ host, app, tz, path string }
	sample := func(c *pgx.Conn, n int) []seen {
		var out []seen
		for range n {
			var s seen
			if err := c.QueryRow(ctx, probe).Scan(&s.host, &s.app, &s.tz, &s.path); err != nil {
				t.Fatal(err)
			}
			s.host = pl.addrs[s.host]
			out = append(out, s)
		}
		return out
	}
	c := pl.connect(t, ctx, "application_name=params-test timezone=Asia/Tokyo")
	if _, err := c.Exec(ctx, "SET search_path = pg_catalog, public"); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, s := range sample(c, 8) {
		hosts[s.host] = true
		if s.app != "params-test" || s.tz != "Asia/Tokyo" || s.path != "pg_catalog, public" {
			t.Errorf("on %s the client's parameters are %+v; want params-test, Asia/Tokyo, pg_catalog, public", s.host, s)
		}
	}
	if hosts["n1"] || len(hosts) != 2 {
		t.Errorf("after SET the reads ran on %v; want both standbys (SET carried, not pinned)", hosts)
	}
	if _, err := c.Exec(ctx, "RESET search_path"); err != nil {
		t.Fatal(err)
	}
	for _, s := range sample(c, 4) {
		if s.path != `"$user", public` {
			t.Errorf("after RESET search_path, %s has %q", s.host, s.path)
		}
	}
	other := pl.connect(t, ctx, "")
	for _, s := range sample(other, 8) {
		if s.app == "params-test" || s.tz == "Asia/Tokyo" || s.path != `"$user", public` {
			t.Errorf("another client sees %+v on %s: the first client's parameters leaked", s, s.host)
		}
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=6432 user=%s password=%s dbname=%s sslmode=disable timezone=Nowhere/Bogus",
		lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc, _ = pl.l.Dialer("client")
	if bad, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		bad.Close(ctx)
		t.Error("a start-up with timezone=Nowhere/Bogus was accepted")
	} else if !strings.Contains(err.Error(), "TimeZone") {
		t.Errorf("a bad TimeZone at start-up: %v; want the server's complaint about TimeZone", err)
	}
}

// Rows far bigger than the relay's buffer (one 3 MB value; 20 rows of
// 200 kB) arrive whole and in order.
// sampleHeap samples this process's heap every 5 ms until the returned
// function is called, which says how far the heap grew above where it was.
func sampleHeap(ctx context.Context) func() int64 {
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	runtime.GC()
	before := heap()
	var peak atomic.Uint64
	sampling, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for sampling.Err() == nil {
			if h := heap(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-sampling.Done():
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		stop()
		<-done
		return int64(peak.Load()) - int64(before)
	}
}

// countingWriter counts what is written to it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(b []byte) (int, error) { w.n.Add(int64(len(b))); return len(b), nil }

func testLargeResults(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pl.connect(t, ctx, "")
	var big string
	if err := c.QueryRow(ctx, "SELECT repeat('x', 3000000) || 'end'").Scan(&big); err != nil {
		t.Fatal(err)
	}
	if len(big) != 3000003 || !strings.HasSuffix(big, "xend") {
		t.Errorf("a 3 MB value came back as %d bytes", len(big))
	}
	rows, err := c.Query(ctx, "SELECT i, repeat(chr(64 + i), 200000) FROM generate_series(1, 20) i")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var i int
		var v string
		if err := rows.Scan(&i, &v); err != nil {
			t.Fatal(err)
		}
		if n++; i != n || len(v) != 200000 || v[0] != byte(64+i) || v[len(v)-1] != byte(64+i) {
			t.Fatalf("row %d: i=%d, %d bytes of %q…", n, i, len(v), v[:1])
		}
	}
	if err := rows.Err(); err != nil || n != 20 {
		t.Errorf("%d rows, %v; want 20", n, err)
	}
	// 200 MB in one row, and COPY of 200 MB in both directions, by psql
	// (its own process): the pooler streams what it need not look into
	// and holds a copy buffer, not the value (issue 18).
	const size = 200_000_000
	psql := func(stdin io.Reader, sql ...string) (int64, error) {
		argv := []string{filepath.Join(pl.l.Config().PGBin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
			"-h", "127.0.0.1", "-p", "6432", "-U", lab.AppUser, "-d", lab.AppDatabase}
		for _, s := range sql {
			argv = append(argv, "-c", s)
		}
		cmd, err := pl.l.Exec(ctx, "client", argv...)
		if err != nil {
			return 0, err
		}
		var out countingWriter
		var stderr strings.Builder
		cmd.Env = append(cmd.Env, "PGPASSWORD="+pl.l.Password(lab.AppUser), "PGSSLMODE=disable")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", sql, err, stderr.String())
		}
		return out.n.Load(), nil
	}
	if _, err := psql(nil, "CREATE TABLE IF NOT EXISTS big_copy (v text)"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		what  string
		sql   []string
		stdin io.Reader
		want  int64 // bytes psql prints
	}{
		{"a 200 MB value read", []string{fmt.Sprintf("SELECT repeat('x', %d)", size)}, nil, size + 1},
		{"COPY FROM STDIN of a 200 MB row", []string{"COPY big_copy FROM STDIN"}, io.MultiReader(strings.NewReader(strings.Repeat("y", size)), strings.NewReader("\n")), 0},
		// In a transaction, so on the primary: a standby may not have the row yet.
		{"COPY TO STDOUT of it", []string{"BEGIN", "COPY big_copy TO STDOUT", "COMMIT"}, nil, size + 1},
	} {
		grew := sampleHeap(ctx)
		got, err := psql(step.stdin, step.sql...)
		g := grew()
		t.Logf("%s through the pooler: psql printed %d bytes; the pooler's heap grew at most %d MB", step.what, got, g>>20)
		if err != nil || got != step.want {
			t.Errorf("%s: %d bytes, %v; want %d", step.what, got, err, step.want)
		}
		if g > 40<<20 {
			t.Errorf("%s: the pooler's heap grew %d MB", step.what, g>>20)
		}
	}
	if _, err := psql(nil, "DROP TABLE big_copy"); err != nil {
		t.Error(err)
	}
}

// A user the auth file knows only by its SCRAM verifier (as copied from
// pg_authid): the client's proof gives the pooler what it needs to log in
// to every node as that user; a wrong password is refused.
func testPassThrough(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const role, password = "passthru", "pass-through-secret"
	if _, err := pl.l.Psql(ctx, "n1", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password)); err != nil {
		t.Fatal(err)
	}
	out, err := pl.l.Psql(ctx, "n1", "SELECT rolpassword FROM pg_authid WHERE rolname = '"+role+"'")
	if err != nil {
		t.Fatal(err)
	}
	users, err := ParseAuthFile("auth_file", strings.NewReader(fmt.Sprintf("%q %q\n", role, strings.TrimSpace(out))))
	if err != nil {
		t.Fatal(err)
	}
	if users[role].Password != "" {
		t.Fatalf("auth file line parsed as a password, not a verifier: %q", out)
	}
	if err := pl.l.WaitCaughtUp(ctx, "n1", []string{"n2", "n3"}); err != nil {
		t.Fatal(err)
	}
	cfg := pl.cfg
	cfg.Users = map[string]User{lab.AppUser: pl.cfg.Users[lab.AppUser], role: users[role]}
	_, stop := pl.serve(t, cfg, 6437)
	defer stop()
	dial, _ := pl.l.Dialer("client")
	connect := func(pw string) (*pgx.Conn, error) {
		c, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=6437 user=%s password=%s dbname=%s sslmode=disable", role, pw, lab.AppDatabase))
		if err != nil {
			t.Fatal(err)
		}
		c.DialFunc = dial
		return pgx.ConnectConfig(ctx, c)
	}
	if c, err := connect("wrong"); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: %v; want password authentication failed", err)
	}
	c, err := connect(password)
	if err != nil {
		t.Fatalf("verifier-only user through the pooler: %v", err)
	}
	defer c.Close(ctx)
	hosts := map[string]bool{}
	for range 4 {
		hosts[pl.where(t, ctx, c, "SELECT host(inet_server_addr())")] = true
	}
	tx, err := c.Begin(ctx) // a transaction block: the primary
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	if err := tx.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	hosts[pl.addrs[addr]] = true
	if len(hosts) != 3 {
		t.Errorf("the verifier-only user reached %v; want n1 and both standbys (logged in with the client's key everywhere)", hosts)
	}
}

// A proxy with client_tls_sslmode=require: a client asking for TLS gets
// it, one that does not is refused with a message saying what to do.
func testTLS(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := pl.cfg
	cfg.ClientTLS, cfg.ClientTLSRequired = selfSigned(t), true
	pl.serve(t, cfg, 6433)
	dial, _ := pl.l.Dialer("client")
	open := func(sslmode string) (*pgx.Conn, error) {
		c, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=6433 user=%s password=%s dbname=%s sslmode=%s",
			lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase, sslmode))
		if err != nil {
			t.Fatal(err)
		}
		c.DialFunc = dial
		return pgx.ConnectConfig(ctx, c)
	}
	c, err := open("require")
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	defer c.Close(ctx)
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("sslmode=require: the connection is %T, not TLS", c.PgConn().Conn())
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("query over TLS: %d, %v", one, err)
	}
	if _, err := open("disable"); err == nil || !strings.Contains(err.Error(), "sslmode=require") {
		t.Errorf("sslmode=disable against client_tls_sslmode=require: %v, want a refusal naming sslmode=require", err)
	}
}

// selfSigned makes a throw-away certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart pooler test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// A cluster whose pg_hba.conf takes TLS only: with server_tls_sslmode and
// server_tls_ca_file the health checks and the sessions both encrypt and
// verify, so every node is seen and routed to (issue 18: health checks
// always ran in plain text, and every node looked down). A pooler that
// does not trust the nodes' CA reaches none of them.
func testTLSOnlyCluster(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ca := newTestCA(t, "rampart lab nodes")
	dir := t.TempDir()
	caFile, otherCA := filepath.Join(dir, "nodes-ca.crt"), filepath.Join(dir, "other-ca.crt")
	for path, pem := range map[string][]byte{caFile: ca.certPEM, otherCA: newTestCA(t, "someone else").certPEM} {
		if err := os.WriteFile(path, pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dial, _ := pl.l.Dialer("client")
	for _, h := range pl.l.Hosts() {
		if h.Role != lab.RoleDatabase {
			continue
		}
		cert, key := ca.issue(t, h.Addr.AsSlice())
		if err := pl.l.RequireTLS(ctx, h.Name, cert, key); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := pl.l.AllowPlain(context.Background(), h.Name); err != nil {
				t.Errorf("back to plain connections on %s: %v", h.Name, err)
			}
		})
		// The reload has taken once a plain connection is refused and
		// an encrypted one gets in.
		try := func(sslmode string) error {
			c, err := pgx.ParseConfig(fmt.Sprintf("host=%s user=%s password=%s dbname=%s sslmode=%s connect_timeout=2",
				h.Addr, lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase, sslmode))
			if err != nil {
				t.Fatal(err)
			}
			c.DialFunc = dial
			conn, err := pgx.ConnectConfig(ctx, c)
			if err == nil {
				conn.Close(ctx)
			}
			return err
		}
		if err := lab.WaitFor(ctx, h.Name+" takes TLS only", 100*time.Millisecond, func(context.Context) (bool, string, error) {
			plain, encrypted := try("disable"), try("require")
			return plain != nil && encrypted == nil, fmt.Sprintf("plain: %v; TLS: %v", plain, encrypted), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := pl.cfg
	cfg.ServerTLSMode, cfg.ServerTLSCAFile = "verify-full", caFile
	pl.serve(t, cfg, 6434) // waits until it sees a primary and two standbys
	c, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=6434 user=%s password=%s dbname=%s sslmode=disable",
		lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	c.DialFunc = dial
	conn, err := pgx.ConnectConfig(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const where = "SELECT host(inet_server_addr()) || ' ' || ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
	read := pl.whereTLS(t, ctx, conn, where)
	write := pl.whereTLS(t, ctx, conn, "WITH w AS (INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING at) "+
		"SELECT host(at) || ' ' || (SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()) FROM w")
	if read[0] == "n1" || read[1] != "true" || write[0] != "n1" || write[1] != "true" {
		t.Errorf("through a TLS-only cluster: a read ran on %s (ssl %s), a write on %s (ssl %s); want a standby and the primary, both encrypted",
			read[0], read[1], write[0], write[1])
	}

	cfg.ServerTLSCAFile = otherCA
	cfg.PrimaryWait = time.Second
	p := New(cfg)
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Monitor(mctx)
	ln, err := pl.l.Listen("client", "127.0.0.1:6435")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(mctx, ln)
	c.Port = 6435
	untrusting, err := pgx.ConnectConfig(ctx, c)
	if err == nil {
		defer untrusting.Close(ctx)
		var got string
		err = untrusting.QueryRow(ctx, "INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING host(at)").Scan(&got)
		if err == nil {
			t.Errorf("a pooler that does not trust the nodes' CA wrote on %s", pl.addrs[got])
		}
	}
	if ups := upNodes(p); len(ups) > 0 {
		t.Errorf("a pooler that does not trust the nodes' CA sees %v up", ups)
	}
}

func upNodes(p *Proxy) []string {
	var up []string
	for _, b := range p.Backends() {
		if b.Up {
			up = append(up, b.Name)
		}
	}
	return up
}

// whereTLS runs sql, which returns "address ssl", and names the host.
func (pl *proxyLab) whereTLS(t *testing.T, ctx context.Context, c *pgx.Conn, sql string) [2]string {
	t.Helper()
	var got string
	if err := c.QueryRow(ctx, sql).Scan(&got); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	addr, ssl, _ := strings.Cut(got, " ")
	return [2]string{pl.addrs[addr], ssl}
}

// testCA is a certificate authority for a test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a server certificate for ip and its key, in PEM.
func (ca *testCA) issue(t *testing.T, ip net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip.String()},
		IPAddresses: []net.IP{ip}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:  x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

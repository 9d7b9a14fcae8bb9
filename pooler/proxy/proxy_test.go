package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/test/lab"
)

// proxyLab is a lab (n1 primary, n2 and n3 streaming, run by the lab) with
// a proxy listening on 127.0.0.1:6432 inside its client host.
type proxyLab struct {
	l     *lab.Lab
	p     *Proxy
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
	v, err := NewVerifier(l.Password(lab.AppUser))
	if err != nil {
		t.Fatal(err)
	}
	pl.p = New(Config{
		Nodes:    nodes,
		Users:    map[string]User{lab.AppUser: {Name: lab.AppUser, Password: l.Password(lab.AppUser), Verifier: v}},
		PoolSize: 4, MaxPacketSize: 1 << 20, ServerResetQuery: "DISCARD ALL",
		Policy:     route.Policy{MaxLagBytes: 16 << 20, ReadYourWrites: 0},
		HealthUser: lab.AppUser, HealthDatabase: lab.AppDatabase, HealthPeriod: 200 * time.Millisecond,
		PrimaryWait: 5 * time.Second, Dial: dial, Log: log,
	})
	var ln net.Listener
	if err := l.InNetwork("client", func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:6432")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go pl.p.Monitor(sctx)
	go pl.p.Serve(sctx, ln)
	if err := lab.WaitFor(upCtx, "the proxy sees a primary and two standbys", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		var roles []string
		for _, b := range pl.p.Backends() {
			if b.Up {
				roles = append(roles, b.Name+"="+b.Role.String())
			}
		}
		return strings.Join(roles, " ") == "n1=primary n2=standby n3=standby", strings.Join(roles, " "), nil
	}); err != nil {
		t.Fatal(err)
	}
	return pl
}

// connect opens a pgx connection to the proxy from the client host.
func (pl *proxyLab) connect(t *testing.T, ctx context.Context, extra string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=6432 user=%s password=%s dbname=%s sslmode=disable %s",
		lab.AppUser, pl.l.Password(lab.AppUser), lab.AppDatabase, extra))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DialFunc, err = pl.l.Dialer("client"); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
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

// Where each kind of statement runs, proven by inet_server_addr(), over
// pgx's extended protocol (prepared statements cached per connection) and
// simple protocol.
func TestProxyRoutes(t *testing.T) {
	pl := startProxyLab(t, "pxy")
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

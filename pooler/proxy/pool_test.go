package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/pooler/pool"
)

// takeSlot occupies a slot of pl with sc, as a session holding a server
// connection does (pl has no idle connection).
func takeSlot(t *testing.T, pl *pool.Pool[*serverConn], sc *serverConn) {
	t.Helper()
	if _, err := pl.Get(context.Background(), 0, time.Now(), pool.Funcs[*serverConn]{
		Connect: func(context.Context) (*serverConn, error) { return sc, nil }}); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStale(t *testing.T) {
	now := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: "192.0.2.1:5432"}}, ServerIdleTimeout: time.Minute, Now: func() time.Time { return now }})
	k := poolKey{node: 0, database: "lab", user: "app"}
	pl := p.pools.Pool(k)
	var peers []net.Conn
	var scs []*serverConn
	for range 2 {
		a, b := net.Pipe()
		peers = append(peers, b)
		sc := &serverConn{key: k, pool: pl, conn: a}
		takeSlot(t, pl, sc)
		scs = append(scs, sc)
	}
	pl.Put(scs[0], now.Add(-2*time.Minute))
	pl.Put(scs[1], now.Add(-30*time.Second))
	p.closeStale()
	if open, idle := pl.Counts(); open != 1 || idle != 1 {
		t.Fatalf("after closeStale: %d open, %d idle; want the one idle for 30 s", open, idle)
	}
	// The stale one is closed: its peer reads EOF at once.
	peers[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := peers[0].Read(make([]byte, 1)); err == nil {
		t.Error("the connection idle for 2 minutes is still open")
	}
}

// acquire hands out only an idle connection that is still quiet and of
// the node's current epoch: one the server closed, one with an unasked
// message waiting (a shutdown's 57P01) and one from before a demotion are
// closed instead.
func TestAcquireSkipsEndedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client net.Conn, server net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return newFastConn(c), s
	}
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: "192.0.2.1:5432"}}, PoolSize: 4})
	k := poolKey{node: 0, database: "lab", user: "app"}
	pl := p.pools.Pool(k)
	var idle []*serverConn
	add := func(c net.Conn, epoch int) *serverConn {
		sc := &serverConn{key: k, pool: pl, conn: c, rd: newMsgReader(c, 0), epoch: epoch}
		idle = append(idle, sc)
		return sc
	}
	good, _ := pair()
	want := add(good, 1)
	closed, closedPeer := pair()
	closedPeer.Close()
	add(closed, 1)
	talked, talkedPeer := pair()
	if _, err := talkedPeer.Write([]byte("E")); err != nil {
		t.Fatal(err)
	}
	add(talked, 1)
	old, _ := pair()
	add(old, 0)
	for _, sc := range idle {
		takeSlot(t, pl, sc)
	}
	for _, sc := range idle { // the last is taken first
		pl.Put(sc, time.Now().Add(-time.Second))
	}
	p.epoch[0] = 1
	// The peer's close and write must have arrived before acquire looks.
	for _, c := range []net.Conn{closed, talked} {
		deadline := time.Now().Add(5 * time.Second)
		for quiet(c) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling loopback delivery
		}
		if quiet(c) {
			t.Fatal("the peer's close or message did not arrive within 5 s")
		}
	}
	got, err := p.acquire(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, left := pl.Counts(); got != want || left != 0 {
		t.Errorf("acquire gave %p (want the quiet one %p), %d left idle", got, want, left)
	}
}

func TestCannotConnectNow(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for err, want := range map[error]bool{
		fmt.Errorf("connect to n1: %w", refused): true,
		fmt.Errorf("connect to n1: %w", &pgconn.PgError{Code: "57P03", Message: "the database system is shutting down"}): true,
		fmt.Errorf("connect to n1: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}):       false,
		fmt.Errorf("pass-through: %w", &pgErr{code: "57P03"}):                                                            true,
		errors.New("user app is not in auth_file"):                                                                       false,
	} {
		if got := cannotConnectNow(err); got != want {
			t.Errorf("cannotConnectNow(%v) = %v, want %v", err, got, want)
		}
	}
}

// A pool whose connection attempt failed and that holds nothing is
// forgotten: a client trying database names must not grow the map
// (issue 18).
func TestFailedPoolsAreForgotten(t *testing.T) {
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: "127.0.0.1:1"}}, PoolSize: 4, Users: map[string]User{"app": {Name: "app", Password: "x"}}})
	for i := range 50 {
		if _, err := p.acquire(context.Background(), poolKey{node: 0, database: fmt.Sprintf("db%d", i), user: "app"}); err == nil {
			t.Fatal("connected to a port nobody listens on")
		}
	}
	if n := p.pools.Len(); n != 0 {
		t.Errorf("%d pools left after 50 failed database names", n)
	}
}

// query_wait_timeout: a client waits for a slot of a full pool that long,
// then gets an error naming the setting (the session answers it with
// 57014); a slot that comes free in time is taken (issue 18: the wait had
// no bound).
func TestQueryWaitTimeout(t *testing.T) {
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: "192.0.2.1:5432"}}, PoolSize: 1, QueryWaitTimeout: 100 * time.Millisecond,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no server in this test")
		}})
	k := poolKey{node: 0, database: "lab", user: "app"}
	pl := p.pools.Pool(k)
	takeSlot(t, pl, &serverConn{}) // another session holds the only server connection
	start := time.Now()
	_, err := p.acquire(context.Background(), k)
	waited := time.Since(start)
	var wait *poolWaitError
	if !errors.As(err, &wait) || !strings.Contains(err.Error(), "query_wait_timeout") {
		t.Fatalf("acquire from a full pool: %v, want a poolWaitError naming query_wait_timeout", err)
	}
	if waited < 100*time.Millisecond {
		t.Errorf("gave up after %s, before query_wait_timeout (100ms)", waited)
	}
	// Freed within the bound: the waiter gets the slot (and then tries to
	// connect, which fails here; that is not a wait error).
	go pl.Discard()
	if _, err := p.acquire(context.Background(), k); errors.As(err, &wait) {
		t.Errorf("a slot freed in time: %v", err)
	}
}

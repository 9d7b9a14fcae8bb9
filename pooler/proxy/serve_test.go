package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"
)

// flakyListener fails its first accepts as a process out of descriptors
// does, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func testProxy(t *testing.T, cfg Config) (*Proxy, string) {
	t.Helper()
	u, err := NewUser("app", "secret")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Users = map[string]User{"app": u}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, &flakyListener{Listener: ln, fails: 5}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p, ln.Addr().String()
}

// startup sends a start-up packet and returns the first answer.
func startup(t *testing.T, addr string) (net.Conn, pgproto3.BackendMessage) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "app", "database": "app"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := fe.Receive()
	if err != nil {
		t.Fatalf("start-up: %v", err)
	}
	return conn, msg
}

// Out of descriptors the pooler waits and serves on (issue 18: Serve
// returned on EMFILE and the daemon exited).
func TestServeRidesOutEMFILE(t *testing.T) {
	_, addr := testProxy(t, Config{})
	if _, msg := startup(t, addr); !isSASL(msg) {
		t.Errorf("after five EMFILE accepts, the start-up was answered %T", msg)
	}
}

// max_client_conn: one more client is refused with PostgreSQL's 53300
// after its start-up packet; once one leaves, the next gets in.
func TestMaxClientConn(t *testing.T) {
	p, addr := testProxy(t, Config{MaxClientConn: 2})
	first, msg1 := startup(t, addr)
	_, msg2 := startup(t, addr)
	if !isSASL(msg1) || !isSASL(msg2) {
		t.Fatalf("the first two: %T, %T", msg1, msg2)
	}
	_, msg3 := startup(t, addr)
	if e, ok := msg3.(*pgproto3.ErrorResponse); !ok || e.Code != "53300" || e.Severity != "FATAL" {
		t.Fatalf("the third: %+v, want FATAL 53300", msg3)
	}
	first.Close()
	eventually(t, "the pooler to see the first client gone", func() (bool, string) {
		return p.conns.Load() <= 1, fmt.Sprintf("%d connections", p.conns.Load())
	})
	if _, msg := startup(t, addr); !isSASL(msg) {
		t.Errorf("after one left: %T, want the SASL exchange", msg)
	}
}

func isSASL(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.AuthenticationSASL)
	return ok
}

func TestAcceptCanWait(t *testing.T) {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		if !acceptCanWait(&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", e)}) {
			t.Errorf("%v: not worth waiting", e)
		}
	}
	if acceptCanWait(net.ErrClosed) || acceptCanWait(errors.New("other")) {
		t.Error("a closed listener is worth waiting for")
	}
}

// eventually polls cond every millisecond for up to ten seconds and fails
// with the last state it saw.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("waiting for %s: last state: %s", what, state)
		case <-tick.C:
		}
	}
}

// A server connection gives up on a frozen host within serverSilence
// (issue 18: the kernel's default is about 15 minutes).
func TestServerSocketsGiveUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := New(Config{})
	c, err := p.dialServer(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var timeout, keepalive int
	var gerr error
	rc.Control(func(fd uintptr) {
		timeout, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if gerr == nil {
			keepalive, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		}
	})
	if gerr != nil || timeout != int(serverSilence.Milliseconds()) || keepalive != 1 {
		t.Errorf("TCP_USER_TIMEOUT %d ms, SO_KEEPALIVE %d (%v); want %d ms and on", timeout, keepalive, gerr, serverSilence.Milliseconds())
	}
}

// A cancel goes to the server connection of the session it names, and the
// session cannot give that connection back (to the next client, whose
// query the cancel would hit) while the cancel is on its way (issue 18).
func TestCancelHoldsTheSessionsServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	detached := make(chan struct{})
	raceSeen := make(chan bool, 1)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		// The session tries to give its connection back now; it must wait.
		select {
		case <-detached:
			raceSeen <- true
		case <-time.After(200 * time.Millisecond):
			raceSeen <- false
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: ln.Addr().String()}}, Dial: dial, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	k := poolKey{node: 0, database: "app", user: "app"}
	pl := p.pools.Pool(k)
	server, _ := net.Pipe()
	sc := &serverConn{key: k, pool: pl, conn: server, pid: 4242, secret: []byte{1, 2, 3, 4}, prepared: map[string]string{}}
	takeSlot(t, pl, sc)
	s := &session{p: p, sc: sc, key: cancelKey{pid: 1 << 23, secret: "abcd"}}
	p.backends[0].Outstanding = 1
	p.clients[s.key] = s
	got := make(chan *pgproto3.CancelRequest, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		be := pgproto3.NewBackend(c, c)
		if m, err := be.ReceiveStartupMessage(); err == nil {
			if cr, ok := m.(*pgproto3.CancelRequest); ok {
				got <- cr
			}
		}
	}()
	cancelled := make(chan struct{})
	go func() { p.cancel(context.Background(), s.key.pid, []byte(s.key.secret)); close(cancelled) }()
	eventually(t, "the cancel to take the session's server", func() (bool, string) {
		if !s.mu.TryLock() {
			return true, ""
		}
		s.mu.Unlock()
		return false, "session unlocked"
	})
	go func() { s.detach(false); close(detached) }()
	if <-raceSeen {
		t.Error("the session gave its server connection back while a cancel for it was on its way")
	}
	<-cancelled
	<-detached
	select {
	case cr := <-got:
		if cr.ProcessID != 4242 {
			t.Errorf("cancel for backend %d, want 4242", cr.ProcessID)
		}
	case <-time.After(5 * time.Second):
		t.Error("no cancel reached the server")
	}
}

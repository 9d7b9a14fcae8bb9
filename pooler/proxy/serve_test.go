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

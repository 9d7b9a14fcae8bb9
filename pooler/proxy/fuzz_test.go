package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func startupBytes(params map[string]string) []byte {
	b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params}).Encode(nil)
	return b
}

// Whatever a client sends before it is authenticated, the session ends
// (with an ErrorResponse or a close) within its deadline, and the proxy
// stays up for the next client.
func FuzzClientStartup(f *testing.F) {
	f.Add(startupBytes(map[string]string{"user": "app", "database": "lab"}))
	f.Add(append([]byte{0, 0, 0, 8, 4, 210, 22, 47}, startupBytes(map[string]string{"user": "app"})...)) // SSLRequest first
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})                                   // CancelRequest
	f.Add(append(startupBytes(map[string]string{"user": "app"}), 'p', 0, 0, 0, 40, 'S', 'C', 'R', 'A', 'M'))
	big := make([]byte, 8)
	binary.BigEndian.PutUint32(big, 1<<30)
	f.Add(big)
	v, err := NewVerifier("pw")
	if err != nil {
		f.Fatal(err)
	}
	p := New(Config{
		Nodes: []Node{{Name: "n1", Addr: "192.0.2.1:5432", Weight: 1}},
		Users: map[string]User{"app": {Name: "app", Password: "pw", Verifier: v}},
		// The default limits, as a pooler runs with them.
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no server in this test")
		},
		Log: slog.New(slog.DiscardHandler),
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		sendAndLeave(t, client, data, func() { p.serveClient(context.Background(), server) })
	})
}

// After authentication, whatever a client sends — messages cut short,
// unknown types, lengths that lie, extended-protocol batches — the
// session answers or closes, and ends within its deadline once the client
// leaves. No node is reachable here, so every statement gets the
// "no server" ErrorResponse; what is fuzzed is the message handling.
func FuzzClientMessages(f *testing.F) {
	q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	parse, _ := (&pgproto3.Parse{Name: "s1", Query: "SELECT $1"}).Encode(nil)
	bind, _ := (&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}}).Encode(nil)
	exec, _ := (&pgproto3.Execute{}).Encode(nil)
	sync, _ := (&pgproto3.Sync{}).Encode(nil)
	f.Add(q)
	f.Add(append(append(append(append([]byte{}, parse...), bind...), exec...), sync...))
	f.Add([]byte{'Q', 0, 0, 0, 3})
	f.Add([]byte{'y', 0, 0, 0, 4})
	f.Add([]byte{'B', 0, 0, 0, 9, 0, 0, 0xff, 0xff, 0})
	f.Add([]byte{'X', 0, 0, 0, 4})
	p := New(Config{
		Nodes:       []Node{{Name: "n1", Addr: "192.0.2.1:5432", Weight: 1}},
		PrimaryWait: time.Millisecond, // the default limits otherwise
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no server in this test")
		},
		Log: slog.New(slog.DiscardHandler),
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		s := &session{p: p, conn: server, be: pgproto3.NewBackend(server, server), stmts: map[string]*pgproto3.Parse{}, user: "app", db: "lab"}
		s.be.SetMaxBodyLen(authMaxBody)
		sendAndLeave(t, client, data, func() {
			defer server.Close()
			s.loop(context.Background())
		})
		if s.attached() != nil {
			t.Errorf("input %q left a server connection attached", data)
		}
	})
}

// sendAndLeave runs serve while a client sends data and hangs up; serve
// must return within 5 s of that.
func sendAndLeave(t *testing.T, client net.Conn, data []byte, serve func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve()
	}()
	go io.Copy(io.Discard, client)
	client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	client.Write(data)
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("session still running 5 s after the client left (input %q)", data)
	}
}

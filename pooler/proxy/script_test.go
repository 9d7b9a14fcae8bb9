package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/pool"
	"github.com/rampart-ha/rampart/pooler/route"
)

// The relay against a scripted server, without PostgreSQL (pgx's pgmock
// style): the proxy dials net.Pipe ends (Config.Dial), behind each of
// which a server connection logs in at once and then plays the next
// script; the client is pgconn over another pipe, hijacked after its
// login so that a test speaks raw protocol messages.

// script is what one server connection does after its login.
type script func(s *serverEnd) error

// scriptedServer answers the proxy's dials with the scripts it is given,
// one per connection, in dial order.
type scriptedServer struct {
	t       *testing.T
	scripts chan script
	ended   chan error   // each connection's script's outcome
	dials   atomic.Int32 // connections logged in
}

// serverEnd is the server's side of one connection.
type serverEnd struct {
	be   *pgproto3.Backend
	conn net.Conn
	pid  uint32
}

func (ss *scriptedServer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	proxyEnd, serverConn := net.Pipe()
	go func() {
		defer serverConn.Close()
		s := &serverEnd{be: pgproto3.NewBackend(serverConn, serverConn), conn: serverConn}
		refusedTLS, err := s.login()
		if refusedTLS && err != nil {
			return // sslmode=prefer: pgconn tries again without TLS, on a new connection
		}
		n := ss.dials.Add(1)
		if err != nil {
			ss.ended <- fmt.Errorf("server connection %d: login: %w", n, err)
			return
		}
		var sc script
		select {
		case sc = <-ss.scripts:
		case <-time.After(10 * time.Second):
			ss.ended <- fmt.Errorf("server connection %d: no script for it", n)
			return
		}
		serverConn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := sc(s); err != nil {
			ss.ended <- fmt.Errorf("server connection %d: %w", n, err)
			return
		}
		ss.ended <- nil
	}()
	return proxyEnd, nil
}

// login answers a start-up as a trusting server does; refusedTLS: it
// refused an SSLRequest first.
func (s *serverEnd) login() (refusedTLS bool, err error) {
	s.conn.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := s.be.ReceiveStartupMessage()
		if err != nil {
			return refusedTLS, err
		}
		switch m.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			refusedTLS = true
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return refusedTLS, err
			}
			continue
		case *pgproto3.StartupMessage:
		default:
			return refusedTLS, fmt.Errorf("start-up: unexpected %T", m)
		}
		break
	}
	s.pid = 1000 + uint32(time.Now().UnixNano()%1000)
	s.be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range map[string]string{"server_version": "17.2", "server_encoding": "UTF8", "client_encoding": "UTF8",
		"DateStyle": "ISO, MDY", "integer_datetimes": "on", "standard_conforming_strings": "on", "TimeZone": "UTC",
		"application_name": ""} {
		s.be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: s.pid, SecretKey: []byte{1, 2, 3, 4}})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return false, s.be.Flush()
}

// expect reads messages of the types in types (one letter each, the
// protocol's) and returns them: valid until the next expect (the backend
// reuses a type's message).
func (s *serverEnd) expect(types string) ([]pgproto3.FrontendMessage, error) {
	var got []pgproto3.FrontendMessage
	for i := range len(types) {
		m, err := s.be.Receive()
		if err != nil {
			return got, fmt.Errorf("expected %q, got %s and then %w", types, typesOf(got), err)
		}
		got = append(got, m)
		if typ := typeOf(m); typ != types[i] {
			return got, fmt.Errorf("expected %q, got %s", types, typesOf(got))
		}
	}
	return got, nil
}

// reply sends msgs and flushes.
func (s *serverEnd) reply(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		s.be.Send(m)
	}
	return s.be.Flush()
}

// closed reads until the proxy closes the connection; anything else it
// sends first is an error.
func (s *serverEnd) closed() error {
	m, err := s.be.Receive()
	if err == nil {
		if _, ok := m.(*pgproto3.Terminate); ok {
			return nil
		}
		return fmt.Errorf("expected the connection's end, got %c", typeOf(m))
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "closed pipe") {
		return nil
	}
	return err
}

func typeOf(m interface{ Encode([]byte) ([]byte, error) }) byte {
	b, err := m.Encode(nil)
	if err != nil || len(b) == 0 {
		return '?'
	}
	return b[0]
}

func typesOf[M interface{ Encode([]byte) ([]byte, error) }](ms []M) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, m := range ms {
		b.WriteByte(typeOf(m))
	}
	b.WriteByte('"')
	return b.String()
}

// scripted is a proxy in front of one scripted primary, n1.
type scripted struct {
	t      *testing.T
	p      *Proxy
	server *scriptedServer
	ctx    context.Context
}

func newScripted(t *testing.T, cfg Config) *scripted {
	t.Helper()
	u, err := NewUser("app", "secret")
	if err != nil {
		t.Fatal(err)
	}
	ss := &scriptedServer{t: t, scripts: make(chan script, 8), ended: make(chan error, 8)}
	cfg.Nodes = []Node{{Name: "n1", Addr: "192.0.2.1:5432", Weight: 1}} // never dialed: Dial pipes
	cfg.Users = map[string]User{"app": u}
	cfg.Dial = ss.dial
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p := New(cfg)
	p.apply([]observation{{up: true, role: route.RolePrimary}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &scripted{t: t, p: p, server: ss, ctx: ctx}
}

// play gives the next server connection its script.
func (sc *scripted) play(s script) { sc.server.scripts <- s }

// done waits for n server connections' scripts to end and fails the test
// on their errors.
func (sc *scripted) done(n int) {
	sc.t.Helper()
	for range n {
		select {
		case err := <-sc.server.ended:
			if err != nil {
				sc.t.Error(err)
			}
		case <-time.After(10 * time.Second):
			sc.t.Fatal("a server connection's script did not end within 10 s")
		}
	}
}

// restartPrimary has the health checks see n1 go down and come back: its
// server connections are not reused (a new epoch).
func (sc *scripted) restartPrimary() {
	sc.p.apply([]observation{{err: fmt.Errorf("connection refused")}})
	sc.p.apply([]observation{{up: true, role: route.RolePrimary}})
}

// idleServers waits until n server connections are idle in the pool:
// a client hears its transaction's end before its session gives the
// server connection back.
func (sc *scripted) idleServers(n int) {
	sc.t.Helper()
	eventually(sc.t, fmt.Sprintf("%d idle server connections", n), func() (bool, string) {
		idle := 0
		sc.p.pools.Each(func(_ poolKey, pl *pool.Pool[*serverConn]) {
			_, i := pl.Counts()
			idle += i
		})
		return idle == n, fmt.Sprintf("%d idle", idle)
	})
}

// clientEnd is a client logged in to the proxy, speaking raw messages.
type clientEnd struct {
	t      *testing.T
	fe     *pgproto3.Frontend
	conn   net.Conn
	server *scriptedServer
}

// fatalf fails the test with what the scripts said went wrong, if they
// have ended.
func (c *clientEnd) fatalf(format string, args ...any) {
	c.t.Helper()
	for {
		select {
		case err := <-c.server.ended:
			if err != nil {
				c.t.Errorf("scripted server: %v", err)
			}
			continue
		default:
		}
		break
	}
	c.t.Fatalf(format, args...)
}

func (sc *scripted) client() *clientEnd {
	sc.t.Helper()
	return sc.clientWith("")
}

// clientWith is client with more connection settings (conninfo).
func (sc *scripted) clientWith(conninfo string) *clientEnd {
	sc.t.Helper()
	clientConn, proxyConn := net.Pipe()
	go sc.p.serveClient(sc.ctx, proxyConn)
	cfg, err := pgconn.ParseConfig("user=app password=secret dbname=app sslmode=disable " + conninfo)
	if err != nil {
		sc.t.Fatal(err)
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return clientConn, nil }
	ctx, cancel := context.WithTimeout(sc.ctx, 10*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		sc.t.Fatalf("log in to the proxy: %v", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.t.Cleanup(func() { hc.Conn.Close() })
	return &clientEnd{t: sc.t, fe: hc.Frontend, conn: hc.Conn, server: sc.server}
}

// send sends msgs and flushes.
func (c *clientEnd) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.fe.Flush(); err != nil {
		c.fatalf("send %s: %v", typesOf(msgs), err)
	}
}

// expect reads messages of the types in types and returns them (copied:
// the frontend reuses its messages).
func (c *clientEnd) expect(types string) []pgproto3.BackendMessage {
	c.t.Helper()
	var got []pgproto3.BackendMessage
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range len(types) {
		m, err := c.fe.Receive()
		if err != nil {
			c.fatalf("client expected %q, got %s and then %v", types, typesOf(got), err)
		}
		b, _ := m.Encode(nil)
		got = append(got, decodeBackend(c.t, b))
		if typ := typeOf(m); typ != types[i] {
			c.fatalf("client expected %q, got %s (last: %+v)", types, typesOf(got), got[len(got)-1])
		}
	}
	return got
}

// decodeBackend decodes one encoded server message into a fresh value.
func decodeBackend(t *testing.T, b []byte) pgproto3.BackendMessage {
	t.Helper()
	fe := pgproto3.NewFrontend(strings.NewReader(string(b)), io.Discard)
	m, err := fe.Receive()
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// step is one exchange of a script: messages of the types in expect
// (check, if set, looks at them), then reply.
type step struct {
	expect string
	check  func([]pgproto3.FrontendMessage) error
	reply  []pgproto3.BackendMessage
}

// steps is a script that plays each step in turn.
func steps(st ...step) script {
	return func(s *serverEnd) error {
		for i, x := range st {
			msgs, err := s.expect(x.expect)
			if err != nil {
				return fmt.Errorf("step %d: %w", i+1, err)
			}
			if x.check != nil {
				if err := x.check(msgs); err != nil {
					return fmt.Errorf("step %d: %w", i+1, err)
				}
			}
			if err := s.reply(x.reply...); err != nil {
				return fmt.Errorf("step %d: %w", i+1, err)
			}
		}
		return nil
	}
}

// then plays a, then b.
func then(a, b script) script {
	return func(s *serverEnd) error {
		if err := a(s); err != nil {
			return err
		}
		return b(s)
	}
}

// Answers a server gives.
var (
	parseComplete = &pgproto3.ParseComplete{}
	bindComplete  = &pgproto3.BindComplete{}
	closeComplete = &pgproto3.CloseComplete{}
	idle          = &pgproto3.ReadyForQuery{TxStatus: 'I'}
	inTx          = &pgproto3.ReadyForQuery{TxStatus: 'T'}
)

func complete(tag string) *pgproto3.CommandComplete {
	return &pgproto3.CommandComplete{CommandTag: []byte(tag)}
}

func row(v string) *pgproto3.DataRow { return &pgproto3.DataRow{Values: [][]byte{[]byte(v)}} }

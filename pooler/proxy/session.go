package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/ra/pg"
)

// session is one client connection.
type session struct {
	p        *Proxy
	conn     net.Conn
	be       *pgproto3.Backend
	user, db string
	key      cancelKey

	mu sync.Mutex
	sc *serverConn // attached server connection, nil between transactions
	// pinned: the session left state on sc; it keeps sc until it ends.
	pinned bool
	// setInBlock names the parameters a SET or RESET changed inside the
	// transaction block under way: they are read back when it ends (the
	// values committed, or restored by a rollback).
	setInBlock []string
	// stmts are the client's prepared statements (name → query), so they
	// can be prepared again on whichever server a later batch reaches.
	stmts map[string]*pgproto3.Parse
	// params are the session parameters the client asked for at start-up
	// (see params.go).
	params map[string]string
	// paramsKey is paramsKey(params) when paramsKeyKnown (cleared
	// wherever params change).
	paramsKey      string
	paramsKeyKnown bool
	lastWrite      time.Time
	// lastWriteLSN is a WAL position at least as late as the client's last
	// committed write (read_your_writes = lsn; MaxUint64 when it could not
	// be read: the client's reads go to the primary until its next write);
	// wrote: the transaction under way went to the primary as a write.
	lastWriteLSN uint64
	wrote        bool
	admin        bool          // connected to the console, not to a server
	held         chan struct{} // the console's HOLD in force (the pause's identity), nil if none
	out          []byte        // relay's buffer of answers for the client
	rd           *msgReader    // the client's messages, after start-up
	tls          bool          // the client connection is encrypted
	// listening: the client ran LISTEN on its server; watching: the watch
	// passing on that server's notifications while the client is idle.
	listening bool
	watching  *watcher
	// notes: the notifications of the channels the client LISTENs to
	// through the pooler (transaction mode, listen.go), delivered between
	// its transactions by delivering.
	notes      *noteQueue
	delivering *deliverer
	// skipToSync: the proxy answered a Flush with an error no server gave
	// (none could be reached): the client's messages up to its Sync are
	// dropped, as a server skips them after an error.
	skipToSync bool
	tooMany    bool // over max_client_conn: refused after its start-up packet
}

func (s *session) attached() *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sc
}

func (p *Proxy) serveClient(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	n := p.conns.Add(1)
	defer p.conns.Add(-1)
	conn = newFastConn(conn)
	s := &session{p: p, conn: conn, be: pgproto3.NewBackend(conn, conn), stmts: map[string]*pgproto3.Parse{}}
	s.be.SetMaxBodyLen(authMaxBody)
	s.tooMany = p.cfg.MaxClientConn > 0 && n > int64(p.cfg.MaxClientConn)
	if err := s.startup(ctx); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			p.cfg.Log.Info("client start-up failed", "client", conn.RemoteAddr().String(), "err", err)
		}
		return
	}
	defer func() {
		p.unregister(s)
		s.stopDeliver()
		s.unsubscribeAll()
		s.detach(false)
	}()
	serve := s.loop
	if s.admin {
		serve = s.adminLoop
	}
	if err := serve(ctx); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		p.cfg.Log.Info("client session ended", "client", conn.RemoteAddr().String(), "user", s.user, "err", err)
	}
}

// authMaxBody bounds a client's messages until it has logged in: the
// SASL messages are small (PostgreSQL allows 64 kB, PG_MAX_AUTH_TOKEN_LENGTH),
// and nobody unauthenticated may make the pooler allocate more.
const authMaxBody = 65535

// startup negotiates (no TLS yet: SSLRequest and GSSEncRequest get N),
// answers CancelRequest, authenticates the user with SCRAM-SHA-256, and
// sends what a server sends after authentication.
func (s *session) startup(ctx context.Context) error {
	s.conn.SetDeadline(time.Now().Add(15 * time.Second))
	defer s.conn.SetDeadline(time.Time{})
	var startup *pgproto3.StartupMessage
	for i := 0; startup == nil; i++ {
		if i == 3 {
			return errors.New("too many negotiation requests")
		}
		msg, err := s.be.ReceiveStartupMessage()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if s.p.cfg.ClientTLS == nil || s.tls {
				if _, err := s.conn.Write([]byte{sslRefused}); err != nil {
					return err
				}
				continue
			}
			if _, err := s.conn.Write([]byte{sslAccepted}); err != nil {
				return err
			}
			tc := tls.Server(s.conn, s.p.cfg.ClientTLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("TLS handshake: %w", err)
			}
			s.conn, s.tls = tc, true
			s.be = pgproto3.NewBackend(tc, tc)
			s.be.SetMaxBodyLen(authMaxBody)
		case *pgproto3.GSSEncRequest:
			if _, err := s.conn.Write([]byte{sslRefused}); err != nil {
				return err
			}
		case *pgproto3.CancelRequest:
			s.p.cancel(ctx, m.ProcessID, m.SecretKey)
			return io.EOF
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	if s.tooMany {
		// As PostgreSQL does at max_connections: after the start-up packet.
		return s.refuse(fatal("53300", fmt.Sprintf("sorry, too many clients already (max_client_conn = %d)", s.p.cfg.MaxClientConn)))
	}
	if s.p.cfg.ClientTLSRequired && !s.tls {
		return s.refuse(fatal("28000", "this pooler accepts only TLS connections (client_tls_sslmode=require): connect with sslmode=require"))
	}
	s.user, s.db = startup.Parameters["user"], startup.Parameters["database"]
	if s.db == "" {
		s.db = s.user
	}
	if s.user == "" {
		return s.refuse(fatal("28000", "no PostgreSQL user name specified in startup packet"))
	}
	params, err := startupParams(startup.Parameters)
	if err != nil {
		return s.refuse(fatal("0A000", err.Error()))
	}
	u, ok := s.p.settings().users[s.user]
	clientKey, err := s.scram(u.Verifier, ok)
	if err != nil {
		return err
	}
	if u.Password == "" {
		s.p.learnKey(s.user, u.Verifier, clientKey)
	}
	if slices.Contains(AdminDatabases, s.db) {
		if !slices.Contains(s.p.cfg.AdminUsers, s.user) {
			return s.refuse(fatal("28000", fmt.Sprintf("user %q is not in admin_users: no access to the console", s.user)))
		}
		s.admin = true
		s.be.Send(&pgproto3.AuthenticationOk{})
		for k, v := range map[string]string{"server_version": "15.0 (rampart pooler console)", "client_encoding": "UTF8",
			"server_encoding": "UTF8", "DateStyle": "ISO", "integer_datetimes": "on", "standard_conforming_strings": "on"} {
			s.be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
		}
		s.be.Send(&pgproto3.BackendKeyData{ProcessID: 0, SecretKey: make([]byte, 4)})
		s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
		return s.be.Flush()
	}
	// What a server said at its start-up: the client's driver wants
	// server_version, client_encoding, … before its first query.
	sc, err := s.p.acquireAny(ctx, s.db, s.user)
	if err != nil {
		return s.refuse(fatal("08006", err.Error()))
	}
	// The client's parameters are tried here, so that a value the server
	// refuses ends the start-up as it would without the pooler; then the
	// values the server reports (DateStyle ISO → "ISO, MDY") become what
	// the session asks of every connection.
	s.params = params
	if err := s.applyParams(sc); err != nil {
		s.p.release(sc, !sc.broken)
		var pe *pgErr
		if errors.As(err, &pe) && pe.code == "55P02" { // cant_change_runtime_param
			return s.refuse(fatal(pe.code, pe.message+": PostgreSQL sets it only when a connection starts, and the pooler's server connections "+
				"are shared: set it with ALTER ROLE … SET, or connect to the server itself"))
		}
		if errors.As(err, &pe) {
			return s.refuse(fatal(pe.code, pe.message))
		}
		return s.refuse(fatal("08006", err.Error()))
	}
	for k := range s.params {
		if v, reported := sc.params[k]; reported {
			s.params[k] = v
		}
	}
	s.paramsKeyKnown = false
	status := maps.Clone(sc.params)
	s.p.release(sc, true)
	s.be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range status {
		s.be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	if s.key, err = newCancelKey(); err != nil {
		return err
	}
	s.p.register(s)
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: s.key.pid, SecretKey: []byte(s.key.secret)})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	return s.be.Flush()
}

func (s *session) refuse(e *pgproto3.ErrorResponse) error {
	s.stopDeliver()
	s.be.Send(e)
	s.be.Flush()
	return errors.New(e.Message)
}

// scram runs the SCRAM-SHA-256 exchange and returns the client's
// ClientKey. An unknown user goes through it against a made-up verifier,
// so a client cannot tell unknown from wrong.
func (s *session) scram(v Verifier, known bool) ([]byte, error) {
	if !known {
		v = mockVerifier(s.p.secret, s.user, s.p.settings().iterations)
	}
	s.be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := s.be.Flush(); err != nil {
		return nil, err
	}
	s.be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := s.be.Receive()
	if err != nil {
		return nil, err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != "SCRAM-SHA-256" {
		return nil, s.refuse(fatal("28000", "SCRAM-SHA-256 authentication expected"))
	}
	ex := &scramServer{v: v}
	first, err := ex.first(string(init.Data))
	if err != nil {
		return nil, s.refuse(fatal("28000", err.Error()))
	}
	s.be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(first)})
	if err := s.be.Flush(); err != nil {
		return nil, err
	}
	s.be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	msg, err = s.be.Receive()
	if err != nil {
		return nil, err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return nil, s.refuse(fatal("28000", "SCRAM-SHA-256 response expected"))
	}
	final, err := ex.final(string(resp.Data))
	if err != nil || !known {
		return nil, s.refuse(fatal("28P01", fmt.Sprintf("password authentication failed for user %q", s.user)))
	}
	s.be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte(final)})
	return ex.clientKey, nil
}

// maxUnsent bounds what a client's messages may hold in the pooler before
// they go to a server (issue 18: a pipeline without Sync grew without
// bound).
const maxUnsent = 1 << 20

// batch is a client's messages up to the next point where the server
// must answer (Sync, Flush, Query), as they came.
type batch struct {
	buf  []byte
	ends []int     // where each message ends in buf
	refs []stmtRef // what each message says of prepared statements
	// v is what the unit's statements say of routing, merged as they come
	// (a FunctionCall, any function, goes to the primary).
	v route.Verdict
}

// stmtRef is what a client's message says of prepared statements, noted
// when the loop decoded it, so that the send need not decode it again.
type stmtRef struct {
	object byte   // Describe and Close: objStatement or objPortal
	name   string // the statement's
	query  string // Parse: the statement's text
	// Parse and Close of a statement: the client's statement of that name
	// before it (nil: none), restored when the server skips the message.
	prev *pgproto3.Parse
	// Bind and Describe of a statement: the client's statement as it is
	// at this point of its stream, prepared where the server lacks it.
	stmt *pgproto3.Parse
}

func (b *batch) add(msg []byte, ref stmtRef) {
	b.buf = append(b.buf, msg...)
	b.ends = append(b.ends, len(b.buf))
	b.refs = append(b.refs, ref)
}

func (b *batch) msgs() []unitMsg {
	out := make([]unitMsg, len(b.ends))
	start := 0
	for i, end := range b.ends {
		out[i], start = unitMsg{b.buf[start:end], b.refs[i]}, end
	}
	return out
}

// sent forgets the messages once they have gone to the server; what the
// unit says of routing stays until it is answered.
func (b *batch) sent() { b.buf, b.ends, b.refs = b.buf[:0], b.ends[:0], b.refs[:0] }

func (b *batch) reset() {
	b.buf, b.ends, b.refs, b.v = b.buf[:0], b.ends[:0], b.refs[:0], route.Verdict{}
}

// unitMsg is one message of a unit sent to a server, with what it says
// of prepared statements.
type unitMsg struct {
	raw []byte
	ref stmtRef
}

// loop serves the client's messages until it leaves. Messages are read
// whole and passed on as they came, in order; each is decoded only to
// check it, to route it and to follow the client's prepared statements.
// They go to the server when it must answer: at Sync, Flush and Query.
func (s *session) loop(ctx context.Context) error {
	// After start-up (and TLS) a client's messages are read whole; the
	// console still decodes them with pgproto3.
	s.rd = newMsgReader(s.conn, s.p.cfg.MaxPacketSize)
	var b batch
	for {
		if len(b.buf) > maxUnsent && s.attached() == nil && !s.skipToSync {
			// A long pipeline before its first Sync: it must not pile up
			// here. It goes to the primary, which can run anything it
			// holds, and on as it comes.
			s.stopDeliver()
			if answered, err := s.begin(ctx, route.Verdict{Target: route.Primary, Reason: "long pipeline"}, b.msgs()); answered {
				b.reset()
				if err != nil {
					return err
				}
				continue
			}
		}
		if len(b.ends) > 0 && (!s.rd.ready() || len(b.buf) > maxUnsent) && !s.skipToSync {
			// The client pauses before the server must answer: on a server
			// it is attached to already, what it sent goes on now, as it
			// would without the pooler (a statement_timeout can fire
			// between its Parse and its Describe).
			if sc := s.attached(); sc != nil {
				if err := s.push(sc, b.msgs(), b.v.Deallocates); err != nil {
					return err
				}
				b.sent()
			}
		}
		typ, msg, err := s.rd.next()
		if err != nil {
			var tooBig *tooBigError
			if errors.As(err, &tooBig) {
				return s.refuse(fatal("08P01", tooBig.Error()))
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				return err
			}
			if s.p.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return s.goodbye()
			}
			return s.refuse(fatal("08P01", "invalid frontend message: "+err.Error()))
		}
		body := msg[5:]
		if s.skipToSync && typ != msgTerminate {
			if typ == msgSync {
				s.skipToSync = false
				s.stopDeliver()
				s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
				if err := s.be.Flush(); err != nil {
					return err
				}
			}
			continue
		}
		switch typ {
		case msgTerminate:
			return io.EOF
		case msgQuery:
			var m pgproto3.Query
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Query message: "+err.Error()))
			}
			// A simple query ends the unnamed statement (PostgreSQL's rule).
			delete(s.stmts, "")
			b.v = route.Merge(b.v, s.p.settings().cache.Classify(m.String))
			b.add(msg, stmtRef{})
		case msgFunctionCall:
			var m pgproto3.FunctionCall
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid FunctionCall message: "+err.Error()))
			}
			b.v = route.Merge(b.v, route.Verdict{Target: route.Primary, Reason: "function call"})
			b.add(msg, stmtRef{})
		case msgParse:
			m := &pgproto3.Parse{}
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Parse message: "+err.Error()))
			}
			ref := stmtRef{name: m.Name, query: m.Query, prev: s.stmts[m.Name]}
			if ref.prev == nil || m.Name == "" {
				s.stmts[m.Name] = m // a duplicate name fails on the server: the client keeps its statement
			}
			v := s.p.settings().cache.Classify(m.Query)
			v.Deallocates = nil // a DEALLOCATE drops its statement when it runs (Bind, Execute), not when prepared
			b.v = route.Merge(b.v, v)
			b.add(msg, ref)
		case msgBind:
			var m pgproto3.Bind
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Bind message: "+err.Error()))
			}
			st := s.stmts[m.PreparedStatement]
			if st != nil {
				b.v = route.Merge(b.v, s.p.settings().cache.Classify(st.Query))
			}
			b.add(msg, stmtRef{name: m.PreparedStatement, stmt: st})
		case msgDescribe:
			var m pgproto3.Describe
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Describe message: "+err.Error()))
			}
			ref := stmtRef{object: m.ObjectType, name: m.Name}
			if m.ObjectType == objStatement {
				ref.stmt = s.stmts[m.Name]
			}
			b.add(msg, ref)
		case msgClose:
			var m pgproto3.Close
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Close message: "+err.Error()))
			}
			ref := stmtRef{object: m.ObjectType, name: m.Name}
			if m.ObjectType == objStatement {
				ref.prev = s.stmts[m.Name]
				delete(s.stmts, m.Name)
			}
			b.add(msg, ref)
		case msgExecute:
			var m pgproto3.Execute
			if err := m.Decode(body); err != nil {
				return s.refuse(fatal("08P01", "invalid Execute message: "+err.Error()))
			}
			b.add(msg, stmtRef{})
		case msgFlush:
			if len(body) != 0 {
				return s.refuse(fatal("08P01", "invalid Flush message"))
			}
			b.add(msg, stmtRef{})
		case msgSync:
			if len(body) != 0 {
				return s.refuse(fatal("08P01", "invalid Sync message"))
			}
			b.add(msg, stmtRef{})
		case msgCopyData, msgCopyDone, msgCopyFail:
			// What a client still sends of a COPY that failed: the server
			// ignores it too.
			continue
		default:
			return s.refuse(fatal("08P01", fmt.Sprintf("unexpected message type %q", typ)))
		}
		switch typ {
		case msgQuery, msgFunctionCall, msgFlush, msgSync:
		default:
			continue // more to come before the server must answer
		}
		err = s.run(ctx, b.v, b.msgs())
		b.reset()
		if err != nil {
			return err
		}
	}
}

// run sends the client's messages up to a point where the server must
// answer (Sync, Flush, Query, FunctionCall) to the attached server,
// attaching one first, relays the answers to all of them, and detaches
// when the transaction is over.
func (s *session) run(ctx context.Context, v route.Verdict, msgs []unitMsg) error {
	s.stopWatch()
	s.stopDeliver()
	fresh := s.attached() == nil // the unit starts outside a transaction block
	// What the pooler answers itself: the causal reads' token, and a
	// LISTEN in transaction mode (each a simple query of its own).
	if raw := msgs[0].raw; fresh && len(msgs) == 1 && raw[0] == msgQuery &&
		(v.Subscribe && !s.p.cfg.Session || route.MaybeCausalToken(raw[5:len(raw)-1])) {
		text := string(raw[5 : len(raw)-1])
		if tok, ok := route.ParseCausalToken(text); ok {
			return s.causalToken(tok)
		}
		if v.Subscribe && !s.p.cfg.Session {
			if sub, ok := route.ParseSubscription(text); ok {
				return s.subscription(ctx, sub)
			}
		}
	}
	if fresh {
		if answered, err := s.begin(ctx, v, msgs); answered {
			return err
		}
	}
	sc := s.attached()
	if v.Pin {
		s.pinned = true
	}
	if v.Listen {
		s.listening = true
	}
	if v.Target == route.Primary {
		s.lastWrite = s.p.cfg.Now()
		s.wrote = true
	}
	if err := s.push(sc, msgs, v.Deallocates); err != nil {
		return err
	}
	status, ready, failed, err := s.relay(sc)
	if err != nil {
		sc.broken = true
		s.detach(false)
		return s.refuse(lostServer(err))
	}
	if !ready {
		// A Flush: the transaction goes on, on this server.
		s.watch(sc)
		return nil
	}
	// A SET or RESET in its own (implicit) transaction took effect: learn
	// the values. Inside a transaction block it may still roll back (to
	// a savepoint, too, or survive a failed statement after one): the
	// values are read back once the block has ended, whatever ended it.
	var learn []string
	switch {
	case len(v.Sets) > 0 && fresh && status == txIdle:
		if !failed {
			learn = v.Sets
		}
	case len(v.Sets) > 0:
		s.setInBlock = append(s.setInBlock, v.Sets...)
	}
	if status == txIdle && len(s.setInBlock) > 0 {
		learn, s.setInBlock = append(learn, s.setInBlock...), nil
	}
	if len(learn) > 0 {
		slices.Sort(learn)
		if s.learnParams(sc, slices.Compact(learn)) != nil {
			if sc.broken {
				s.detach(false)
				return s.refuse(fatal("08006", "server connection lost"))
			}
			s.pinned = true // values it cannot carry: the client keeps this server
		}
	}
	// A statement DEALLOCATE (or DISCARD ALL) dropped is gone from the
	// server and from the client's statements alike; where the query failed
	// the server's state is unknown.
	for _, name := range v.Deallocates {
		switch {
		case name == route.AllStatements && !failed:
			// The unnamed statement is not among them (a simple query
			// ends it anyway).
			maps.DeleteFunc(sc.prepared, func(n, _ string) bool { return n != "" })
			maps.DeleteFunc(s.stmts, func(n string, _ *pgproto3.Parse) bool { return n != "" })
		case name == route.AllStatements:
			for n := range sc.prepared {
				sc.prepared[n] = uncertainStmt
			}
		case !failed:
			delete(sc.prepared, name)
			delete(s.stmts, name)
		default:
			sc.prepared[name] = uncertainStmt
		}
	}
	if status == txIdle && s.wrote {
		s.wrote = false
		if s.p.settings().policy.CausalReads {
			s.notePosition(sc)
		}
	}
	if status == txIdle && !s.pinned && !s.p.cfg.Session {
		s.detach(true)
	}
	if status == txIdle && s.p.closing.Load() {
		return s.goodbye()
	}
	if sc := s.attached(); sc != nil {
		s.watch(sc)
	} else {
		s.deliver()
	}
	return nil
}

// push sends msgs (with what prepareMissing adds; drops names the
// statements a DEALLOCATE in them drops) to sc, a piece at a time,
// passing on what the server has answered meanwhile: a server that cannot
// write its answers stops reading, and a pipeline longer than the
// sockets' buffers would otherwise stall between them.
func (s *session) push(sc *serverConn, msgs []unitMsg, drops []string) error {
	if len(msgs) == 0 {
		return nil
	}
	s.stopWatch()
	out := s.prepareMissing(sc, msgs, drops)
	for len(out) > 0 {
		n := min(len(out), pushPiece)
		if _, err := sc.conn.Write(out[:n]); err != nil {
			sc.broken = true
			s.detach(false)
			return s.refuse(fatal("08006", "server connection lost: "+err.Error()))
		}
		out = out[n:]
		if len(out) == 0 {
			break
		}
		if _, _, _, err := s.pass(sc, false); err != nil {
			sc.broken = true
			s.detach(false)
			return s.refuse(lostServer(err))
		}
	}
	return nil
}

// pushPiece is how much push writes before it looks for answers.
const pushPiece = 64 << 10

// begin attaches a server for v and gives it the session's parameters;
// when that fails the client is answered (answered: nothing more to do
// with msgs, err the session's end if any).
func (s *session) begin(ctx context.Context, v route.Verdict, msgs []unitMsg) (answered bool, err error) {
	if err := s.attach(ctx, v); err != nil {
		var wait *poolWaitError
		if errors.As(err, &wait) {
			return true, s.unanswered(msgs, errorResponse("57014", err.Error(), "raise default_pool_size, or find the transactions that stay open (SHOW CLIENTS)"))
		}
		return true, s.unanswered(msgs, errorResponse("57P03", err.Error(), "a failover may be under way; retry"))
	}
	sc := s.attached()
	if err := s.applyParams(sc); err != nil {
		if sc.broken {
			s.detach(false)
			return true, s.refuse(fatal("08006", "server connection lost: "+err.Error()))
		}
		s.detach(true)
		var pe *pgErr
		errors.As(err, &pe)
		return true, s.unanswered(msgs, &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: pe.code, Message: pe.message})
	}
	return false, nil
}

// unanswered answers a unit no server could take as a server that
// refused its first message would: the error, and ReadyForQuery if the
// unit asked for one (a Flush's client waits for nothing more).
func (s *session) unanswered(msgs []unitMsg, e *pgproto3.ErrorResponse) error {
	s.be.Send(e)
	switch msgs[len(msgs)-1].raw[0] {
	case msgSync, msgQuery, msgFunctionCall:
		s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	default:
		// The server would skip the client's messages until its Sync.
		s.skipToSync = true
	}
	return s.be.Flush()
}

// goodbye ends the session as a server shutting down does.
func (s *session) goodbye() error {
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	return s.refuse(fatal("57P01", "terminating connection due to administrator command"))
}

// attach takes a server connection for the transaction v starts (see
// Proxy.serverFor).
func (s *session) attach(ctx context.Context, v route.Verdict) error {
	sc, err := s.p.serverFor(ctx, serverRequest{verdict: v, client: route.Client{LastWrite: s.lastWrite, LastWriteLSN: s.lastWriteLSN},
		database: s.db, user: s.user})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sc = sc
	s.mu.Unlock()
	return nil
}

// notePosition records, on the connection the client's write committed
// on and before it goes back to the pool, a WAL position at least as late
// as that commit (read_your_writes = lsn).
func (s *session) notePosition(sc *serverConn) {
	s.lastWriteLSN = math.MaxUint64 // unknown: reads go to the primary
	values, status, err := sc.exec("SELECT pg_catalog.pg_current_wal_lsn()")
	if err != nil || status != txIdle || len(values) != 1 {
		s.p.cfg.Log.Warn("read_your_writes: the primary's WAL position after a write is unknown; the client's reads go to the primary until its next write",
			"node", s.p.cfg.Nodes[sc.key.node].Name, "err", err)
		return
	}
	if lsn, err := pg.ParseLSN(values[0]); err == nil {
		s.lastWriteLSN = uint64(lsn)
	}
}

// causalToken answers SHOW rampart.last_write_lsn with the client's
// position and SET rampart.read_after with the client's reads waiting for
// the position given too (route.CausalToken).
func (s *session) causalToken(tok route.CausalToken) error {
	if tok.Show {
		s.be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte(route.LastWriteLSNParam),
			DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}})
		s.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(pg.LSN(s.lastWriteLSN).String())}})
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
	} else if lsn, err := pg.ParseLSN(tok.Set); err != nil {
		s.be.Send(errorResponse("22023", fmt.Sprintf("invalid value for parameter %q: %q", route.ReadAfterParam, tok.Set),
			"give a position as "+route.LastWriteLSNParam+" shows it, such as 0/16B3748"))
	} else {
		s.lastWriteLSN = max(s.lastWriteLSN, uint64(lsn))
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SET")})
	}
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	if err := s.be.Flush(); err != nil {
		return err
	}
	s.deliver()
	return nil
}

// detach gives the attached server connection back (reusable only when
// idle and clean).
func (s *session) detach(idle bool) {
	s.stopWatch()
	s.mu.Lock()
	sc := s.sc
	s.sc = nil
	s.mu.Unlock()
	if sc == nil {
		return
	}
	if s.pinned {
		// The client may have changed parameters the server does not
		// report, and the reset query may have reset them.
		sc.forgetCustom()
	}
	if idle && s.pinned && s.p.cfg.ServerResetQuery != "" && !sc.broken {
		idle = s.reset(sc)
	}
	s.pinned = false
	s.setInBlock = nil
	s.p.giveBack(sc, idle && !sc.broken)
}

// reset runs the server reset query; false when the connection is not
// clean afterwards.
func (s *session) reset(sc *serverConn) bool {
	_, status, err := sc.exec(s.p.cfg.ServerResetQuery)
	sc.prepared = map[string]string{}
	return err == nil && status == txIdle
}

// uncertainStmt marks a statement name whose state on a server
// connection the proxy no longer knows (a Parse or Close the server
// skipped after an error): the next use closes it and prepares it again.
const uncertainStmt = "\x00uncertain"

// prepareMissing returns the messages to write to sc: the client's, with
// a Parse before every Bind or Describe of a statement this server
// connection lacks (the client prepared it on another), a Close first
// where sc has another statement of that name, and, before a Parse of a
// name the client has prepared already, the client's own statement, so
// that the server answers "already exists" as it would have. Each message
// is recorded in sc's tracker. A statement the client prepared that a
// DEALLOCATE in msgs drops (drops) is prepared first too: the client may
// have prepared it on another server, and DEALLOCATE must find it here.
func (s *session) prepareMissing(sc *serverConn, msgs []unitMsg, drops []string) []byte {
	var out []byte
	add := func(raw []byte, e expect) {
		out = append(out, raw...)
		if sc.track.sent(e) {
			s.skipped(sc, e)
		}
	}
	// ensure makes sc hold st under name.
	ensure := func(name string, st *pgproto3.Parse) {
		if q, had := sc.prepared[name]; had && q == st.Query {
			return
		} else if had && name != "" {
			c, _ := (&pgproto3.Close{ObjectType: objStatement, Name: name}).Encode(nil)
			add(c, expect{typ: msgClose, object: objStatement, name: name, injected: true})
		}
		p, _ := st.Encode(nil)
		add(p, expect{typ: msgParse, name: name, query: st.Query, injected: true})
		sc.prepared[name] = st.Query
	}
	for _, name := range drops {
		if st := s.stmts[name]; st != nil && name != route.AllStatements {
			ensure(name, st)
		}
	}
	for _, m := range msgs {
		ref, typ := m.ref, m.raw[0]
		e := expect{typ: typ, object: ref.object, name: ref.name, query: ref.query, prev: ref.prev}
		switch {
		case typ == msgParse && ref.name != "" && ref.prev != nil:
			ensure(ref.name, ref.prev) // the server's "already exists" is the client's answer
		case typ == msgParse:
			if _, had := sc.prepared[ref.name]; had && ref.name != "" {
				c, _ := (&pgproto3.Close{ObjectType: objStatement, Name: ref.name}).Encode(nil)
				add(c, expect{typ: msgClose, object: objStatement, name: ref.name, injected: true})
			}
			sc.prepared[ref.name] = ref.query
		case ref.stmt != nil: // Bind, Describe of a statement
			ensure(ref.name, ref.stmt)
		case typ == msgClose && ref.object == objStatement:
			delete(sc.prepared, ref.name)
		case typ == msgQuery || typ == msgFunctionCall:
			delete(sc.prepared, "")
		}
		add(m.raw, e)
	}
	return out
}

// skipped undoes what a message the server skipped (after an error) was
// taken to do: the client's statement is as before its Parse or Close, and
// what sc holds under the name is unknown.
func (s *session) skipped(sc *serverConn, e expect) {
	switch {
	case e.typ == msgParse, e.typ == msgClose && e.object == objStatement:
		if !e.injected {
			if e.prev != nil {
				s.stmts[e.name] = e.prev
			} else {
				delete(s.stmts, e.name)
			}
		}
		sc.prepared[e.name] = uncertainStmt
	}
}

// failed undoes what a message the server refused was taken to do: a
// failed Parse of the unnamed statement has dropped it (PostgreSQL drops
// the old one first); a failed Parse of a named one leaves the name as it
// was (the client's statement before it, and sc's unknown).
func (s *session) failed(sc *serverConn, e expect) {
	if e.typ != msgParse {
		return
	}
	if e.name == "" {
		delete(sc.prepared, "")
		if !e.injected {
			delete(s.stmts, "")
		}
		return
	}
	s.skipped(sc, e)
}

// relay passes the server's answers on to the client, as they came, until
// every message sent has been answered, and returns the transaction status
// of the last ReadyForQuery (ready: one came) and whether an error came;
// it swallows the answers to the Parse and Close messages prepareMissing
// added, notes parameter changes, and carries COPY FROM STDIN data.
func (s *session) relay(sc *serverConn) (status byte, ready, failed bool, err error) {
	return s.pass(sc, true)
}

// showsData says whether a server message can show the client what the
// database holds (rows, counts, errors, notifications), as opposed to the
// protocol's bookkeeping and the bare tags of BEGIN, COMMIT and ROLLBACK
// (a write's own COMMIT waited for its synchronous standbys already):
// durable_reads holds only answers that show something.
func showsData(typ byte, msg []byte) bool {
	switch typ {
	case msgParseComplete, msgBindComplete, msgCloseComplete, msgParameterDescription, msgNoData, msgRowDescription, msgReadyForQuery, msgParameterStatus, msgBackendKeyData:
		return false
	case msgCommandComplete:
		if len(msg) < 6 {
			return true
		}
		tag := string(msg[5 : len(msg)-1])
		return tag != "BEGIN" && tag != "START TRANSACTION" && tag != "COMMIT" && tag != "ROLLBACK"
	}
	return true
}

// lostServer is what a client hears when its server connection failed
// mid-transaction: the connection was lost (08006), or durable_reads could
// not confirm what the server answered, which is then withheld (40003,
// PostgreSQL's "statement completion unknown").
func lostServer(err error) *pgproto3.ErrorResponse {
	if isDurableError(err) {
		e := fatal("40003", err.Error())
		e.Hint = "the transaction's outcome is unknown: check for it before you retry; a failover may be under way"
		return e
	}
	return fatal("08006", "server connection lost: "+err.Error())
}

// pass is relay's work: with wait, until every message sent is answered;
// without, only what the server has sent already (a COPY's start is left
// for the relay), so that a long pipeline's answers flow to the client
// while the rest of it goes to the server.
func (s *session) pass(sc *serverConn, wait bool) (status byte, ready, failed bool, err error) {
	out := s.out[:0]
	defer func() { s.out = out[:0] }()
	// durable_reads: nothing a statement on the primary (or on a node
	// whose role is unknown) answers reaches the client before a barrier
	// that started after its first answer (its snapshot) has committed
	// (durable.go). covered: one has, for what has come since the last
	// statement's end was passed on.
	durable := s.p.cfg.DurableReads && !s.p.isStandby(sc.key.node)
	covered, ended, shows := false, false, false
	guard := func() error {
		if !durable || covered {
			return nil
		}
		if err := s.p.durableWait(sc.key.node); err != nil {
			return err
		}
		covered = true
		return nil
	}
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		if shows {
			if err := guard(); err != nil {
				return err
			}
		}
		_, err := s.conn.Write(out)
		out, shows = out[:0], false
		if ended {
			covered, ended = false, false
		}
		return err
	}
	for !sc.track.idle() {
		if !wait && !sc.rd.ready() && quiet(sc.conn) {
			break
		}
		typ, _, err := sc.rd.peek()
		if err != nil {
			return 0, false, failed, err
		}
		if (typ == msgDataRow || typ == msgCopyData) && sc.rd.big() {
			// A big row or COPY data: streamed, never held whole.
			o, err := sc.track.answer(typ)
			if err != nil {
				return 0, false, failed, err
			}
			var to io.Writer
			if o.forward {
				if err := flush(); err != nil {
					return 0, false, failed, err
				}
				if err := guard(); err != nil {
					return 0, false, failed, err
				}
				to = s.conn
			}
			if err := sc.rd.stream(to); err != nil {
				return 0, false, failed, err
			}
			continue
		}
		typ, msg, err := sc.rd.next()
		if err != nil {
			return 0, false, failed, err
		}
		if !wait && typ == msgCopyInResponse {
			sc.rd.back(msg)
			break
		}
		o, err := sc.track.answer(typ)
		if err != nil {
			return 0, false, failed, err
		}
		if o.failed != nil {
			s.failed(sc, *o.failed)
		}
		for i := len(o.skipped) - 1; i >= 0; i-- { // last first: each restores what was before it
			s.skipped(sc, o.skipped[i])
		}
		switch typ {
		case msgReadyForQuery:
			if len(msg) != 6 {
				return 0, false, failed, errors.New("malformed ReadyForQuery")
			}
			status, ready = msg[5], true
		case msgCopyBothResponse:
			return 0, false, failed, errors.New("replication connections are not pooled")
		case msgParameterStatus:
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(msg[5:]); err != nil {
				return 0, false, failed, err
			}
			sc.reported(ps.Name, ps.Value)
		case msgErrorResponse:
			failed = true
		}
		if !o.forward {
			continue
		}
		if typ == msgCopyInResponse { // the client sends the data now
			out = append(out, msg...)
			if err := flush(); err != nil {
				return 0, false, failed, err
			}
			if err := s.copyIn(sc); err != nil {
				return 0, false, failed, err
			}
			continue
		}
		if len(msg) >= 64<<10 {
			// A big message goes straight through, not copied again.
			if err := flush(); err != nil {
				return 0, false, failed, err
			}
			if err := guard(); err != nil {
				return 0, false, failed, err
			}
			if _, err := s.conn.Write(msg); err != nil {
				return 0, false, failed, err
			}
			continue
		}
		out = append(out, msg...)
		switch typ {
		case msgCommandComplete, msgEmptyQueryResponse, msgErrorResponse, msgPortalSuspended, msgReadyForQuery: // a statement's end: the next one takes a new snapshot
			ended = true
		}
		shows = shows || durable && showsData(typ, msg)
		// Pass on what has come before waiting for more.
		if !sc.rd.ready() || len(out) >= 64<<10 {
			if err := flush(); err != nil {
				return 0, false, failed, err
			}
		}
	}
	return status, ready, failed, flush()
}

// copyIn forwards the client's COPY data to the server until it ends, or
// until the server says something other than a notice: an error (the COPY
// failed; the client hears of it at once, not after it has sent all its
// data, and what it still sends is ignored as the server ignores it). A
// Flush or Sync during COPY is not passed on: the server ignores them too.
func (s *session) copyIn(sc *serverConn) error {
	for {
		for sc.rd.buffered() > 0 || !quiet(sc.conn) {
			typ, msg, err := sc.rd.next()
			if err != nil {
				return err
			}
			switch typ {
			case msgNoticeResponse, msgNotificationResponse:
			case msgParameterStatus:
				var ps pgproto3.ParameterStatus
				if err := ps.Decode(msg[5:]); err != nil {
					return err
				}
				sc.reported(ps.Name, ps.Value)
			default:
				sc.rd.back(msg)
				return nil // the relay takes it from here
			}
			if _, err := s.conn.Write(msg); err != nil {
				return err
			}
		}
		if typ, _, err := s.rd.peek(); err != nil {
			return err
		} else if typ == msgCopyData && s.rd.big() {
			if err := s.rd.stream(sc.conn); err != nil {
				return err
			}
			continue
		}
		typ, msg, err := s.rd.next()
		if err != nil {
			return err
		}
		switch typ {
		case msgCopyData, msgCopyDone, msgCopyFail:
		case msgFlush, msgSync:
			continue
		default:
			return fmt.Errorf("unexpected message type %q during COPY", typ)
		}
		if _, err := sc.conn.Write(msg); err != nil {
			return err
		}
		if typ != msgCopyData {
			return nil
		}
	}
}

// watch passes on what sc sends while the client is idle and listening:
// notifications (and notices, parameter changes) come whenever they come,
// not with the client's next query. An error there (the server ends the
// connection) is passed on and ends the session.
func (s *session) watch(sc *serverConn) {
	if !s.listening || s.watching != nil {
		return
	}
	w := &watcher{sc: sc, done: make(chan struct{})}
	s.watching = w
	go func() {
		defer close(w.done)
		for {
			typ, msg, err := sc.rd.next()
			if err != nil {
				if !w.stopped.Load() {
					sc.broken = true
					s.conn.Close() // wakes the loop: the server is gone
				}
				return
			}
			switch typ {
			case msgParameterStatus:
				var ps pgproto3.ParameterStatus
				if ps.Decode(msg[5:]) == nil {
					sc.reported(ps.Name, ps.Value)
				}
			case msgNotificationResponse, msgNoticeResponse:
			default:
				// An error (FATAL: terminated) or nothing the server may
				// send unasked: the connection is over.
				sc.broken = true
				s.conn.Write(msg)
				s.conn.Close()
				return
			}
			if _, err := s.conn.Write(msg); err != nil {
				return
			}
		}
	}()
}

// watcher is a running watch.
type watcher struct {
	sc      *serverConn
	stopped atomic.Bool
	done    chan struct{}
}

// stopWatch ends the watch, if one runs, before the session uses its
// server again: a read deadline in the past wakes the watcher's read (a
// message half read stays buffered for the next).
func (s *session) stopWatch() {
	w := s.watching
	if w == nil {
		return
	}
	s.watching = nil
	w.stopped.Store(true)
	w.sc.conn.SetReadDeadline(time.Now())
	<-w.done
	w.sc.conn.SetReadDeadline(time.Time{})
}

package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"

	"github.com/rampart-ha/rampart/pooler/pool"
	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Node is one PostgreSQL server the proxy routes to.
type Node struct {
	Name   string
	Addr   string // host:port
	Weight int
}

// Config is what the proxy needs; pooler builds it from the file.
type Config struct {
	Nodes []Node
	Users map[string]User
	// PoolSize bounds server connections per (node, database, user).
	PoolSize int
	// Session: a client keeps its server connection until it leaves
	// (pool_mode=session); otherwise until its transaction ends.
	Session bool
	// ServerResetQuery runs before a server connection that carried
	// session state goes back to its pool.
	ServerResetQuery string
	MaxPacketSize    int // bytes; 0: DefaultMaxPacketSize
	// ServerIdleTimeout closes server connections idle longer (0: never).
	ServerIdleTimeout time.Duration
	Rules             route.Rules
	Policy            route.Policy
	// HealthUser logs in (with its auth-file password) to check each node
	// every HealthPeriod; HealthDatabase is where.
	HealthUser, HealthDatabase string
	HealthPeriod               time.Duration
	// PrimaryWait is how long a write waits for a primary (a failover)
	// before the client gets an error.
	PrimaryWait time.Duration
	// DurableReads withholds what a transaction on the primary answers
	// until a barrier shows it is on the synchronous standbys (durable.go);
	// DurableReadTimeout bounds the wait (0: 10 s), after which the client
	// gets an error instead.
	DurableReads       bool
	DurableReadTimeout time.Duration
	// MaxClientConn bounds client connections (0: no bound); one more is
	// refused with PostgreSQL's 53300.
	MaxClientConn int
	// QueryWaitTimeout bounds how long a client waits for a free server
	// connection of its pool (0: 2 minutes).
	QueryWaitTimeout time.Duration
	// ClientTLS, when set, answers clients' SSLRequest; ClientTLSRequired
	// refuses clients that do not encrypt (client_tls_sslmode).
	ClientTLS         *tls.Config
	ClientTLSRequired bool
	// ServerTLSMode is libpq's sslmode towards the nodes (server_tls_sslmode;
	// "" = prefer); ServerTLSCAFile is libpq's sslrootcert for verify-ca
	// and verify-full (server_tls_ca_file; "" = the system's CAs).
	ServerTLSMode, ServerTLSCAFile string
	// AdminUsers may use the console (database "rampart" or "pgbouncer").
	AdminUsers []string
	// MaxHold bounds how long a console's HOLD lasts without RESUME
	// (0: a minute): a switchover cut off from the pooler by the network
	// cannot leave its clients waiting.
	MaxHold time.Duration
	// Reload re-reads the configuration (the console's RELOAD); nil when
	// there is no file.
	Reload func() error
	// Watchdog renders the pooler pair's state for SHOW WATCHDOG (columns,
	// rows); nil when the pooler runs alone.
	Watchdog func() ([]string, [][]string)
	// Dial makes server connections (a lab's namespace, a test's seam).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
	Now  func() time.Time
}

// DefaultMaxPacketSize bounds one client message (max_packet_size): big
// enough for bulk INSERTs and large parameters, small enough that a
// hundred clients cannot make the pooler hold gigabytes (PostgreSQL's own
// limit is 1 GB; COPY data comes in smaller messages).
const DefaultMaxPacketSize = 64 << 20

// Proxy is a running router and pool.
type Proxy struct {
	cfg     Config
	catalog *catalog // nil when the configuration supplies the functions
	// What a reload may change, swapped whole: users, routing policy, and
	// the verdict cache (its rules hold the listed write functions).
	live atomic.Pointer[liveSettings]

	turn    atomic.Uint64 // counts backend choices, so that equal standbys take turns
	closing atomic.Bool   // Shutdown: sessions end at their next boundary
	conns   atomic.Int64  // client connections open

	mu       sync.Mutex
	backends []route.Backend // index = cfg.Nodes index
	detached []bool          // by DETACH, until ATTACH
	epoch    []int           // by node: counts its demotions; older connections are not reused
	resumed  chan struct{}   // non-nil while paused; closed by RESUME
	entering int             // transactions past the pause check, not yet counted in a backend's Outstanding
	waiting  int             // transactions held by a pause
	pools    *pool.Set[poolKey, *serverConn]
	barriers map[int]*barriers // by node: durable_reads' barrier transactions
	hub      hub               // the listening connections (LISTEN in transaction mode)
	clients  map[cancelKey]*session
	keys     map[string]passKey // by user: ClientKeys learnt from clients (SCRAM pass-through)
	// secret makes an unknown user's mock SCRAM salt (mockVerifier).
	secret []byte
	// refresh asks Monitor for a health check round now; it closes the
	// channel it receives once a round that began after the ask is applied.
	refresh chan chan struct{}
}

// New returns a proxy for cfg; Serve and Monitor run it.
func New(cfg Config) *Proxy {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 20
	}
	if cfg.PrimaryWait <= 0 {
		cfg.PrimaryWait = 10 * time.Second
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = time.Minute
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.QueryWaitTimeout <= 0 {
		cfg.QueryWaitTimeout = 2 * time.Minute
	}
	if cfg.DurableReadTimeout <= 0 {
		cfg.DurableReadTimeout = 10 * time.Second
	}
	p := &Proxy{cfg: cfg, pools: pool.NewSet[poolKey, *serverConn](cfg.PoolSize), barriers: map[int]*barriers{}, clients: map[cancelKey]*session{}, keys: map[string]passKey{}, secret: make([]byte, 32),
		refresh: make(chan chan struct{})}
	if _, err := rand.Read(p.secret); err != nil {
		panic(fmt.Sprintf("pooler: no randomness for the mock SCRAM secret: %v", err))
	}
	if cfg.Rules.Functions == nil {
		// Learnt from the primary by the health checker.
		p.catalog = &catalog{}
		cfg.Rules.Functions = p.catalog
	}
	p.live.Store(&liveSettings{users: cfg.Users, policy: cfg.Policy, cache: route.NewCache(cfg.Rules, 10000), iterations: commonIterations(cfg.Users)})
	for _, n := range cfg.Nodes {
		p.backends = append(p.backends, route.Backend{Name: n.Name, Weight: n.Weight})
	}
	p.detached = make([]bool, len(cfg.Nodes))
	p.epoch = make([]int, len(cfg.Nodes))
	return p
}

// isStandby says whether the health checks last saw node i as a standby
// (a node whose role is unknown may be a primary).
func (p *Proxy) isStandby(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backends[i].Role == route.RoleStandby
}

// Backends returns what the proxy last observed of its nodes.
func (p *Proxy) Backends() []route.Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]route.Backend(nil), p.backends...)
}

// Serve accepts clients on ln until ctx ends. Running out of file
// descriptors (or memory) does not stop it: it waits, a little longer each
// time, and accepts again once some are free.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !acceptCanWait(err) {
				return fmt.Errorf("pooler: accept: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second || backoff == 5*time.Millisecond {
				p.cfg.Log.Warn("cannot accept clients now; retrying", "err", err, "retry_in", backoff)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		go p.serveClient(ctx, conn)
	}
}

// acceptCanWait says whether an accept failed for want of something that
// comes back (descriptors, memory, a client that gave up meanwhile).
func acceptCanWait(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown ends every client session at its next transaction boundary
// (idle ones at once) with PostgreSQL's "terminating connection due to
// administrator command", waiting up to timeout before it cuts the rest.
// Call it after Serve has returned.
func (p *Proxy) Shutdown(timeout time.Duration) {
	p.closing.Store(true)
	defer p.closeBarriers()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		var sessions []*session
		for _, s := range p.clients {
			sessions = append(sessions, s)
		}
		p.mu.Unlock()
		if len(sessions) == 0 {
			return
		}
		for _, s := range sessions {
			if s.attached() == nil || time.Now().After(deadline) {
				// Wakes the session's read; it says goodbye and ends.
				s.conn.SetReadDeadline(time.Now())
			}
		}
		if time.Now().After(deadline.Add(time.Second)) {
			return
		}
		time.Sleep(20 * time.Millisecond) // sessions end on their own at their boundaries
	}
}

// poolKey names one pool: a node, a database, a user.
type poolKey struct {
	node           int
	database, user string
}

// serverConn is one authenticated connection to a node, driven directly.
type serverConn struct {
	key    poolKey
	pool   *pool.Pool[*serverConn] // the pool it counts in
	conn   net.Conn
	rd     *msgReader // the server's messages
	pid    uint32
	secret []byte
	// params are the parameters the server reports, as they are now;
	// initial as they were at its start (the defaults); custom the
	// unreported ones the proxy set for its clients (see params.go).
	params, initial, custom map[string]string
	// holds is the paramsKey of the parameters it is known to have (when
	// holdsKnown): a session asking for those needs no comparison.
	holds      string
	holdsKnown bool
	prepared   map[string]string // statement name → query text prepared on it
	track      tracker           // messages sent and not yet answered
	broken     bool
	epoch      int // the node's epoch when connected
}

// peekAfter is how long a connection must have been idle before acquire
// peeks at it: one system call a transaction is measurable under a heavy
// load, where connections come back within microseconds, and a server that
// ended a connection less than a millisecond ago is a narrow race.
const peekAfter = time.Millisecond

// acquire returns a server connection of k, waiting for a free slot.
func (p *Proxy) acquire(ctx context.Context, k poolKey) (*serverConn, error) {
	sc, pl, err := p.pools.Get(ctx, k, p.cfg.QueryWaitTimeout, p.cfg.Now(), pool.Funcs[*serverConn]{
		Connect: func(ctx context.Context) (*serverConn, error) { return p.connect(ctx, k) },
		// An idle connection the server ended meanwhile (a restart, a
		// switchover's demote) or that belongs to a former primary is
		// closed here, before a client's query goes to it.
		Usable: func(sc *serverConn, idleFor time.Duration) bool {
			return sc.epoch == p.epochOf(k.node) && sc.rd.buffered() == 0 && (idleFor < peekAfter || quiet(sc.conn))
		},
		Close: func(sc *serverConn) { sc.conn.Close() },
	})
	switch {
	case errors.Is(err, pool.ErrWaitTimeout):
		return nil, &poolWaitError{node: p.cfg.Nodes[k.node].Name, key: k, after: p.cfg.QueryWaitTimeout}
	case err != nil && err == ctx.Err():
		return nil, fmt.Errorf("wait for a server connection to %s: %w", p.cfg.Nodes[k.node].Name, err)
	case err != nil:
		return nil, err
	}
	sc.pool = pl
	return sc, nil
}

// epochOf is node's epoch: how many demotions the health checks saw.
func (p *Proxy) epochOf(node int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch[node]
}

// release returns sc to its pool, or closes it when it is broken, not
// idle, or of a node's former epoch.
func (p *Proxy) release(sc *serverConn, reusable bool) {
	if sc.broken || !reusable || sc.epoch != p.epochOf(sc.key.node) {
		sc.conn.Close()
		sc.pool.Discard()
		return
	}
	sc.pool.Put(sc, p.cfg.Now())
}

// connect logs in to a node as the client's user with pgconn, then takes
// the connection over.
func (p *Proxy) connect(ctx context.Context, k poolKey) (*serverConn, error) {
	node := p.cfg.Nodes[k.node]
	u, ok := p.settings().users[k.user]
	var clientKey []byte
	if ok && u.Password == "" {
		if clientKey = p.keyFor(k.user, u.Verifier); clientKey == nil {
			return nil, fmt.Errorf("auth_file has only %s's SCRAM verifier: the pooler logs in to %s as %s once a client of that user has (pass-through), or with the password in auth_file", k.user, node.Name, k.user)
		}
	}
	if !ok {
		return nil, fmt.Errorf("user %s is not in auth_file", k.user)
	}
	host, port, err := net.SplitHostPort(node.Addr)
	if err != nil {
		return nil, err
	}
	// libpq's rules for sslmode, host names and fallbacks, through pgconn.
	cfg, err := pgconn.ParseConfig(p.serverConninfo(host, port, k.user, k.database))
	if err != nil {
		return nil, err
	}
	cfg.Password = u.Password
	cfg.DialFunc = p.dialServer
	cfg.ConnectTimeout = 5 * time.Second
	p.mu.Lock()
	epoch := p.epoch[k.node]
	p.mu.Unlock()
	if clientKey != nil {
		lctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
		conn, h, err := loginWithKey(lctx, p.dialServer, cfg, u.Verifier, clientKey)
		if err != nil {
			return nil, fmt.Errorf("connect to %s as %s (SCRAM pass-through): %w", node.Name, k.user, err)
		}
		return &serverConn{key: k, conn: conn, rd: newMsgReader(conn, 0), pid: h.pid, secret: h.secret,
			params: maps.Clone(h.params), initial: maps.Clone(h.params), custom: map[string]string{},
			prepared: map[string]string{}, epoch: epoch}, nil
	}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", node.Name, err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		return nil, err
	}
	conn := newFastConn(hc.Conn)
	return &serverConn{key: k, conn: conn, rd: newMsgReader(conn, 0), pid: hc.PID, secret: hc.SecretKey,
		params: maps.Clone(hc.ParameterStatuses), initial: maps.Clone(hc.ParameterStatuses), custom: map[string]string{},
		prepared: map[string]string{}, epoch: epoch}, nil
}

// cancelKey is the BackendKeyData the proxy gives a client.
type cancelKey struct {
	pid    uint32
	secret string
}

// pidFloor is Linux's largest possible PID (PID_MAX_LIMIT, 2^22): the
// process IDs the proxy hands its clients lie above it, so a client that
// takes one for a backend's (pg_terminate_backend(conn.PID())) hits
// nothing. pg_backend_pid() names the server backend that runs the query.
const pidFloor = 1 << 22

func newCancelKey() (cancelKey, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return cancelKey{}, err
	}
	pid := pidFloor + 1 + binary.BigEndian.Uint32(b[:4])%(1<<31-pidFloor-1)
	return cancelKey{pid: pid, secret: string(b[4:])}, nil
}

// cancel forwards a client's CancelRequest to the server it is attached
// to, and nowhere else.
func (p *Proxy) cancel(ctx context.Context, pid uint32, secret []byte) {
	p.mu.Lock()
	s := p.clients[cancelKey{pid, string(secret)}]
	p.mu.Unlock()
	if s == nil {
		return
	}
	// Held until the cancel is sent: the session cannot give its server
	// connection back meanwhile, so the cancel never reaches a query of
	// the next client of that connection.
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.sc
	if sc == nil {
		return
	}
	cctx, done := context.WithTimeout(ctx, 5*time.Second)
	defer done()
	conn, err := p.cfg.Dial(cctx, "tcp", p.cfg.Nodes[sc.key.node].Addr)
	if err != nil {
		return
	}
	defer conn.Close()
	buf, _ := (&pgproto3.CancelRequest{ProcessID: sc.pid, SecretKey: sc.secret}).Encode(nil)
	conn.Write(buf)
}

// errorResponse is what the proxy itself tells a client.
func errorResponse(code, msg, hint string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg, Hint: hint}
}

func fatal(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}
}

// liveSettings are the parts of the configuration a reload replaces.
type liveSettings struct {
	users  map[string]User
	policy route.Policy
	cache  *route.Cache
	// iterations is the SCRAM iteration count most of users' verifiers
	// have: an unknown user's mock verifier has it too.
	iterations int
}

// commonIterations is the iteration count most verifiers of users have
// (PostgreSQL's 4096 when there is none).
func commonIterations(users map[string]User) int {
	count := map[int]int{}
	best, most := 4096, 0
	for _, u := range users {
		n := u.Verifier.Iterations
		if count[n]++; count[n] > most || count[n] == most && n < best {
			best, most = n, count[n]
		}
	}
	return best
}

func (p *Proxy) settings() *liveSettings { return p.live.Load() }

// Update applies a reloaded configuration: users, routing policy and
// listed write functions. Running sessions keep their server connections;
// the next transaction follows the new policy. (Nodes, listen address and
// pool sizes need a restart.)
func (p *Proxy) Update(users map[string]User, policy route.Policy, writeFunctions map[string]bool) {
	rules := p.cfg.Rules
	rules.WriteFunctions = writeFunctions
	p.live.Store(&liveSettings{users: users, policy: policy, cache: route.NewCache(rules, 10000), iterations: commonIterations(users)})
}

// closeStale closes server connections idle for longer than
// ServerIdleTimeout.
func (p *Proxy) closeStale() {
	if p.cfg.ServerIdleTimeout <= 0 {
		return
	}
	cutoff := p.cfg.Now().Add(-p.cfg.ServerIdleTimeout)
	p.pools.Each(func(_ poolKey, pl *pool.Pool[*serverConn]) {
		for _, sc := range pl.TakeIdle(func(_ *serverConn, since time.Time) bool { return since.Before(cutoff) }) {
			sc.conn.Close()
		}
	})
}

// Stats is a snapshot for metrics and health endpoints.
type Stats struct {
	Backends        []route.Backend
	Detached        []bool
	ServerConns     []int // by node: open server connections (busy and idle)
	Clients         int
	CacheHits       uint64
	CacheMisses     uint64
	Paused, Closing bool
}

// Stats returns what the proxy is doing now.
func (p *Proxy) Stats() Stats {
	hits, misses := p.settings().cache.Stats()
	p.mu.Lock()
	st := Stats{Backends: append([]route.Backend(nil), p.backends...), Detached: append([]bool(nil), p.detached...),
		ServerConns: make([]int, len(p.backends)), Clients: len(p.clients), CacheHits: hits, CacheMisses: misses,
		Paused: p.resumed != nil, Closing: p.closing.Load()}
	p.mu.Unlock()
	p.pools.Each(func(k poolKey, pl *pool.Pool[*serverConn]) {
		open, _ := pl.Counts()
		st.ServerConns[k.node] += open
	})
	return st
}

// poolWaitError: no server connection of a pool came free within
// query_wait_timeout.
type poolWaitError struct {
	node  string
	key   poolKey
	after time.Duration
}

func (e *poolWaitError) Error() string {
	return fmt.Sprintf("query_wait_timeout: no server connection to %s for database %s, user %s came free within %s (default_pool_size is too small for the load, or transactions stay open)",
		e.node, e.key.database, e.key.user, e.after)
}

// serverConninfo is the conninfo for a server connection, client
// sessions' and health checks' alike: libpq's sslmode (server_tls_sslmode,
// prefer when unset) and sslrootcert (server_tls_ca_file).
func (p *Proxy) serverConninfo(host, port, user, database string) string {
	ci := pg.Conninfo{"host": host, "port": port, "user": user, "dbname": database, "sslmode": p.cfg.ServerTLSMode}
	if ci["sslmode"] == "" {
		ci["sslmode"] = "prefer"
	}
	if p.cfg.ServerTLSCAFile != "" {
		ci["sslrootcert"] = p.cfg.ServerTLSCAFile
	}
	return ci.String()
}

// Server connections give up on a silent server: keepalive probes after 5 s
// of quiet, and TCP_USER_TIMEOUT so that data a frozen host never
// acknowledges fails its session's transaction within serverSilence (the
// kernel's default retries for about 15 minutes), not the pooler.
const serverSilence = 10 * time.Second

// dialServer dials a node with the socket options above.
func (p *Proxy) dialServer(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.cfg.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tuneServerSocket(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("server connection to %s: %w", addr, err)
		}
	}
	return c, nil
}

func tuneServerSocket(tc *net.TCPConn) error {
	if err := tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: time.Second, Count: 3}); err != nil {
		return err
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(serverSilence.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/admin"
	"github.com/rampart-ha/rampart/pooler/pool"
)

// AdminDatabases are the database names that reach the console instead of
// a server ("pgbouncer" too, for the tools that expect it).
var AdminDatabases = []string{"rampart", "pgbouncer"}

// nodeIndex finds a node by name.
func (p *Proxy) nodeIndex(name string) (int, error) {
	for i, n := range p.cfg.Nodes {
		if n.Name == name {
			return i, nil
		}
	}
	var names []string
	for _, n := range p.cfg.Nodes {
		names = append(names, n.Name)
	}
	return -1, fmt.Errorf("no node %q (nodes: %v)", name, names)
}

// Drain sends no new transaction to the node; running ones finish and
// give their server connections back, which are closed.
func (p *Proxy) Drain(name string) error {
	i, err := p.nodeIndex(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.backends[i].Drained = true
	p.mu.Unlock()
	p.closeIdle(i)
	return nil
}

// Detach drains the node and waits (up to timeout) until nothing runs
// there any more; it stays out until Attach.
func (p *Proxy) Detach(ctx context.Context, name string, timeout time.Duration) error {
	if err := p.Drain(name); err != nil {
		return err
	}
	i, _ := p.nodeIndex(name)
	p.mu.Lock()
	p.detached[i] = true
	p.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		p.closeIdle(i)
		p.mu.Lock()
		busy := p.backends[i].Outstanding
		p.mu.Unlock()
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("detach %s: %d transactions still running after %s; it gets no new ones", name, busy, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // running transactions end on their own
		}
	}
}

// Attach puts a drained or detached node back in rotation.
func (p *Proxy) Attach(name string) error {
	i, err := p.nodeIndex(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.backends[i].Drained = false
	p.detached[i] = false
	p.mu.Unlock()
	return nil
}

// Pause holds new transactions until Resume; running ones go on. It
// returns the channel Resume closes (the pause's identity), and whether
// this call began the pause (false: one was in force already).
func (p *Proxy) Pause() (chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumed != nil {
		return p.resumed, false
	}
	p.resumed = make(chan struct{})
	return p.resumed, true
}

// Resume lets held transactions go on.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumed != nil {
		close(p.resumed)
		p.resumed = nil
	}
}

// resumeIf ends the pause identified by held, if it is still in force,
// and says whether it did.
func (p *Proxy) resumeIf(held chan struct{}) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if held == nil || p.resumed != held {
		return false
	}
	close(p.resumed)
	p.resumed = nil
	return true
}

// Hold is the pause a switchover asks for: new transactions wait, and Hold
// returns once no transaction runs any more. Running ones that have not
// finished within limit make it resume everything and fail, saying where
// they run: nothing was held then. It refuses while a pause is in force.
func (p *Proxy) Hold(ctx context.Context, limit time.Duration) (chan struct{}, error) {
	held, began := p.Pause()
	if !began {
		return nil, errors.New("HOLD: new transactions are held already (PAUSE or another HOLD): RESUME first")
	}
	if err := p.waitIdle(ctx, limit); err != nil {
		p.resumeIf(held)
		return nil, fmt.Errorf("HOLD: %w; everything resumed, nothing is held", err)
	}
	time.AfterFunc(p.cfg.MaxHold, func() {
		if p.resumeIf(held) {
			p.cfg.Log.Warn("HOLD released: no RESUME within its bound", "bound", p.cfg.MaxHold)
		}
	})
	return held, nil
}

// waitIdle waits until no transaction runs (or is about to start on a
// server) or limit passes, and says what still runs then.
func (p *Proxy) waitIdle(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		busy := p.running()
		if busy == "" {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("transactions still running after %s: %s (SHOW CLIENTS lists the clients on a server; sessions in session mode and pinned ones — LISTEN, session advisory locks, temporary tables — count until they end)", limit, busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // running transactions end on their own
		}
	}
}

// running describes the transactions that hold a server connection or are
// about to take one ("" when none).
func (p *Proxy) running() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, b := range p.backends {
		if b.Outstanding > 0 {
			parts = append(parts, fmt.Sprintf("%d on %s", b.Outstanding, b.Name))
		}
	}
	if p.entering > 0 {
		parts = append(parts, fmt.Sprintf("%d connecting", p.entering))
	}
	return strings.Join(parts, ", ")
}

// enter waits while new transactions are held, then counts the caller as
// a transaction about to take a server connection: attach moves it to the
// backend's Outstanding, or leaves.
func (p *Proxy) enter(ctx context.Context) error {
	for {
		p.mu.Lock()
		ch := p.resumed
		if ch == nil {
			p.entering++
			p.mu.Unlock()
			return nil
		}
		p.waiting++
		p.mu.Unlock()
		var err error
		select {
		case <-ch: // look again: another pause may have begun meanwhile
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// closeIdle closes the node's idle server connections.
func (p *Proxy) closeIdle(node int) {
	p.pools.Each(func(k poolKey, pl *pool.Pool[*serverConn]) {
		if k.node != node {
			return
		}
		for _, sc := range pl.TakeIdle(func(*serverConn, time.Time) bool { return true }) {
			sc.conn.Close()
		}
	})
}

// pauseWait bounds how long the console's PAUSE waits for running
// transactions (the pause itself stays until RESUME).
const pauseWait = time.Minute

// adminLoop serves the console to an authenticated admin user. A HOLD the
// session took ends with it: a switchover that dies must not leave every
// client waiting.
func (s *session) adminLoop(ctx context.Context) error {
	defer func() {
		if s.p.resumeIf(s.held) {
			s.p.cfg.Log.Warn("HOLD released: the console session that took it ended without RESUME", "user", s.user)
		}
	}()
	for {
		msg, err := s.be.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return err
			}
			return s.refuse(fatal("08P01", "invalid frontend message: "+err.Error()))
		}
		switch m := msg.(type) {
		case *pgproto3.Terminate:
			return io.EOF
		case *pgproto3.Query:
			cmd, err := admin.Parse(m.String)
			if err != nil {
				s.be.Send(errorResponse("42601", err.Error(), "")) // syntax_error
			} else if err := s.p.execAdmin(ctx, s, cmd); err != nil {
				s.be.Send(errorResponse("55000", err.Error(), "")) // object_not_in_prerequisite_state
			}
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
			if err := s.be.Flush(); err != nil {
				return err
			}
		default:
			s.be.Send(errorResponse("0A000", "the admin console takes simple queries only", "use psql"))
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
			if err := s.be.Flush(); err != nil {
				return err
			}
		}
	}
}

func (p *Proxy) execAdmin(ctx context.Context, s *session, c admin.Command) error {
	switch c.Verb {
	case admin.Show:
		cols, rows := p.show(c.Arg)
		s.sendRows(cols, rows, "SHOW")
		return nil
	case admin.Drain:
		if err := p.Drain(c.Arg); err != nil {
			return err
		}
	case admin.Detach:
		if err := p.Detach(ctx, c.Arg, 30*time.Second); err != nil {
			return err
		}
	case admin.Attach:
		if err := p.Attach(c.Arg); err != nil {
			return err
		}
	case admin.Pause:
		// PgBouncer's PAUSE: it returns once running transactions finished.
		p.Pause()
		if err := p.waitIdle(ctx, pauseWait); err != nil {
			return fmt.Errorf("PAUSE: %w; new transactions stay held until RESUME", err)
		}
	case admin.Hold:
		if s.held != nil {
			return errors.New("HOLD: this session holds already: RESUME first")
		}
		held, err := p.Hold(ctx, c.For)
		if err != nil {
			return err
		}
		s.held = held
	case admin.Resume:
		// Held transactions must go where the nodes are now, not where the
		// last periodic check saw them (a switchover just moved the primary).
		rctx, cancel := context.WithTimeout(ctx, p.cfg.HealthPeriod+3*time.Second)
		err := p.Refresh(rctx)
		cancel()
		if err != nil {
			p.cfg.Log.Warn("RESUME: resuming with the last health check's view", "err", err)
		}
		p.Resume()
		s.held = nil
	case admin.Reload:
		if p.cfg.Reload == nil {
			return errors.New("RELOAD: this pooler has no configuration file")
		}
		if err := p.cfg.Reload(); err != nil {
			return fmt.Errorf("RELOAD: %w (the running configuration is unchanged)", err)
		}
	}
	p.cfg.Log.Info("admin command", "user", s.user, "command", string(c.Verb), "arg", c.Arg)
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(string(c.Verb))})
	return nil
}

// show renders one SHOW subject as columns and text rows.
func (p *Proxy) show(what string) ([]string, [][]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch what {
	case "NODES":
		cols := []string{"node", "addr", "role", "up", "state", "weight", "lag_bytes", "lag_ms", "outstanding"}
		var rows [][]string
		for i, b := range p.backends {
			state := "attached"
			switch {
			case p.detached[i]:
				state = "detached"
			case b.Drained:
				state = "draining"
			}
			rows = append(rows, []string{b.Name, p.cfg.Nodes[i].Addr, b.Role.String(), strconv.FormatBool(b.Up), state,
				strconv.Itoa(b.Weight), strconv.FormatInt(b.LagBytes, 10), strconv.FormatInt(b.LagTime.Milliseconds(), 10), strconv.Itoa(b.Outstanding)})
		}
		return cols, rows
	case "POOLS", "SERVERS":
		cols := []string{"node", "database", "user", "server_conns", "idle"}
		var rows [][]string
		p.pools.Each(func(k poolKey, pl *pool.Pool[*serverConn]) {
			open, idle := pl.Counts()
			rows = append(rows, []string{p.cfg.Nodes[k.node].Name, k.database, k.user, strconv.Itoa(open), strconv.Itoa(idle)})
		})
		slices.SortFunc(rows, func(a, b []string) int { return slices.Compare(a, b) })
		return cols, rows
	case "CLIENTS":
		cols := []string{"user", "database", "addr", "server"}
		var rows [][]string
		for _, c := range p.clients {
			server := ""
			if sc := c.attached(); sc != nil {
				server = p.cfg.Nodes[sc.key.node].Name
			}
			rows = append(rows, []string{c.user, c.db, c.conn.RemoteAddr().String(), server})
		}
		slices.SortFunc(rows, func(a, b []string) int { return slices.Compare(a, b) })
		return cols, rows
	case "WATCHDOG":
		if p.cfg.Watchdog == nil {
			return []string{"member", "role"}, [][]string{{"(none)", "this pooler runs alone: no [watchdog] in its configuration"}}
		}
		return p.cfg.Watchdog()
	case "STATS":
		hits, misses := p.settings().cache.Stats()
		return []string{"statistic", "value"}, [][]string{
			{"route_cache_hits", strconv.FormatUint(hits, 10)},
			{"route_cache_misses", strconv.FormatUint(misses, 10)},
			{"clients", strconv.Itoa(len(p.clients))},
			{"paused", strconv.FormatBool(p.resumed != nil)},
			{"held_transactions", strconv.Itoa(p.waiting)},
		}
	}
	// CONFIG
	mode := "transaction"
	if p.cfg.Session {
		mode = "session"
	}
	return []string{"key", "value"}, [][]string{
		{"pool_mode", mode},
		{"default_pool_size", strconv.Itoa(p.cfg.PoolSize)},
		{"max_packet_size", strconv.Itoa(p.cfg.MaxPacketSize)},
		{"max_lag_bytes", strconv.FormatInt(p.settings().policy.MaxLagBytes, 10)},
		{"max_lag_time", p.settings().policy.MaxLagTime.String()},
		{"read_your_writes", p.settings().policy.ReadYourWrites.String()},
		{"primary_reads", strconv.FormatBool(p.settings().policy.PrimaryReads)},
		{"durable_reads", strconv.FormatBool(p.cfg.DurableReads)},
		{"durable_read_timeout", p.cfg.DurableReadTimeout.String()},
		{"health_check_period", p.cfg.HealthPeriod.String()},
	}
}

// sendRows sends a text result set.
func (s *session) sendRows(cols []string, rows [][]string, tag string) {
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, c := range cols {
		fields[i] = pgproto3.FieldDescription{Name: []byte(c), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
	}
	s.be.Send(&pgproto3.RowDescription{Fields: fields})
	for _, r := range rows {
		vals := make([][]byte, len(r))
		for i, v := range r {
			vals[i] = []byte(v)
		}
		s.be.Send(&pgproto3.DataRow{Values: vals})
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(fmt.Sprintf("%s %d", tag, len(rows)))})
}

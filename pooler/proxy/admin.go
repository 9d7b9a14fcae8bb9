package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/admin"
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

// Pause holds new transactions until Resume (running ones finish).
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumed == nil {
		p.resumed = make(chan struct{})
	}
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

// waitResumed blocks while the proxy is paused.
func (p *Proxy) waitResumed(ctx context.Context) error {
	p.mu.Lock()
	ch := p.resumed
	p.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeIdle closes the node's idle server connections.
func (p *Proxy) closeIdle(node int) {
	p.mu.Lock()
	var pools []*pool
	for k, pl := range p.pools {
		if k.node == node {
			pools = append(pools, pl)
		}
	}
	p.mu.Unlock()
	for _, pl := range pools {
		pl.mu.Lock()
		idle := pl.idle
		pl.idle = nil
		pl.mu.Unlock()
		for _, sc := range idle {
			sc.conn.Close()
		}
	}
}

// adminLoop serves the console to an authenticated admin user.
func (s *session) adminLoop(ctx context.Context) error {
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
			if err == nil {
				err = s.p.execAdmin(ctx, s, cmd)
			}
			if err != nil {
				s.be.Send(errorResponse("42601", err.Error(), ""))
			}
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if err := s.be.Flush(); err != nil {
				return err
			}
		default:
			s.be.Send(errorResponse("0A000", "the admin console takes simple queries only", "use psql"))
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
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
		p.Pause()
	case admin.Resume:
		p.Resume()
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
		for k, pl := range p.pools {
			pl.mu.Lock()
			idle := len(pl.idle)
			pl.mu.Unlock()
			rows = append(rows, []string{p.cfg.Nodes[k.node].Name, k.database, k.user, strconv.Itoa(len(pl.tokens) + idle), strconv.Itoa(idle)})
		}
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

package proxy

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Where a session's transactions run. A session speaks the protocol; for
// each transaction it asks serverFor for a server connection and gives it
// back with giveBack. The choice of node (route.Choose over the health
// checks' view), the wait for a primary, a pause's hold, the count of
// what each node has outstanding (drain and pause wait for it) and the
// pools are the proxy's, under its mutex, and no session touches them.

// serverRequest is what serverFor needs to know of a transaction.
type serverRequest struct {
	verdict route.Verdict
	// client is what the session knows of its client's writes (Turn is
	// serverFor's).
	client         route.Client
	database, user string
}

// serverFor chooses the node for a session's transaction (route.Choose
// over the health checks' view, or a standby that has replayed the
// client's last write) and takes a connection from its pool, counted in
// the node's Outstanding until giveBack; it waits out a pause, and up to
// PrimaryWait for a primary or a node that does not answer.
func (p *Proxy) serverFor(ctx context.Context, req serverRequest) (*serverConn, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	entering := true
	defer func() {
		if entering {
			p.mu.Lock()
			p.entering--
			p.mu.Unlock()
		}
	}()
	var deadline time.Time // set once no server is found to start on
	v, client := req.verdict, req.client
	for {
		now := p.cfg.Now()
		backends, policy := p.Backends(), p.settings().policy
		client.Turn = p.turn.Add(1)
		i, err := route.Choose(backends, v, client, policy, now)
		if err == nil {
			var sc *serverConn
			if policy.CausalReads && backends[i].Role == route.RolePrimary && v.Target != route.Primary && !v.Pin && policy.MustSee(client, now) {
				// No standby was seen to have replayed the client's last
				// write; the health checks' positions may be a period old.
				if j, caught := p.causalStandby(ctx, req, client, policy); caught != nil {
					i, sc = j, caught
				}
			}
			if sc == nil {
				sc, err = p.acquire(ctx, poolKey{node: i, database: req.database, user: req.user})
			}
			if err == nil {
				p.mu.Lock()
				p.backends[i].Outstanding++
				p.entering--
				p.mu.Unlock()
				entering = false
				return sc, nil
			}
		}
		// No primary known, or a server that did not answer (nothing was
		// sent): wait until the health checks see the new primary, the
		// server back, or it out of rotation.
		if !errors.Is(err, route.ErrNoPrimary) && !cannotConnectNow(err) {
			return nil, err
		}
		if deadline.IsZero() {
			deadline = now.Add(p.cfg.PrimaryWait)
		}
		if !now.Before(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond): // poll the health checker's view
		}
	}
}

// giveBack ends what serverFor started: the node's count goes down and
// the connection goes back to its pool (reusable) or is closed.
func (p *Proxy) giveBack(sc *serverConn, reusable bool) {
	p.mu.Lock()
	p.backends[sc.key.node].Outstanding--
	p.mu.Unlock()
	p.release(sc, reusable)
}

// register makes s reachable by its cancel key; unregister forgets it.
func (p *Proxy) register(s *session) {
	p.mu.Lock()
	p.clients[s.key] = s
	p.mu.Unlock()
}

func (p *Proxy) unregister(s *session) {
	p.mu.Lock()
	delete(p.clients, s.key)
	p.mu.Unlock()
}

// causalStandby looks for a standby that has replayed the client's last
// write now, asking each candidate (route.CausalCandidates) on a server
// connection of its pool, until one has or CausalWait is over; the
// connection of the one found is returned, attached to nothing yet, and
// the position it reported goes into the routing view.
func (p *Proxy) causalStandby(ctx context.Context, req serverRequest, client route.Client, policy route.Policy) (int, *serverConn) {
	deadline := p.cfg.Now().Add(policy.CausalWait)
	for {
		for _, j := range route.CausalCandidates(p.Backends(), client, policy) {
			sc, err := p.acquire(ctx, poolKey{node: j, database: req.database, user: req.user})
			if err != nil {
				continue
			}
			values, status, err := sc.exec("SELECT pg_catalog.pg_last_wal_replay_lsn()")
			var replayed pg.LSN
			if err == nil && len(values) == 1 {
				replayed, err = pg.ParseLSN(values[0])
			}
			if err == nil && status == txIdle && uint64(replayed) >= client.LastWriteLSN {
				p.mu.Lock()
				p.backends[j].ReplayLSN = max(p.backends[j].ReplayLSN, uint64(replayed))
				p.mu.Unlock()
				return j, sc
			}
			p.release(sc, status == txIdle)
		}
		if !p.cfg.Now().Before(deadline) {
			return -1, nil
		}
		select {
		case <-ctx.Done():
			return -1, nil
		case <-time.After(5 * time.Millisecond): // the standbys replay meanwhile
		}
	}
}

// cannotConnectNow says whether a failed connection attempt is worth
// another: the server did not answer (down, restarting, its host gone) or
// said it cannot take connections now (57P03: starting up, shutting down).
// Refused logins and other server errors are the client's answer.
func cannotConnectNow(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P03"
	}
	var own *pgErr // the SCRAM pass-through login's
	if errors.As(err, &own) {
		return own.code == "57P03"
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// anyUp returns a node that is up, the primary first; 0 when none is known
// up yet (the connection attempt then reports the node's error).
func (p *Proxy) anyUp() int {
	i, err := route.Choose(p.Backends(), route.Verdict{Target: route.Primary}, route.Client{}, p.settings().policy, p.cfg.Now())
	if err == nil {
		return i
	}
	if i, err = route.Choose(p.Backends(), route.Verdict{}, route.Client{}, p.settings().policy, p.cfg.Now()); err == nil {
		return i
	}
	return 0
}

// acquireAny takes a connection for a client's start-up from the node
// anyUp names, or else from any other node the health checks see up: the
// servers run one version with the same settings, and a primary that has
// just died (before the health checks notice) must not turn clients away.
func (p *Proxy) acquireAny(ctx context.Context, db, user string) (*serverConn, error) {
	first := p.anyUp()
	order := []int{first}
	for i, b := range p.Backends() {
		if i != first && b.Up {
			order = append(order, i)
		}
	}
	var last error
	for _, i := range order {
		sc, err := p.acquire(ctx, poolKey{node: i, database: db, user: user})
		if err == nil || !cannotConnectNow(err) {
			return sc, err
		}
		last = err
	}
	return nil, last
}

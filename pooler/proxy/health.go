package proxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/ra/pg"
)

// observation is one health check of one node.
type observation struct {
	up         bool
	role       route.Role
	lsn        pg.LSN // current (primary) or replayed (standby) WAL position
	replayedAt time.Time
	err        error
}

// Monitor checks every node each HealthPeriod until ctx ends: whether it
// answers, its role (pg_is_in_recovery()), its WAL position and, for
// standbys, the lag behind the primary. Routing uses the latest view.
func (p *Proxy) Monitor(ctx context.Context) {
	period := p.cfg.HealthPeriod
	if period <= 0 {
		period = time.Second
	}
	conns := make([]*pgx.Conn, len(p.cfg.Nodes))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	tick := time.NewTicker(period)
	defer tick.Stop()
	var asked []chan struct{} // Refresh calls this round answers
	for {
		obs := make([]observation, len(p.cfg.Nodes))
		var wg sync.WaitGroup
		for i := range p.cfg.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, done := context.WithTimeout(ctx, period+time.Second)
				defer done()
				obs[i] = p.check(cctx, &conns[i], i)
			}()
		}
		wg.Wait()
		p.apply(obs)
		p.closeStale()
		for _, done := range asked {
			close(done)
		}
		asked = nil
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case done := <-p.refresh:
			asked = append(asked, done)
		}
	}
}

// Refresh has Monitor check every node now and waits until routing uses
// what it saw (a round that began after the call), or until ctx ends.
func (p *Proxy) Refresh(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case p.refresh <- done:
	case <-ctx.Done():
		return fmt.Errorf("refresh the nodes' health: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("refresh the nodes' health: %w", ctx.Err())
	}
}

func (p *Proxy) check(ctx context.Context, conn **pgx.Conn, i int) observation {
	fresh := *conn == nil
	if fresh {
		c, err := p.healthConn(ctx, i)
		if err != nil {
			return observation{err: err}
		}
		*conn = c
	}
	var inRecovery bool
	var lsn string
	var replayed *time.Time
	err := (*conn).QueryRow(ctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_lsn() END::text,
		pg_last_xact_replay_timestamp()`).Scan(&inRecovery, &lsn, &replayed)
	if err != nil {
		(*conn).Close(context.Background())
		*conn = nil
		return observation{err: err}
	}
	o := observation{up: true, role: route.RolePrimary}
	if inRecovery {
		o.role = route.RoleStandby
	}
	if !inRecovery && p.catalog != nil && (fresh || !p.catalog.loaded()) {
		if err := p.catalog.load(ctx, *conn); err != nil {
			p.cfg.Log.Warn("load functions from the primary's catalogue", "node", p.cfg.Nodes[i].Name, "err", err)
		} else {
			p.settings().cache.Reset() // verdicts of "unknown function" are stale
		}
	}
	o.lsn, _ = pg.ParseLSN(lsn)
	if replayed != nil {
		o.replayedAt = *replayed
	}
	return o
}

func (p *Proxy) healthConn(ctx context.Context, i int) (*pgx.Conn, error) {
	u := p.settings().users[p.cfg.HealthUser]
	host, port, err := net.SplitHostPort(p.cfg.Nodes[i].Addr)
	if err != nil {
		return nil, err
	}
	// The servers' TLS settings, as client sessions' connections use them:
	// a hostssl-only pg_hba.conf must not make every node look down, nor
	// may a man in the middle answer pg_is_in_recovery() where
	// server_tls_sslmode asks for verification.
	cfg, err := pgx.ParseConfig(p.serverConninfo(host, port, p.cfg.HealthUser, p.cfg.HealthDatabase))
	if err != nil {
		return nil, err
	}
	cfg.Password = u.Password
	cfg.DialFunc, cfg.ConnectTimeout = p.cfg.Dial, 2*time.Second
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("health check of %s: %w", p.cfg.Nodes[i].Name, err)
	}
	return c, nil
}

// apply turns one round of observations into the routing view
// (route.View's rules) and acts on what changed.
func (p *Proxy) apply(obs []observation) {
	round := make([]route.Health, len(obs))
	for i, o := range obs {
		round[i] = route.Health{Up: o.up, Role: o.role, LSN: uint64(o.lsn), ReplayedAt: o.replayedAt}
	}
	p.mu.Lock()
	next, changes := route.View(p.backends, round, p.cfg.Now())
	copy(p.backends, next)
	for _, c := range changes {
		if c.Demoted {
			p.epoch[c.Node]++
		}
	}
	p.mu.Unlock()
	for _, c := range changes {
		p.cfg.Log.Info("node role", "node", p.cfg.Nodes[c.Node].Name, "was", c.Was.String(), "now", c.Now.String(), "err", obs[c.Node].err)
		if c.Demoted {
			// Server connections to a former primary: none is reused (idle
			// ones close now; busy ones, of an older epoch, when they come
			// back).
			p.closeIdle(c.Node)
		}
	}
}

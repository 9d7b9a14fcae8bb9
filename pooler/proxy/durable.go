package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Durable reads (durable_reads = on).
//
// A commit whose wait for the synchronous standbys was cancelled (a
// client's timeout, pg_cancel_backend, a terminated backend: "canceling
// wait for synchronous replication ... committed locally"), or that a
// restarted primary recovered from its own WAL, is visible to every
// session on the primary though no standby may have it. If the primary
// then dies and a synchronous standby that never received it is promoted,
// a reader has seen data that no longer exists (the chaos campaign's
// "vanished reads"), though no acknowledged commit was lost.
//
// With durable reads, what a statement on the primary answers is passed
// to the client only after a barrier: a transaction of the pooler's own
// on the same node that writes a WAL record (a transactional logical
// message, pg_logical_emit_message: no table, nothing for a decoder
// that does not ask for the "rampart" prefix) and commits under
// synchronous_commit=on. Its commit record lies after every commit the
// statement's snapshot could see (those were in the WAL before the
// snapshot; the barrier starts after the statement's first answer, which
// comes after the snapshot), and it returns only once the synchronous
// standbys have flushed up to it, so everything the client is shown is on
// them. (A transaction that only takes a transaction id writes no WAL and
// does not wait: PostgreSQL waits only for transactions that wrote some.)
// Barriers are shared: every answer waiting when one starts is released
// by it (a group commit), so a busy pooler pays about one per round trip
// and node, not one per statement.

// barriers runs one node's barriers.
type barriers struct {
	p    *Proxy
	node int

	mu      sync.Mutex
	pending *round // the next barrier, not started yet
	running bool
	conn    *pgx.Conn // the node's barrier connection, used by the runner only
}

// round is one barrier and the answers it releases.
type round struct {
	done chan struct{}
	err  error
}

// durableWait waits until a barrier that started after the call has
// committed on node, within the configured timeout.
func (p *Proxy) durableWait(node int) error {
	p.mu.Lock()
	b := p.barriers[node]
	if b == nil {
		b = &barriers{p: p, node: node}
		p.barriers[node] = b
	}
	p.mu.Unlock()
	b.mu.Lock()
	r := b.pending
	if r == nil {
		r = &round{done: make(chan struct{})}
		b.pending = r
	}
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	t := time.NewTimer(p.cfg.DurableReadTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.err
	case <-t.C:
		return &durableError{node: p.cfg.Nodes[node].Name, err: fmt.Errorf("no barrier committed within durable_read_timeout (%s)", p.cfg.DurableReadTimeout)}
	}
}

// run commits barriers while answers wait for one.
func (b *barriers) run() {
	for {
		b.mu.Lock()
		r := b.pending
		b.pending = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.err = b.commit()
		close(r.done)
	}
}

// commit runs one barrier transaction. A barrier that fails or times out
// leaves its connection closed: a commit cancelled while it waits for the
// synchronous standbys is committed locally only, and proves nothing.
func (b *barriers) commit() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.p.cfg.DurableReadTimeout)
	defer cancel()
	if b.conn == nil || b.conn.IsClosed() {
		c, err := b.p.healthConn(ctx, b.node)
		if err != nil {
			return &durableError{node: b.p.cfg.Nodes[b.node].Name, err: err}
		}
		// As durable as a commit can be made here, whatever the role's
		// own setting: on waits for the synchronous standbys' flush.
		if _, err := c.Exec(ctx, "SET synchronous_commit = on"); err != nil {
			c.Close(context.Background())
			return &durableError{node: b.p.cfg.Nodes[b.node].Name, err: err}
		}
		b.conn = c
	}
	if _, err := b.conn.Exec(ctx, barrierSQL); err != nil {
		b.conn.Close(context.Background())
		b.conn = nil
		return &durableError{node: b.p.cfg.Nodes[b.node].Name, err: err}
	}
	return nil
}

// barrierSQL is one barrier transaction (autocommit).
const barrierSQL = "SELECT pg_logical_emit_message(true, 'rampart', 'durable_reads barrier')"

// durableError is a barrier that did not commit: what the transaction
// read cannot be shown as durable, so the client is not shown it.
type durableError struct {
	node string
	err  error
}

func (e *durableError) Error() string {
	return fmt.Sprintf("durable_reads: could not confirm that %s's synchronous standbys hold what this transaction read: %v", e.node, e.err)
}

func (e *durableError) Unwrap() error { return e.err }

// isDurableError says whether err is a barrier's failure.
func isDurableError(err error) bool {
	var d *durableError
	return errors.As(err, &d)
}

// closeBarriers closes the barrier connections (Shutdown).
func (p *Proxy) closeBarriers() {
	p.mu.Lock()
	bs := slices.Collect(maps.Values(p.barriers))
	p.mu.Unlock()
	for _, b := range bs {
		b.mu.Lock()
		if !b.running && b.conn != nil {
			b.conn.Close(context.Background())
			b.conn = nil
		}
		b.mu.Unlock()
	}
}

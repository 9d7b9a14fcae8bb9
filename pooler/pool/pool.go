package pool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrWaitTimeout: no slot of a full pool came free within the wait.
var ErrWaitTimeout = errors.New("no connection of the pool came free")

// Pool holds connections of one kind: at most its size exist (slots),
// busy or idle.
type Pool[C any] struct {
	slots chan struct{} // one per connection that exists or is being made
	mu    sync.Mutex
	idle  []idleConn[C]
}

type idleConn[C any] struct {
	conn  C
	since time.Time
}

// New returns an empty pool of size slots.
func New[C any](size int) *Pool[C] {
	return &Pool[C]{slots: make(chan struct{}, size)}
}

// Funcs are what a pool does with its connections, the caller's.
type Funcs[C any] struct {
	// Connect makes a new connection.
	Connect func(ctx context.Context) (C, error)
	// Usable says whether an idle connection may be handed out again,
	// given how long it has been idle; Close ends one that may not.
	Usable func(c C, idleFor time.Duration) bool
	Close  func(c C)
}

// Get returns a connection: the most recently idle one Usable accepts
// (closing those it refuses on the way), else a new one. It first waits
// up to wait for a free slot (ErrWaitTimeout) or until ctx ends. The slot
// is the caller's until Put or Discard.
func (p *Pool[C]) Get(ctx context.Context, wait time.Duration, now time.Time, f Funcs[C]) (C, error) {
	var zero C
	select {
	case p.slots <- struct{}{}: // a free slot: the usual case, without a timer
	default:
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-timer.C:
			return zero, ErrWaitTimeout
		}
	}
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		ic := p.idle[n-1]
		p.idle[n-1] = idleConn[C]{}
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if f.Usable(ic.conn, now.Sub(ic.since)) {
			return ic.conn, nil
		}
		f.Close(ic.conn)
	}
	c, err := f.Connect(ctx)
	if err != nil {
		<-p.slots
		return zero, err
	}
	return c, nil
}

// Put gives a connection back, idle since now, and frees its slot.
func (p *Pool[C]) Put(c C, now time.Time) {
	p.mu.Lock()
	p.idle = append(p.idle, idleConn[C]{conn: c, since: now})
	p.mu.Unlock()
	<-p.slots
}

// Discard frees the slot of a connection the caller has closed.
func (p *Pool[C]) Discard() { <-p.slots }

// TakeIdle removes the idle connections drop selects (given when each
// became idle) and returns them for the caller to close.
func (p *Pool[C]) TakeIdle(drop func(c C, since time.Time) bool) []C {
	p.mu.Lock()
	defer p.mu.Unlock()
	var taken []C
	keep := p.idle[:0]
	for _, ic := range p.idle {
		if drop(ic.conn, ic.since) {
			taken = append(taken, ic.conn)
		} else {
			keep = append(keep, ic)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	return taken
}

// Counts returns how many connections exist (busy and idle) and how many
// of them are idle.
func (p *Pool[C]) Counts() (open, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.slots) + len(p.idle), len(p.idle)
}

// unused: no connection exists or is being made.
func (p *Pool[C]) unused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) == 0 && len(p.slots) == 0
}

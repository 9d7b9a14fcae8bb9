package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/route"
)

// LISTEN and NOTIFY in transaction mode: a client's LISTEN does not pin it
// to a server connection. For each database and user the pooler holds one
// listening connection of its own on the primary, LISTENs there on every
// channel one of its clients listens to, and passes each notification on
// to those clients (as PostgreSQL does: to a client between its
// transactions). After a failover it listens again on the new primary;
// what was notified in between is missed, as by any client that
// reconnects.

// listenKey names a listening connection: one per database and user.
type listenKey struct{ database, user string }

// hub holds the listening connections.
type hub struct {
	mu sync.Mutex
	ls map[listenKey]*listener
}

// existing returns key's listener, nil when there is none.
func (h *hub) existing(key listenKey) *listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ls[key]
}

// channelState is one channel a listening connection listens on.
type channelState struct {
	subs  map[*session]struct{}
	ready chan struct{} // closed once the server confirmed the LISTEN
	err   error         // why it failed, when ready is closed and it did
}

// listener is one listening connection and what it listens for.
type listener struct {
	p    *Proxy
	key  listenKey
	mu   sync.Mutex
	chs  map[string]*channelState
	cmds chan listenCmd // LISTEN or UNLISTEN to send, in order
	// lost: a command did not fit in cmds; the connection is made anew,
	// which listens on every channel again.
	lost bool
}

type listenCmd struct {
	channel string
	listen  bool
}

// listenerFor returns key's listener, started if need be (it runs until
// ctx ends).
func (p *Proxy) listenerFor(ctx context.Context, key listenKey) *listener {
	p.hub.mu.Lock()
	defer p.hub.mu.Unlock()
	if p.hub.ls == nil {
		p.hub.ls = map[listenKey]*listener{}
	}
	l := p.hub.ls[key]
	if l == nil {
		l = &listener{p: p, key: key, chs: map[string]*channelState{}, cmds: make(chan listenCmd, 1024)}
		p.hub.ls[key] = l
		go l.run(ctx)
	}
	return l
}

// subscribe adds s to channel and returns once the server listens on it
// (or after PrimaryWait, with the reason it does not).
func (l *listener) subscribe(ctx context.Context, s *session, channel string) error {
	l.mu.Lock()
	cs := l.chs[channel]
	if cs == nil {
		cs = &channelState{subs: map[*session]struct{}{}, ready: make(chan struct{})}
		l.chs[channel] = cs
		l.queue(listenCmd{channel: channel, listen: true})
	}
	cs.subs[s] = struct{}{}
	l.mu.Unlock()
	wait := time.NewTimer(l.p.cfg.PrimaryWait)
	defer wait.Stop()
	select {
	case <-cs.ready:
		if cs.err != nil {
			l.unsubscribe(s, channel)
			return cs.err
		}
		return nil
	case <-wait.C:
		l.unsubscribe(s, channel)
		return fmt.Errorf("LISTEN %s: no primary listened within %s", channel, l.p.cfg.PrimaryWait)
	case <-ctx.Done():
		l.unsubscribe(s, channel)
		return ctx.Err()
	}
}

// unsubscribe removes s from channel ("": from every channel); a channel
// nobody listens to any more is UNLISTENed.
func (l *listener) unsubscribe(s *session, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, cs := range l.chs {
		if channel != "" && name != channel {
			continue
		}
		delete(cs.subs, s)
		if len(cs.subs) == 0 {
			delete(l.chs, name)
			l.queue(listenCmd{channel: name})
		}
	}
}

// queue hands c to the connection's loop without waiting (l.mu held).
func (l *listener) queue(c listenCmd) {
	select {
	case l.cmds <- c:
	default:
		l.lost = true
	}
}

// dispatch passes a notification on to the channel's sessions.
func (l *listener) dispatch(msg []byte, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.chs[channel]
	if cs == nil {
		return
	}
	for s := range cs.subs {
		s.notes.add(msg)
	}
}

// run keeps a listening connection on the primary until ctx ends,
// listening again on every channel after each reconnection.
func (l *listener) run(ctx context.Context) {
	for ctx.Err() == nil {
		sc, node, err := l.connect(ctx)
		if err != nil {
			l.failPending(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // a failover under way
			}
			continue
		}
		err = l.serve(ctx, sc, node)
		sc.conn.Close()
		if ctx.Err() == nil {
			l.p.cfg.Log.Info("listening connection lost; listening again on the primary", "database", l.key.database, "user", l.key.user,
				"node", l.p.cfg.Nodes[node].Name, "err", err)
		}
	}
}

// connect logs in to the primary the health checks see now.
func (l *listener) connect(ctx context.Context) (*serverConn, int, error) {
	i, err := route.Choose(l.p.Backends(), route.Verdict{Target: route.Primary}, route.Client{}, l.p.settings().policy, l.p.cfg.Now())
	if err != nil {
		return nil, -1, err
	}
	sc, err := l.p.connect(ctx, poolKey{node: i, database: l.key.database, user: l.key.user})
	return sc, i, err
}

// failPending answers the channels still waiting for their first LISTEN
// with err, so that their clients are not left waiting for PrimaryWait
// when no primary can be reached: a later LISTEN tries again.
func (l *listener) failPending(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, cs := range l.chs {
		select {
		case <-cs.ready:
		default:
			cs.err = fmt.Errorf("LISTEN %s: %w", name, err)
			close(cs.ready)
			delete(l.chs, name)
		}
	}
}

// serverMsg is a message read from the listening connection.
type serverMsg struct {
	typ byte
	msg []byte
	err error
}

// serve listens on sc (node's) for every channel, then sends the
// LISTEN and UNLISTEN commands as they come and passes notifications on,
// until sc fails or node stops being the primary.
func (l *listener) serve(ctx context.Context, sc *serverConn, node int) error {
	epoch := sc.epoch
	msgs, quit := make(chan serverMsg, 64), make(chan struct{})
	defer close(quit)
	go func() {
		for {
			typ, msg, err := sc.rd.next()
			m := serverMsg{typ: typ, msg: append([]byte(nil), msg...), err: err}
			select {
			case msgs <- m:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	send := func(c listenCmd) error {
		verb := "UNLISTEN "
		if c.listen {
			verb = "LISTEN "
		}
		raw, _ := (&pgproto3.Query{String: verb + quoteIdent(c.channel)}).Encode(nil)
		_, err := sc.conn.Write(raw)
		return err
	}
	// In flight: the LISTENs sent and not yet answered, in order (nil for
	// an UNLISTEN).
	var inflight []*channelState
	l.mu.Lock()
	for name, cs := range l.chs {
		if err := send(listenCmd{channel: name, listen: true}); err != nil {
			l.mu.Unlock()
			return err
		}
		inflight = append(inflight, cs)
	}
	// Commands queued before this connection are covered by the above.
	for len(l.cmds) > 0 {
		<-l.cmds
	}
	l.lost = false
	l.mu.Unlock()
	var failed error // the ErrorResponse of the command in flight
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if l.p.epochOf(node) != epoch {
				return errors.New("the node is no longer the primary")
			}
			l.mu.Lock()
			lost := l.lost
			l.mu.Unlock()
			if lost {
				return errors.New("more LISTEN and UNLISTEN commands than the queue holds")
			}
		case c := <-l.cmds:
			if err := send(c); err != nil {
				return err
			}
			var cs *channelState
			if c.listen {
				l.mu.Lock()
				cs = l.chs[c.channel]
				l.mu.Unlock()
			}
			inflight = append(inflight, cs)
		case m := <-msgs:
			if m.err != nil {
				return m.err
			}
			switch m.typ {
			case msgNotificationResponse:
				var n pgproto3.NotificationResponse
				if err := n.Decode(m.msg[5:]); err == nil {
					l.dispatch(m.msg, n.Channel)
				}
			case msgErrorResponse:
				var e pgproto3.ErrorResponse
				if err := e.Decode(m.msg[5:]); err == nil {
					failed = &pgErr{e.Severity, e.Code, e.Message}
				}
			case msgReadyForQuery:
				if len(inflight) == 0 {
					continue
				}
				cs := inflight[0]
				inflight = inflight[1:]
				if cs != nil {
					l.mu.Lock()
					select {
					case <-cs.ready: // listened again after a reconnection
					default:
						cs.err = failed
						close(cs.ready)
					}
					l.mu.Unlock()
				}
				failed = nil
			}
		}
	}
}

// noteQueue holds the notifications for one session until it is between
// transactions; its deliverer writes them then.
type noteQueue struct {
	mu   sync.Mutex
	msgs []byte
	n    int
	wake chan struct{} // a message was added
}

// maxQueuedNotes bounds what a client that does not read may make the
// pooler hold.
const maxQueuedNotes = 100000

func newNoteQueue() *noteQueue { return &noteQueue{wake: make(chan struct{}, 1)} }

func (q *noteQueue) add(msg []byte) {
	q.mu.Lock()
	if q.n < maxQueuedNotes {
		q.msgs = append(q.msgs, msg...)
		q.n++
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *noteQueue) take() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs, q.n = nil, 0
	return out
}

// deliverer is a running delivery of a session's notifications.
type deliverer struct {
	stop, done chan struct{}
}

// deliver writes the session's notifications to its client while it is
// between transactions (started when a transaction ends, stopped when the
// next begins: nothing else writes to the client meanwhile).
func (s *session) deliver() {
	if s.notes == nil || s.delivering != nil {
		return
	}
	d := &deliverer{stop: make(chan struct{}), done: make(chan struct{})}
	s.delivering = d
	go func() {
		defer close(d.done)
		for {
			if msgs := s.notes.take(); len(msgs) > 0 {
				if _, err := s.conn.Write(msgs); err != nil {
					return
				}
				continue
			}
			select {
			case <-d.stop:
				return
			case <-s.notes.wake:
			}
		}
	}()
}

// stopDeliver ends the delivery, if one runs, once what it is writing is
// written.
func (s *session) stopDeliver() {
	d := s.delivering
	if d == nil {
		return
	}
	s.delivering = nil
	close(d.stop)
	<-d.done
}

// subscription answers a LISTEN or UNLISTEN the pooler serves itself, as
// the server would have.
func (s *session) subscription(ctx context.Context, sub route.Subscription) error {
	l := s.p.listenerFor(ctx, listenKey{database: s.db, user: s.user})
	tag := "UNLISTEN"
	if sub.Listen {
		tag = "LISTEN"
		if s.notes == nil {
			s.notes = newNoteQueue()
		}
		if err := l.subscribe(ctx, s, sub.Channel); err != nil {
			s.be.Send(errorResponse("57P03", err.Error(), "a failover may be under way; retry"))
			s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
			return s.be.Flush()
		}
	} else {
		l.unsubscribe(s, sub.Channel)
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	if err := s.be.Flush(); err != nil {
		return err
	}
	s.deliver()
	return nil
}

// unsubscribeAll ends the session's subscriptions (it is ending).
func (s *session) unsubscribeAll() {
	if s.notes == nil {
		return
	}
	if l := s.p.hub.existing(listenKey{database: s.db, user: s.user}); l != nil {
		l.unsubscribe(s, "")
	}
}

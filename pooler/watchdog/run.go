package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

// Holder takes and gives back the address; vip.VIP is one. Acquire probes
// first (RFC 5227) and fails when another host answers for it.
type Holder interface {
	Acquire(ctx context.Context) error
	Release() error
}

// Renewer is a Holder whose address expires unless renewed (vip.VIP with
// a Lifetime): the kernel lets go of it when this process cannot, killed
// or frozen. Renew fails when the address has gone.
type Renewer interface {
	Renew() error
}

// Watchdog runs one member: it carries the election's messages over UDP
// and, in a pooler, holds the address exactly while the election says so.
type Watchdog struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	holder Holder // nil: a witness, or a pooler without an address
	// Alive, when set, is called on every tick of the election loop (for
	// systemd's WatchdogSec: a hung loop stops the pings).
	Alive  func()
	sealer *Sealer
	opener *Opener
	addrs  map[string]netip.AddrPort

	mu      sync.Mutex
	node    *election.Node
	status  election.Status
	holding bool // the address is (being) taken here
	held    bool // … and taken: Acquire succeeded
	renewed time.Time
	stop    context.CancelFunc
	taken   chan struct{} // closed when the acquisition under way ends
	dropped map[string]int
}

// New checks the configuration and key; holder may be nil.
func New(cfg Config, key []byte, holder Holder, log *slog.Logger, now func() time.Time) (*Watchdog, error) {
	if now == nil {
		now = time.Now
	}
	node, err := election.New(cfg.Election(), now())
	if err != nil {
		return nil, err
	}
	sealer, err := NewSealer(key, cfg.Self, now())
	if err != nil {
		return nil, err
	}
	var ids []string
	addrs := map[string]netip.AddrPort{}
	for _, m := range cfg.Members {
		ids = append(ids, m.ID)
		addrs[m.ID] = m.Addr
	}
	// Clocks may differ by this much (NTP keeps them far closer).
	opener, err := NewOpener(key, ids, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &Watchdog{cfg: cfg, log: log, now: now, holder: holder, sealer: sealer, opener: opener, addrs: addrs,
		node: node, dropped: map[string]int{}}, nil
}

// Status is the member's view for `rampart pool status` and metrics.
type Status struct {
	election.Status
	Holding bool           // the address is held (or being taken) here
	Dropped map[string]int // packets refused, by reason
}

// Status returns the latest view.
func (w *Watchdog) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := map[string]int{}
	for k, v := range w.dropped {
		d[k] = v
	}
	return Status{Status: w.status, Holding: w.holding, Dropped: d}
}

// Run listens on this member's address until ctx ends; it gives the
// address back before returning.
func (w *Watchdog) Run(ctx context.Context) error {
	me := w.cfg.Me()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(me.Addr))
	if err != nil {
		return fmt.Errorf("watchdog: listen on %s: %w", me.Addr, err)
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	defer w.release("stopping")
	go w.receive(conn)
	tick := time.NewTicker(w.cfg.Heartbeat / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		w.mu.Lock()
		now := w.now()
		w.node.Tick(now)
		out := w.node.Ready()
		prev := w.status
		w.status = w.node.Status(now)
		st := w.status
		w.mu.Unlock()
		if st.Role != prev.Role || st.Leader != prev.Leader {
			w.log.Info("election", "role", st.Role.String(), "term", st.Term, "leader", st.Leader, "quorum", st.Quorum)
		}
		w.send(conn, out)
		w.apply(ctx)
		if w.Alive != nil {
			w.Alive()
		}
	}
}

func (w *Watchdog) receive(conn *net.UDPConn) {
	buf := make([]byte, maxPacket+1)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		w.mu.Lock()
		now := w.now()
		m, err := w.opener.Open(buf[:n], now)
		if err != nil {
			w.dropped[dropReason(err)]++
			w.mu.Unlock()
			w.log.Debug("heartbeat packet dropped", "err", err)
			continue
		}
		w.node.Step(m, now)
		out := w.node.Ready()
		w.status = w.node.Status(now)
		w.mu.Unlock()
		w.send(conn, out)
	}
}

func dropReason(err error) string {
	switch {
	case errors.Is(err, ErrForged):
		return "forged"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	case errors.Is(err, ErrStale):
		return "stale"
	}
	return "malformed"
}

func (w *Watchdog) send(conn *net.UDPConn, msgs []election.Message) {
	for _, m := range msgs {
		pkt, err := w.sealer.Seal(m, w.now())
		if err != nil {
			w.log.Error("watchdog: cannot seal a message", "err", err)
			continue
		}
		for _, mem := range w.cfg.Members {
			if mem.ID == w.cfg.Self || m.To != "" && m.To != mem.ID {
				continue
			}
			conn.WriteToUDPAddrPort(pkt, w.addrs[mem.ID]) // loss is the election's business
		}
	}
}

// apply makes the address follow the election: released at once when the
// lease is gone, taken (after the probe) when it is won.
func (w *Watchdog) apply(ctx context.Context) {
	if w.holder == nil {
		return
	}
	w.mu.Lock()
	hold, holding, held, renewed := w.status.HoldVIP, w.holding, w.held, w.renewed
	w.mu.Unlock()
	switch {
	case !hold && holding:
		w.release("lease lost")
	case hold && !holding:
		w.take(ctx)
	case hold && w.now().Sub(renewed) >= w.cfg.Heartbeat/2:
		// Renewed from the moment it is added: taking it (probe, add,
		// announce) lasts longer than its lifetime.
		r, ok := w.holder.(Renewer)
		if !ok {
			return
		}
		if err := r.Renew(); err != nil {
			if !held {
				return // not added yet
			}
			w.log.Warn("the address has gone; taking it again", "err", err)
			w.mu.Lock()
			w.holding, w.held, w.stop, w.taken = false, false, nil, nil
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.renewed = w.now()
		w.mu.Unlock()
	}
}

func (w *Watchdog) take(ctx context.Context) {
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w.mu.Lock()
	w.holding, w.stop, w.taken = true, cancel, done
	term := w.status.Term
	w.mu.Unlock()
	w.log.Info("leading: taking the address", "term", term)
	go func() {
		defer close(done)
		err := w.holder.Acquire(actx)
		if err == nil {
			w.mu.Lock()
			if w.taken == done {
				w.held, w.renewed = true, w.now()
			}
			w.mu.Unlock()
			w.log.Info("address held", "term", term)
			return
		}
		w.log.Warn("could not take the address; trying again while leading", "err", err)
		// The old holder may still answer for it: a tick after a pause
		// tries again.
		select {
		case <-actx.Done():
		case <-time.After(w.cfg.Heartbeat / 2):
		}
		w.mu.Lock()
		if w.taken == done {
			w.holding, w.held, w.stop, w.taken = false, false, nil, nil
		}
		w.mu.Unlock()
		cancel()
	}()
}

// release gives the address back at once, stopping an acquisition under
// way first.
func (w *Watchdog) release(why string) {
	w.mu.Lock()
	holding, stop, taken := w.holding, w.stop, w.taken
	w.holding, w.held, w.stop, w.taken = false, false, nil, nil
	w.mu.Unlock()
	if stop != nil {
		stop()
		<-taken
	}
	if w.holder == nil || !holding && stop == nil {
		return
	}
	if err := w.holder.Release(); err != nil {
		w.log.Error("could not remove the address", "err", err)
		return
	}
	w.log.Info("address released", "why", why)
}

// Table renders the status as the console's SHOW WATCHDOG: one row per
// member.
func (w *Watchdog) Table() ([]string, [][]string) {
	st := w.Status()
	now := w.now()
	cols := []string{"member", "addr", "priority", "role", "leader", "term", "quorum", "holds_vip", "last_heard_ms"}
	var rows [][]string
	for _, m := range w.cfg.Members {
		role, heard := "", ""
		switch {
		case m.ID == w.cfg.Self:
			role = st.Role.String() + " (this pooler)"
			if m.Witness {
				role = "witness (this member)"
			}
		case m.Witness:
			role = "witness"
		case m.ID == st.Leader:
			role = "leader"
		default:
			role = "follower"
		}
		if at, ok := st.Heard[m.ID]; ok {
			heard = fmt.Sprint(now.Sub(at).Milliseconds())
		} else if m.ID != w.cfg.Self {
			heard = "never"
		}
		holds := ""
		if m.ID == w.cfg.Self {
			holds = fmt.Sprint(st.Holding)
		}
		rows = append(rows, []string{m.ID, m.Addr.String(), fmt.Sprint(m.Priority), role, st.Leader, fmt.Sprint(st.Term),
			fmt.Sprint(st.Quorum), holds, heard})
	}
	return cols, rows
}

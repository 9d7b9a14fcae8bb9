package watchdog

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

// fakeAddress stands for the VIP: it records who holds it and fails the
// test if two members ever do.
type fakeAddress struct {
	t      *testing.T
	mu     sync.Mutex
	holder string
	log    []string
}

type memberHold struct {
	a  *fakeAddress
	id string
}

func (h memberHold) Acquire(ctx context.Context) error {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	if h.a.holder != "" && h.a.holder != h.id {
		return fmt.Errorf("probe: %s answers for the address", h.a.holder)
	}
	h.a.holder = h.id
	h.a.log = append(h.a.log, h.id+" took")
	return nil
}

func (h memberHold) Release() error {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	if h.a.holder == h.id {
		h.a.holder = ""
		h.a.log = append(h.a.log, h.id+" released")
	}
	return nil
}

func (a *fakeAddress) who() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.holder
}

func (a *fakeAddress) history() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.log, ", ")
}

func freePort(t *testing.T) netip.AddrPort {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

type trio struct {
	members []Member
	dogs    map[string]*Watchdog
	stops   map[string]context.CancelFunc
	done    map[string]chan error
	addr    *fakeAddress
}

func startTrio(t *testing.T) *trio {
	tr := &trio{dogs: map[string]*Watchdog{}, stops: map[string]context.CancelFunc{}, done: map[string]chan error{}, addr: &fakeAddress{t: t}}
	for _, spec := range []Member{{ID: "p1", Priority: 100}, {ID: "p2", Priority: 50}, {ID: "w", Witness: true}} {
		spec.Addr = freePort(t)
		tr.members = append(tr.members, spec)
	}
	for _, m := range tr.members {
		tr.start(t, m.ID)
	}
	t.Cleanup(func() {
		for id := range tr.stops {
			tr.stop(t, id)
		}
	})
	return tr
}

func (tr *trio) start(t *testing.T, id string) {
	cfg := Config{Self: id, Heartbeat: 200 * time.Millisecond, Members: tr.members, Present: true}
	var holder Holder
	if id != "w" {
		holder = memberHold{tr.addr, id}
	}
	w, err := New(cfg, testKey, holder, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tr.dogs[id], tr.stops[id], tr.done[id] = w, cancel, done
}

func (tr *trio) stop(t *testing.T, id string) {
	tr.stops[id]()
	if err := <-tr.done[id]; err != nil {
		t.Errorf("%s: %v", id, err)
	}
	delete(tr.stops, id)
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s; last: %s", what, limit, last)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, under the deadline above
	}
}

func (tr *trio) holds(id string) func() (bool, string) {
	return func() (bool, string) {
		h := tr.addr.who()
		return h == id, fmt.Sprintf("holder %q, log %s", h, tr.addr.history())
	}
}

// Three members over loopback UDP: the preferred pooler takes the
// address; stopped, it gives it back and the other takes it.
func TestWatchdogOverUDP(t *testing.T) {
	tr := startTrio(t)
	took := waitFor(t, "p1 holds the address", 5*time.Second, tr.holds("p1"))
	t.Logf("p1 holds the address %s after start", took.Round(time.Millisecond))
	st := tr.dogs["p2"].Status()
	if st.Leader != "p1" || !st.Quorum || st.Heard["w"].IsZero() {
		t.Errorf("p2's view: %+v; want leader p1, a quorum, the witness heard", st.Status)
	}
	tr.stop(t, "p1")
	took = waitFor(t, "p2 holds the address", 3*time.Second, tr.holds("p2"))
	t.Logf("p1 stopped: p2 holds the address %s later (heartbeat 200 ms)", took.Round(time.Millisecond))
}

// Forged, replayed and malformed packets sent to a member change nothing
// and are counted.
func TestWatchdogIgnoresBadPackets(t *testing.T) {
	tr := startTrio(t)
	waitFor(t, "p1 holds the address", 5*time.Second, tr.holds("p1"))
	before := tr.dogs["p2"].Status()

	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(tr.members[1].Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A forger without the key claims a high term; a replay repeats a
	// genuine packet; garbage and a truncated packet.
	forger, _ := NewSealer([]byte("not the cluster's key!!"), "p1", time.Now())
	forged, _ := forger.Seal(election.Message{Kind: election.Heartbeat, Term: before.Term + 100, Seq: 1}, time.Now())
	genuine, _ := NewSealer(testKey, "w", time.Now().Add(-time.Hour)) // numbers below w's current ones
	replayed, _ := genuine.Seal(election.Message{Kind: election.VoteRequest, Term: before.Term + 100}, time.Now())
	for _, pkt := range [][]byte{forged, replayed, []byte("hello"), forged[:20], make([]byte, 600)} {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the bad packets counted", 2*time.Second, func() (bool, string) {
		d := tr.dogs["p2"].Status().Dropped
		return d["forged"] >= 1 && d["replayed"] >= 1 && d["malformed"] >= 2, fmt.Sprint(d)
	})
	// Packets are handled in order: once p2 has heard p1 again well after
	// the bad ones, any effect they had would show.
	mark := time.Now().Add(300 * time.Millisecond)
	waitFor(t, "p2 hears p1 after the bad packets", 3*time.Second, func() (bool, string) {
		st := tr.dogs["p2"].Status()
		return st.Heard["p1"].After(mark), fmt.Sprint(st.Heard)
	})
	after := tr.dogs["p2"].Status()
	if after.Term != before.Term || after.Leader != "p1" || tr.addr.who() != "p1" {
		t.Errorf("bad packets changed p2: term %d → %d, leader %q, holder %q", before.Term, after.Term, after.Leader, tr.addr.who())
	}
	if h := tr.addr.history(); strings.Contains(h, "p2") {
		t.Errorf("the address moved: %s", h)
	}
}

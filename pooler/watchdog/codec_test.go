package watchdog

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	testTime = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
)

func sealed(t testing.TB, id string, m election.Message, at time.Time) []byte {
	s, err := NewSealer(testKey, id, at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal(m, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func opener(t testing.TB) *Opener {
	o, err := NewOpener(testKey, []string{"p1", "p2", "w"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSealOpen(t *testing.T) {
	for _, m := range []election.Message{
		{Kind: election.Heartbeat, Term: 7, Seq: 42},
		{Kind: election.Ack, To: "p1", Term: 7, Seq: 42, Granted: true},
		{Kind: election.VoteRequest, Term: 8, Pre: true},
		{Kind: election.Hello, Term: 8, Leader: "p2"},
	} {
		got, err := opener(t).Open(sealed(t, "w", m, testTime), testTime.Add(time.Second))
		m.From = "w"
		if err != nil || got != m {
			t.Errorf("Open(Seal(%+v)) = %+v, %v", m, got, err)
		}
	}
}

// Forged, altered, replayed, stale and foreign packets are refused, and a
// refused packet does not move the replay window.
func TestOpenRefuses(t *testing.T) {
	m := election.Message{Kind: election.Heartbeat, Term: 3, Seq: 9}
	good := sealed(t, "p1", m, testTime)

	o := opener(t)
	if _, err := o.Open(good, testTime); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(good, testTime); !errors.Is(err, ErrReplayed) {
		t.Errorf("replayed packet: %v; want ErrReplayed", err)
	}

	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x01
		if _, err := opener(t).Open(bad, testTime); err == nil {
			t.Errorf("a bit flipped at byte %d was accepted", i)
		}
	}
	other, _ := NewSealer([]byte("another key of sixteen+"), "p1", testTime)
	forged, _ := other.Seal(m, testTime)
	if _, err := opener(t).Open(forged, testTime); !errors.Is(err, ErrForged) {
		t.Errorf("packet signed with another key: %v; want ErrForged", err)
	}
	if _, err := opener(t).Open(good, testTime.Add(10*time.Second)); !errors.Is(err, ErrStale) {
		t.Errorf("packet 10 s old: %v; want ErrStale", err)
	}
	o = opener(t)
	if _, err := o.Open(sealed(t, "mallory", m, testTime), testTime); err == nil {
		t.Error("a packet from a non-member was accepted")
	}
	// A stale copy refused does not spoil the window for the fresh one.
	o = opener(t)
	if _, err := o.Open(good, testTime.Add(time.Minute)); err == nil {
		t.Fatal("stale packet accepted")
	}
	if _, err := o.Open(good, testTime); err != nil {
		t.Errorf("after a refused copy the packet itself: %v", err)
	}
	// A restarted sender's numbers start above the old ones.
	o = opener(t)
	before := sealed(t, "p2", m, testTime)
	after := sealed(t, "p2", m, testTime.Add(2*time.Second))
	if _, err := o.Open(before, testTime); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(after, testTime.Add(2*time.Second)); err != nil {
		t.Errorf("the first packet after a sender's restart: %v", err)
	}
}

func TestKeyAndIDChecks(t *testing.T) {
	if _, err := NewSealer([]byte("short"), "p1", testTime); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	if _, err := NewOpener([]byte("short"), nil, time.Second); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	if _, err := NewSealer(testKey, "", testTime); err == nil {
		t.Error("an empty id was accepted")
	}
}

// FuzzOpen: any bytes, never a panic, never accepted (only the key's
// holder can sign), and a refused packet leaves the window alone.
func FuzzOpen(f *testing.F) {
	f.Add(sealed(f, "p1", election.Message{Kind: election.Heartbeat, Term: 1, Seq: 1}, testTime))
	f.Add(sealed(f, "w", election.Message{Kind: election.Hello, Leader: "p1"}, testTime))
	f.Add([]byte("RPWD\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		o := opener(t)
		m, err := o.Open(pkt, testTime)
		if err == nil {
			// Only a seed (a genuinely sealed packet) can pass.
			if m.From == "" || m.Kind < election.Heartbeat || m.Kind > election.Hello {
				t.Fatalf("accepted %q as %+v", pkt, m)
			}
			return
		}
		if len(o.last) != 0 {
			t.Fatalf("a refused packet (%v) moved the replay window", err)
		}
	})
}

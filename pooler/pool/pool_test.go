package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// conn stands in for a server connection: a name, and whether it was
// closed.
type conn struct {
	name   string
	closed bool
}

type funcs struct {
	mu     sync.Mutex
	made   int
	refuse map[string]bool // Usable says no
	fail   error           // Connect fails
}

func (f *funcs) Funcs() Funcs[*conn] {
	return Funcs[*conn]{
		Connect: func(context.Context) (*conn, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.fail != nil {
				return nil, f.fail
			}
			f.made++
			return &conn{name: fmt.Sprintf("new%d", f.made)}, nil
		},
		Usable: func(c *conn, _ time.Duration) bool { return !f.refuse[c.name] },
		Close:  func(c *conn) { c.closed = true },
	}
}

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestGetTakesTheLastIdleItMayUse(t *testing.T) {
	p := New[*conn](3)
	f := &funcs{}
	var got []*conn
	for range 3 {
		c, err := p.Get(context.Background(), time.Second, t0, f.Funcs())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	for _, c := range got {
		p.Put(c, t0)
	}
	// new3 was put back last but is refused (the server ended it): closed,
	// and new2 is handed out.
	f.refuse = map[string]bool{"new3": true}
	c, err := p.Get(context.Background(), time.Second, t0, f.Funcs())
	if err != nil || c.name != "new2" {
		t.Fatalf("Get = %v, %v; want new2", c, err)
	}
	if !got[2].closed {
		t.Error("the refused idle connection was not closed")
	}
	if open, idle := p.Counts(); open != 2 || idle != 1 {
		t.Errorf("Counts = %d open, %d idle; want 2, 1", open, idle)
	}
}

func TestGetWaitsForASlot(t *testing.T) {
	p := New[*conn](1)
	f := &funcs{}
	held, err := p.Get(context.Background(), time.Second, t0, f.Funcs())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(context.Background(), 20*time.Millisecond, t0, f.Funcs()); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Get from a full pool: %v, want ErrWaitTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Get(ctx, time.Minute, t0, f.Funcs()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with an ended context: %v", err)
	}
	// A slot freed while one waits is taken: the connection put back.
	go p.Put(held, t0)
	c, err := p.Get(context.Background(), 10*time.Second, t0, f.Funcs())
	if err != nil || c != held {
		t.Fatalf("Get after Put = %v, %v; want the connection put back", c, err)
	}
	p.Discard()
	if open, _ := p.Counts(); open != 0 {
		t.Errorf("%d open after Discard, want 0", open)
	}
}

func TestTakeIdle(t *testing.T) {
	f := &funcs{}
	p2 := New[*conn](3)
	var cs []*conn
	for range 3 {
		c, _ := p2.Get(context.Background(), time.Second, t0, f.Funcs())
		cs = append(cs, c)
	}
	for i, c := range cs {
		p2.Put(c, t0.Add(time.Duration(i)*time.Minute))
	}
	taken := p2.TakeIdle(func(_ *conn, since time.Time) bool { return since.Before(t0.Add(90 * time.Second)) })
	if len(taken) != 2 || taken[0] != cs[0] || taken[1] != cs[1] {
		t.Fatalf("TakeIdle took %v, want the two idle before 90 s", taken)
	}
	if open, idle := p2.Counts(); open != 1 || idle != 1 {
		t.Errorf("Counts = %d, %d; want 1, 1", open, idle)
	}
}

// A pool whose connection could not be made and that holds nothing is
// forgotten; one that holds a connection is kept.
func TestSetForgetsPoolsThatFailed(t *testing.T) {
	s := NewSet[string, *conn](2)
	f := &funcs{fail: errors.New("connection refused")}
	for i := range 50 {
		if _, _, err := s.Get(context.Background(), fmt.Sprintf("db%d", i), time.Second, t0, f.Funcs()); err == nil {
			t.Fatal("Get succeeded with a failing Connect")
		}
	}
	if n := s.Len(); n != 0 {
		t.Errorf("%d pools after 50 failed keys, want 0", n)
	}
	f.fail = nil
	c, p, err := s.Get(context.Background(), "app", time.Second, t0, f.Funcs())
	if err != nil {
		t.Fatal(err)
	}
	f.fail = errors.New("too many connections")
	if _, _, err := s.Get(context.Background(), "app", time.Second, t0, f.Funcs()); err == nil {
		t.Fatal("second Get succeeded with a failing Connect")
	}
	if n := s.Len(); n != 1 {
		t.Errorf("%d pools, want the one holding a connection", n)
	}
	p.Put(c, t0)
	seen := 0
	s.Each(func(k string, p *Pool[*conn]) {
		if open, idle := p.Counts(); k == "app" && open == 1 && idle == 1 {
			seen++
		}
	})
	if seen != 1 {
		t.Error("Each did not show app's pool with its idle connection")
	}
}

package seed

import (
	"testing"
	"time"
)

// clock is a settable time for the recorder.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSeriesFigures(t *testing.T) {
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := NewRecorder(c.now)
	// 10 s at 40 writes/s, a 3 s outage with errors, 2 s at 20/s, then 40/s.
	for i := 0; i < 10*40; i++ {
		r.Count(Write)
		c.t = c.t.Add(25 * time.Millisecond)
	}
	fault := r.Mark("fault")
	for i := 0; i < 6; i++ {
		r.Count(Error)
		c.t = c.t.Add(500 * time.Millisecond)
	}
	r.Mark("promoted")
	for i := 0; i < 2*20; i++ {
		r.Count(Write)
		c.t = c.t.Add(50 * time.Millisecond)
	}
	for i := 0; i < 5*40; i++ {
		r.Count(Write)
		c.t = c.t.Add(25 * time.Millisecond)
	}
	s := r.Snapshot()
	if got := s.Rate(Write, 0, fault); got != 40 {
		t.Errorf("rate before the fault %v; want 40", got)
	}
	if first, ok := s.FirstAfter(Write, fault); !ok || first-fault != 3*time.Second {
		t.Errorf("first write %v after the fault; want 3s", first-fault)
	}
	if gap := s.LongestGap(Write, 0, s.End()); gap != 3*time.Second {
		t.Errorf("longest gap %v; want 3s", gap)
	}
	if full, ok := s.FullAfter(Write, fault, 40, 0.9); !ok || full-fault != 5*time.Second {
		t.Errorf("full throughput %v after the fault (%v); want 5s", full-fault, ok)
	}
	if n := s.Total(Error, 0, s.End()); n != 6 {
		t.Errorf("errors %d; want 6", n)
	}
	if len(s.Marks) != 2 || s.Marks[1].Label != "promoted" || s.Marks[1].At != 13*time.Second {
		t.Errorf("marks %+v", s.Marks)
	}
}

package seed

import (
	"sync"
	"time"
)

// Bucket is one point of a series: counts are per Bucket.
const Bucket = 250 * time.Millisecond

// Kind is what a load counts.
type Kind int

// Kinds of events.
const (
	Write Kind = iota // an acknowledged commit
	Read              // a read answered
	Error             // a client error (a failed statement or connection)
)

// Series counts a load's events bucket by bucket from Start, with marks
// for the fault and each recovery step.
type Series struct {
	Start  time.Time
	Counts [3][]int // by Kind, per bucket
	Marks  []Mark
}

// Mark is a moment worth a line on the plot.
type Mark struct {
	At    time.Duration // since Start
	Label string
}

// Len is the number of buckets.
func (s *Series) Len() int { return len(s.Counts[Write]) }

// End is how long the series runs.
func (s *Series) End() time.Duration { return time.Duration(s.Len()) * Bucket }

func (s *Series) index(d time.Duration) int { return int(d / Bucket) }

// Rate is kind's mean rate per second over [from, to).
func (s *Series) Rate(kind Kind, from, to time.Duration) float64 {
	i, j := max(s.index(from), 0), min(s.index(to), s.Len())
	if j <= i {
		return 0
	}
	n := 0
	for _, c := range s.Counts[kind][i:j] {
		n += c
	}
	return float64(n) / (float64(j-i) * Bucket.Seconds())
}

// Total counts kind over [from, to).
func (s *Series) Total(kind Kind, from, to time.Duration) int {
	i, j := max(s.index(from), 0), min(s.index(to), s.Len())
	n := 0
	for k := i; k < j; k++ {
		n += s.Counts[kind][k]
	}
	return n
}

// FirstAfter is when kind next happened at or after t (ok false: never).
func (s *Series) FirstAfter(kind Kind, t time.Duration) (time.Duration, bool) {
	for i := max(s.index(t), 0); i < s.Len(); i++ {
		if s.Counts[kind][i] > 0 {
			return time.Duration(i) * Bucket, true
		}
	}
	return 0, false
}

// LongestGap is the longest run of buckets without kind in [from, to).
func (s *Series) LongestGap(kind Kind, from, to time.Duration) time.Duration {
	longest, run := 0, 0
	for i := max(s.index(from), 0); i < min(s.index(to), s.Len()); i++ {
		if s.Counts[kind][i] == 0 {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return time.Duration(longest) * Bucket
}

// FullAfter is when kind's rate over the following second first reaches
// frac of baseline, at or after t (ok false: never).
func (s *Series) FullAfter(kind Kind, t time.Duration, baseline, frac float64) (time.Duration, bool) {
	window := int(time.Second / Bucket)
	for i := max(s.index(t), 0); i+window <= s.Len(); i++ {
		from := time.Duration(i) * Bucket
		if s.Rate(kind, from, from+time.Second) >= frac*baseline {
			return from, true
		}
	}
	return 0, false
}

// Recorder fills a Series from many goroutines.
type Recorder struct {
	mu  sync.Mutex
	s   Series
	now func() time.Time
}

// NewRecorder starts a series at now().
func NewRecorder(now func() time.Time) *Recorder {
	return &Recorder{s: Series{Start: now()}, now: now}
}

// Count records one event of kind now.
func (r *Recorder) Count(kind Kind) { r.CountAt(kind, r.now()) }

// CountAt records one event of kind at t (not before the start): for
// events another program logged.
func (r *Recorder) CountAt(kind Kind, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.s.index(max(t.Sub(r.s.Start), 0))
	for r.s.Len() <= i {
		for k := range r.s.Counts {
			r.s.Counts[k] = append(r.s.Counts[k], 0)
		}
	}
	r.s.Counts[kind][i]++
}

// Mark notes a moment now and returns it (since the start).
func (r *Recorder) Mark(label string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := r.now().Sub(r.s.Start)
	r.s.Marks = append(r.s.Marks, Mark{at, label})
	return at
}

// Since is now, as a time since the start.
func (r *Recorder) Since() time.Duration { return r.now().Sub(r.s.Start) }

// Snapshot is a copy of the series so far, padded to now.
func (r *Recorder) Snapshot() Series {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Series{Start: r.s.Start, Marks: append([]Mark(nil), r.s.Marks...)}
	n := max(r.s.index(r.now().Sub(r.s.Start)), r.s.Len())
	for k := range s.Counts {
		s.Counts[k] = make([]int, n)
		copy(s.Counts[k], r.s.Counts[k])
	}
	return s
}

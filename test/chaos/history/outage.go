package history

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Outage is what one fault cost the clients.
type Outage struct {
	Fault Fault `json:"fault"`
	// ToWrite runs from the fault's start to the first acknowledgement of
	// a write invoked after it (the acknowledgement, not the invocation:
	// a write that hung through the outage does not end it); Wrote is
	// false when none came before the end. ToRead and Read likewise.
	ToWrite time.Duration `json:"to_write_ns"`
	Wrote   bool          `json:"wrote"`
	ToRead  time.Duration `json:"to_read_ns"`
	Read    bool          `json:"read"`
	// Errors counts the operations that failed or went unknown while the
	// fault lasted (completed from its start to its heal).
	Errors int `json:"errors"`
}

// Outages measures, for each fault, how long writes and reads were out and
// how many client errors it caused. Faults may overlap (compound faults):
// each is measured on its own.
func Outages(ops []Op, faults []Fault) []Outage {
	outages := make([]Outage, len(faults))
	for i, f := range faults {
		o := Outage{Fault: f}
		for _, op := range ops {
			if op.Outcome != OK {
				if op.Completed >= f.Start && op.Completed <= f.Healed {
					o.Errors++
				}
				continue
			}
			if op.Invoked < f.Start {
				continue
			}
			took := op.Completed - f.Start
			if op.Kind.IsWrite() && (!o.Wrote || took < o.ToWrite) {
				o.ToWrite, o.Wrote = took, true
			}
			if !op.Kind.IsWrite() && (!o.Read || took < o.ToRead) {
				o.ToRead, o.Read = took, true
			}
		}
		outages[i] = o
	}
	return outages
}

// FaultSummary sums up the outages of one kind of fault.
type FaultSummary struct {
	Kind   string `json:"kind"`
	Faults int    `json:"faults"`
	// ToWrite and ToRead spread over the faults after which writes (reads)
	// came back; NoWrite and NoRead count those after which they did not.
	ToWrite Spread `json:"to_write"`
	ToRead  Spread `json:"to_read"`
	NoWrite int    `json:"no_write"`
	NoRead  int    `json:"no_read"`
	Errors  int    `json:"errors"` // in all
}

// Summarize sums outages up by kind of fault, in the order of kinds.
func Summarize(outages []Outage) []FaultSummary {
	byKind := map[string][]Outage{}
	for _, o := range outages {
		byKind[o.Fault.Kind] = append(byKind[o.Fault.Kind], o)
	}
	var sums []FaultSummary
	for kind, os := range byKind {
		s := FaultSummary{Kind: kind, Faults: len(os)}
		var toWrite, toRead []time.Duration
		for _, o := range os {
			if o.Wrote {
				toWrite = append(toWrite, o.ToWrite)
			} else {
				s.NoWrite++
			}
			if o.Read {
				toRead = append(toRead, o.ToRead)
			} else {
				s.NoRead++
			}
			s.Errors += o.Errors
		}
		s.ToWrite, s.ToRead = SpreadOf(toWrite), SpreadOf(toRead)
		sums = append(sums, s)
	}
	slices.SortFunc(sums, func(a, b FaultSummary) int { return cmp.Compare(a.Kind, b.Kind) })
	return sums
}

// Spread is how a set of durations spreads.
type Spread struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	Max time.Duration `json:"max_ns"`
}

// SpreadOf is ds's count, median, 95th percentile and maximum (all 0 for
// none).
func SpreadOf(ds []time.Duration) Spread {
	return Spread{N: len(ds), P50: Percentile(ds, 50), P95: Percentile(ds, 95), Max: Percentile(ds, 100)}
}

// Percentile is the p-th percentile of ds (0 < p ≤ 100) by nearest rank:
// the smallest value at least p% of ds are no greater than, so always one
// of ds, never an interpolation (a handful of faults makes a small
// sample). p ≤ 0 gives the minimum; no durations give 0. ds is not
// changed.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(ds))
	rank := math.Ceil(p / 100 * float64(len(sorted)))
	if !(rank >= 1) { // NaN too
		rank = 1
	}
	return sorted[int(min(rank, float64(len(sorted))))-1]
}

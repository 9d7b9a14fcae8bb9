package history

import (
	"slices"
	"time"
)

// Options tune Check.
type Options struct {
	// RegisterTimeout bounds porcupine's search on each register (0: no
	// bound).
	RegisterTimeout time.Duration
	// ReadYourWritesWindow is the pooler's read_your_writes (0: for ever).
	ReadYourWritesWindow time.Duration
}

// Report is everything Check found in a history.
type Report struct {
	// Violations, strongest kind first, in history order within a kind.
	Violations []Violation      `json:"violations"`
	Registers  []RegisterResult `json:"registers"`
	Outages    []Outage         `json:"outages"`
	Summary    []FaultSummary   `json:"summary"`
}

// Check runs every check on h and measures its outages.
func Check(h History, o Options) Report {
	var vs []Violation
	vs = append(vs, SplitBrain(h.Ops)...)
	vs = append(vs, LostWrites(h.Ops, h.Final)...)
	vs = append(vs, VanishedReads(h.Ops, h.Final)...)
	registers, results := Registers(h.Ops, o.RegisterTimeout)
	vs = append(vs, registers...)
	vs = append(vs, ReadYourWrites(h.Ops, o.ReadYourWritesWindow)...)
	vs = append(vs, MarkedReads(h.Ops, h.Marks)...)
	vs = append(vs, GarbageReads(h.Ops, h.Final)...)
	vs = append(vs, ListOrder(h.Ops, h.Final)...)
	strength := []ViolationKind{SplitBrainSystemID, SplitBrainTimeline, LostWrite, VanishedRead, NotLinearizable,
		StaleRead, MarkedRead, GarbageRead, IncompatibleOrder, DuplicateAppend, FailedWriteTookEffect}
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return slices.Index(strength, a.Kind) - slices.Index(strength, b.Kind)
	})
	outages := Outages(h.Ops, h.Faults)
	return Report{Violations: vs, Registers: results, Outages: outages, Summary: Summarize(outages)}
}

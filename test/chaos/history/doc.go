// Package history judges the history a chaos campaign recorded: every
// operation its clients ran against the lab cluster (through the pooler
// pair or the database VIP), with what the server said about itself, the
// faults injected, and the lists read on every node at the end.
//
// Two workloads share a history. List-append: clients append unique ids to
// a few keys' lists and read the lists back, so a lost, duplicated or
// reordered commit shows as a missing, repeated or out-of-order id
// (Jepsen's list-append workload). Registers: reads, writes and
// compare-and-set on a few integer registers, checked for
// linearizability with porcupine (github.com/anishathalye/porcupine).
//
// Each check is a pure function from the history (or part of it) to
// violations, and names the operations involved: [LostWrites],
// [SplitBrain], [Registers], [ReadYourWrites], [GarbageReads], [ListOrder].
// [Outages] and [Summarize] turn the history and its fault marks into
// outage figures; [Check] runs everything. The checks guard ARCHITECTURE.md's
// invariants 1 (one writable primary) and 2 (no acknowledged commit lost),
// and the pooler's read-your-writes promise.
//
// The package owns the history's model and its JSON form (so a run is saved
// and a violation replayed with [Decode]), and the checks. It does no I/O
// beyond encoding, reads no clock (times are offsets from
// [History.Started]; only porcupine's search has a wall-clock bound) and
// knows nothing of the lab, the recorder or how faults are made: those
// belong to the campaign that calls it. Like the rest of test/ it must not
// import package testing outside its tests.
package history

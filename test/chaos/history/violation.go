package history

// Violation is one finding of a check.
type Violation struct {
	Kind ViolationKind `json:"kind"`
	// Explanation is one line that names the operations involved.
	Explanation string `json:"explanation"`
	Ops         []Op   `json:"ops"`
}

// String is the violation as a report line.
func (v Violation) String() string { return string(v.Kind) + ": " + v.Explanation }

// ViolationKind says which promise a violation breaks.
type ViolationKind string

// Kinds of violations, strongest first.
const (
	// SplitBrainSystemID: acknowledged writes from two clusters (two
	// system identifiers).
	SplitBrainSystemID ViolationKind = "split-brain-system-id"
	// SplitBrainTimeline: an older timeline acknowledged a write invoked
	// after a newer timeline's write had completed.
	SplitBrainTimeline ViolationKind = "split-brain-timeline"
	// LostWrite: an acknowledged append is missing at the end.
	LostWrite ViolationKind = "lost-write"
	// VanishedRead: a read saw an append that was never acknowledged and
	// is on no node at the end (PostgreSQL shows a commit before its
	// synchronous standby confirms it; the failover dropped it).
	VanishedRead ViolationKind = "vanished-read"
	// NotLinearizable: no order of a register's operations explains
	// what the clients saw.
	NotLinearizable ViolationKind = "not-linearizable"
	// StaleRead: a read through the pooler missed its own client's
	// acknowledged append (read-your-writes).
	StaleRead ViolationKind = "stale-read"
	// MarkedRead: a standby the pooler had marked unusable (down, drained,
	// or lagging past its limit) answered a read through it.
	MarkedRead ViolationKind = "marked-read"
	// GarbageRead: a read returned an id or value no operation tried to
	// write.
	GarbageRead ViolationKind = "garbage-read"
	// IncompatibleOrder: two reads of a list disagree on its order, so
	// neither is a prefix of the other.
	IncompatibleOrder ViolationKind = "incompatible-order"
	// DuplicateAppend: an id is in a list twice.
	DuplicateAppend ViolationKind = "duplicate-append"
	// FailedWriteTookEffect: an append that failed with a definite error
	// is present at the end. Weaker than the rest: the client was told
	// wrong, no acknowledged data is at risk.
	FailedWriteTookEffect ViolationKind = "failed-write-took-effect"
)

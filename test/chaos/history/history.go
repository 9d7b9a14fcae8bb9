package history

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// History is one chaos run as its clients saw it.
type History struct {
	// Started is the wall-clock moment every offset below counts from.
	Started time.Time   `json:"started"`
	Ops     []Op        `json:"ops"`
	Faults  []Fault     `json:"faults,omitzero"`
	Final   []NodeState `json:"final,omitzero"`
	// Marks are the leading pooler's views of the nodes, sampled while
	// the clients ran.
	Marks []PoolerMark `json:"marks,omitzero"`
}

// PoolerMark is what a pooler said about one node at one moment (its
// /health): whether it would send reads there.
type PoolerMark struct {
	At     time.Duration `json:"at_ns"` // offset from History.Started
	Pooler string        `json:"pooler"`
	Node   string        `json:"node"`
	// Usable: up, not drained, within the lag limit; Why says otherwise.
	Usable bool   `json:"usable,omitempty"`
	Why    string `json:"why,omitempty"`
}

// Op is one operation of one client, from invocation to completion.
type Op struct {
	// ID names the operation in reports; unique in a history.
	ID     int `json:"id"`
	Client int `json:"client"`
	// Session counts the client's connections: read-your-writes is
	// promised within one, and a reconnect starts another.
	Session int  `json:"session,omitempty"`
	Kind    Kind `json:"kind"`
	Key     int  `json:"key"`
	// Value is the id appended (Append), the value read (ReadRegister, ok
	// only), written (WriteRegister) or set (CompareAndSet).
	Value int64 `json:"value,omitempty"`
	// Expect is the value CompareAndSet compares with.
	Expect int64 `json:"expect,omitempty"`
	// Swapped: an ok CompareAndSet found Expect and set Value.
	Swapped bool `json:"swapped,omitempty"`
	// List is the list a ReadList returned, in order; nil reads as empty.
	List []int64 `json:"list,omitzero"`
	// Invoked and Completed are offsets from History.Started. An Unknown
	// op completes when the client gave up on it.
	Invoked   time.Duration `json:"invoked_ns"`
	Completed time.Duration `json:"completed_ns"`
	Outcome   Outcome       `json:"outcome"`
	Path      Path          `json:"path"`
	// Server is what the server reported with the answer (zero when
	// there was none).
	Server Server `json:"server,omitzero"`
}

// Kind is what an operation does.
type Kind string

// Kinds of operations: list-append and registers.
const (
	Append        Kind = "append"    // append Value to Key's list
	ReadList      Kind = "read"      // read Key's list
	ReadRegister  Kind = "reg-read"  // read register Key
	WriteRegister Kind = "reg-write" // set register Key to Value
	CompareAndSet Kind = "reg-cas"   // set register Key to Value if it holds Expect
)

// IsWrite: the operation needs the primary (an ok CompareAndSet ran
// there even when it did not swap).
func (k Kind) IsWrite() bool { return k == Append || k == WriteRegister || k == CompareAndSet }

// IsRegister: the operation is on a register, not a list.
func (k Kind) IsRegister() bool {
	return k == ReadRegister || k == WriteRegister || k == CompareAndSet
}

// Outcome is what the client learnt of an operation.
type Outcome string

// Outcomes.
const (
	OK     Outcome = "ok"   // acknowledged
	Failed Outcome = "fail" // a definite error: it did not happen
	// Unknown: timed out or the connection was lost mid-commit; it may or
	// may not have happened.
	Unknown Outcome = "unknown"
)

// Path is the address an operation went through.
type Path string

// Paths.
const (
	ViaPooler Path = "pooler" // the pooler pair's VIP
	ViaVIP    Path = "vip"    // the database VIP, straight to the primary
)

// Server is what the server reported along with an answer.
type Server struct {
	Node string `json:"node,omitempty"`
	// SystemID is pg_control_system().system_identifier (as a JSON string:
	// it does not fit a double).
	SystemID uint64 `json:"system_id,omitempty,string"`
	// Timeline of the WAL the operation went to; on a primary the first 8
	// hex digits of pg_walfile_name(pg_current_wal_lsn()).
	// pg_control_checkpoint() would lag a promotion until its checkpoint.
	Timeline uint32 `json:"timeline,omitempty"`
	// Standby is pg_is_in_recovery().
	Standby bool `json:"standby,omitempty"`
	// Pooler is the relaying pooler's view, when the client can know it.
	Pooler *PoolerView `json:"pooler,omitempty"`
}

// PoolerView is what a pooler said of itself with an answer.
type PoolerView struct {
	Name    string `json:"name,omitempty"`    // which pooler of the pair
	Leader  bool   `json:"leader,omitempty"`  // it held the pair's VIP
	Primary string `json:"primary,omitempty"` // the node it sent writes to
}

// Fault marks one injected fault, so outages can be laid at its door.
type Fault struct {
	// Kind groups faults in the summary: "postmaster-kill", "host-crash",
	// "freeze", "partition", "pooler-kill", ….
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"` // what it hit, for the report
	// Start and Healed are offsets from History.Started; a fault never
	// healed is healed at the end of the run.
	Start  time.Duration `json:"start_ns"`
	Healed time.Duration `json:"healed_ns"`
}

// NodeState is what one node held at the end, read once it converged.
type NodeState struct {
	Node    string `json:"node"`
	Standby bool   `json:"standby,omitempty"`
	// Lists maps each key to its list; a key missing reads as empty.
	Lists map[int][]int64 `json:"lists,omitzero"`
}

// Validate says what is malformed in h (every problem, joined), so the
// checks need not doubt their input.
func (h History) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seen := make(map[int]bool, len(h.Ops))
	for i, op := range h.Ops {
		if seen[op.ID] {
			bad("op %d: id %d used twice", i, op.ID)
		}
		seen[op.ID] = true
		switch op.Kind {
		case Append, ReadList, ReadRegister, WriteRegister, CompareAndSet:
		default:
			bad("op %d: kind %q is not one of append, read, reg-read, reg-write, reg-cas", op.ID, op.Kind)
		}
		switch op.Outcome {
		case OK, Failed, Unknown:
		default:
			bad("op %d: outcome %q is not one of ok, fail, unknown", op.ID, op.Outcome)
		}
		switch op.Path {
		case ViaPooler, ViaVIP:
		default:
			bad("op %d: path %q is not one of pooler, vip", op.ID, op.Path)
		}
		if op.Invoked < 0 || op.Completed < op.Invoked {
			bad("op %d: invoked at %v, completed at %v", op.ID, op.Invoked, op.Completed)
		}
	}
	for i, f := range h.Faults {
		if f.Kind == "" {
			bad("fault %d: no kind", i)
		}
		if f.Start < 0 || f.Healed < f.Start {
			bad("fault %d (%s): started at %v, healed at %v", i, f.Kind, f.Start, f.Healed)
		}
	}
	nodes := map[string]bool{}
	for i, n := range h.Final {
		if n.Node == "" || nodes[n.Node] {
			bad("final state %d: node %q is empty or named twice", i, n.Node)
		}
		nodes[n.Node] = true
	}
	return errors.Join(errs...)
}

// String names the operation in one line, for explanations:
// "op 12 (client 3: append 17 to list 2, ok 1.2s–1.21s via pooler on pg2 tl 3)".
func (op Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "op %d (client %d: ", op.ID, op.Client)
	switch op.Kind {
	case Append:
		fmt.Fprintf(&b, "append %d to list %d", op.Value, op.Key)
	case ReadList:
		fmt.Fprintf(&b, "read list %d", op.Key)
		if op.Outcome == OK {
			fmt.Fprintf(&b, " → %v", listText(op.List))
		}
	case ReadRegister:
		fmt.Fprintf(&b, "read register %d", op.Key)
		if op.Outcome == OK {
			fmt.Fprintf(&b, " → %d", op.Value)
		}
	case WriteRegister:
		fmt.Fprintf(&b, "write %d to register %d", op.Value, op.Key)
	case CompareAndSet:
		fmt.Fprintf(&b, "cas register %d from %d to %d", op.Key, op.Expect, op.Value)
		if op.Outcome == OK && !op.Swapped {
			b.WriteString(" (no swap)")
		}
	default:
		fmt.Fprintf(&b, "%s on %d", op.Kind, op.Key)
	}
	fmt.Fprintf(&b, ", %s %v–%v via %s", op.Outcome, op.Invoked, op.Completed, op.Path)
	if s := op.Server; s.Node != "" {
		fmt.Fprintf(&b, " on %s", s.Node)
	}
	if s := op.Server; s.Timeline != 0 {
		fmt.Fprintf(&b, " tl %d", s.Timeline)
	}
	b.WriteString(")")
	return b.String()
}

// listText prints a list, shortening a long one to its ends.
func listText(l []int64) string {
	const ends = 4
	if len(l) <= 2*ends+1 {
		return fmt.Sprint(l)
	}
	return fmt.Sprintf("%v … %v (%d ids)", l[:ends], l[len(l)-ends:], len(l))
}

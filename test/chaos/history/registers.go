package history

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is what the linearizability search concluded of one register.
type Verdict string

// Verdicts.
const (
	Linearizable Verdict = "linearizable"
	Illegal      Verdict = "illegal" // no order fits: a NotLinearizable violation says which ops
	// Undecided: the search ran out of time; neither a finding nor a pass.
	Undecided Verdict = "undecided"
)

// RegisterResult is the verdict on one register.
type RegisterResult struct {
	Key     int     `json:"key"`
	Verdict Verdict `json:"verdict"`
	// Ops is how many operations were checked (failed ones, unknown reads
	// and reads a standby answered are left out).
	Ops int `json:"ops"`
	// What Visualize draws.
	model porcupine.Model
	info  porcupine.LinearizationInfo
}

// Visualize writes porcupine's HTML page of the register's history and
// the longest orders that fit it (for an Illegal verdict, where they
// stop).
func (r RegisterResult) Visualize(w io.Writer) error {
	if r.model.Init == nil {
		return fmt.Errorf("register %d: nothing to visualize", r.Key)
	}
	if err := porcupine.Visualize(r.model, r.info, w); err != nil {
		return fmt.Errorf("visualize register %d: %w", r.Key, err)
	}
	return nil
}

// Registers checks that each register's operations are linearizable, with
// porcupine. Registers start at 0 (the workload creates them so). Failed
// operations did not happen and are left out; an Unknown write or
// compare-and-set may have happened at any time after its invocation, so,
// as porcupine prescribes, it completes at the end of the history (where
// it can also take effect unseen, which is the same as not at all) and a
// compare-and-set's result is not held against it. Unknown reads tell
// nothing and are left out, and so are reads a standby answered: the
// pooler sends reads there knowingly, within its lag limits, and they are
// not promised to be linearizable.
//
// timeout bounds the search on each register (0: no bound); a register
// whose search ran out is Undecided, not a violation.
func Registers(ops []Op, timeout time.Duration) ([]Violation, []RegisterResult) {
	var end time.Duration
	byKey := map[int][]Op{}
	for _, op := range ops {
		end = max(end, op.Completed)
		if !op.Kind.IsRegister() || op.Outcome == Failed ||
			op.Kind == ReadRegister && (op.Outcome == Unknown || op.Server.Standby) {
			continue
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	model := registerModel()
	var vs []Violation
	var results []RegisterResult
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		kops := byKey[key]
		res, info := porcupine.CheckOperationsVerbose(model, porcupineHistory(kops, end+1), timeout)
		r := RegisterResult{Key: key, Ops: len(kops), model: model, info: info}
		switch res {
		case porcupine.Ok:
			r.Verdict = Linearizable
		case porcupine.Illegal:
			r.Verdict = Illegal
			vs = append(vs, explainIllegal(key, kops, end+1, info))
		default:
			r.Verdict = Undecided
		}
		results = append(results, r)
	}
	return vs, results
}

// registerInput and registerOutput are an operation as the model steps it.
type registerInput struct {
	kind          Kind
	value, expect int64
}

type registerOutput struct {
	value   int64 // read
	swapped bool  // compare-and-set
	unknown bool  // the client never learnt the result
}

// porcupineHistory turns one register's operations into porcupine's, with
// Unknown ones completing at end. Operation i keeps index i (porcupine
// names operations by their place).
func porcupineHistory(ops []Op, end time.Duration) []porcupine.Operation {
	// porcupine draws one row per client, numbered from 0.
	var clients []int
	for _, op := range ops {
		if !slices.Contains(clients, op.Client) {
			clients = append(clients, op.Client)
		}
	}
	slices.Sort(clients)
	history := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		row, _ := slices.BinarySearch(clients, op.Client)
		history[i] = porcupine.Operation{
			ClientId: row,
			Input:    registerInput{kind: op.Kind, value: op.Value, expect: op.Expect},
			Call:     int64(op.Invoked),
			Output:   registerOutput{value: op.Value, swapped: op.Swapped, unknown: op.Outcome == Unknown},
			Return:   int64(returned(op, end)),
			Metadata: op.String(),
		}
	}
	return history
}

// returned is when op completed for the model: an Unknown one at end.
func returned(op Op, end time.Duration) time.Duration {
	if op.Outcome == Unknown {
		return end
	}
	return op.Completed
}

// registerModel is an integer register that starts at 0.
func registerModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return int64(0) },
		Step: func(state, input, output any) (bool, any) {
			return stepRegister(state.(int64), input.(registerInput), output.(registerOutput))
		},
		Hash: func(state any) uint64 { return uint64(state.(int64)) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(registerInput), output.(registerOutput)
			switch {
			case in.kind == ReadRegister:
				return fmt.Sprintf("read → %d", out.value)
			case in.kind == WriteRegister:
				return fmt.Sprintf("write %d", in.value)
			case out.unknown:
				return fmt.Sprintf("cas %d→%d → unknown", in.expect, in.value)
			case out.swapped:
				return fmt.Sprintf("cas %d→%d → swapped", in.expect, in.value)
			}
			return fmt.Sprintf("cas %d→%d → no swap", in.expect, in.value)
		},
		DescribeState:             func(state any) string { return fmt.Sprint(state) },
		DescribeOperationMetadata: func(info any) string { return fmt.Sprint(info) },
	}
}

// stepRegister is the register's sequential specification: whether the
// operation could answer out from state, and the state after it.
func stepRegister(state int64, in registerInput, out registerOutput) (bool, int64) {
	switch in.kind {
	case ReadRegister:
		return out.value == state, state
	case WriteRegister:
		return true, in.value
	case CompareAndSet:
		matches := state == in.expect
		if !out.unknown && out.swapped != matches {
			return false, state
		}
		if matches {
			return true, in.value
		}
		return true, state
	}
	return false, state
}

// explainIllegal names the operations where the longest order that fits
// stops: the last one it takes, and those that could come next but none
// of which fits.
func explainIllegal(key int, ops []Op, end time.Duration, info porcupine.LinearizationInfo) Violation {
	var longest []int
	if partitions := info.PartialLinearizations(); len(partitions) > 0 {
		for _, l := range partitions[0] {
			// the set comes out of a map: take the first of the longest in order
			if len(l) > len(longest) || len(l) == len(longest) && slices.Compare(l, longest) < 0 {
				longest = l
			}
		}
	}
	state := int64(0)
	taken := make([]bool, len(ops))
	for _, i := range longest {
		op := ops[i]
		_, state = stepRegister(state, registerInput{op.Kind, op.Value, op.Expect},
			registerOutput{op.Value, op.Swapped, op.Outcome == Unknown})
		taken[i] = true
	}
	// What could come next: the ones left that were invoked before the
	// first of them completed.
	var left []Op
	for i, op := range ops {
		if !taken[i] {
			left = append(left, op)
		}
	}
	var next []Op
	if len(left) > 0 {
		first := slices.MinFunc(left, func(a, b Op) int { return cmp.Compare(returned(a, end), returned(b, end)) })
		for _, op := range left {
			if op.Invoked <= returned(first, end) {
				next = append(next, op)
			}
		}
	}
	names := make([]string, len(next))
	for i, op := range next {
		names[i] = op.String()
	}
	v := Violation{Kind: NotLinearizable}
	if len(longest) == 0 {
		v.Explanation = fmt.Sprintf("register %d is not linearizable: from 0, none of %s can come first", key, strings.Join(names, ", "))
		v.Ops = next
		return v
	}
	last := ops[longest[len(longest)-1]]
	v.Explanation = fmt.Sprintf("register %d is not linearizable: the longest order that fits (%d of %d ops) ends with %v, leaving %d, and none of %s can follow",
		key, len(longest), len(ops), last, state, strings.Join(names, ", "))
	v.Ops = append([]Op{last}, next...)
	return v
}

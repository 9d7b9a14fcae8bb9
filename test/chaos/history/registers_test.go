package history

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Register operations: write, read (→ value), cas (expect → value).
func wr(id, client, key int, value int64, from, to int, outcome Outcome) Op {
	return op(id, client, WriteRegister, key, value, from, to, outcome)
}

func rd(id, client, key int, value int64, from, to int) Op {
	return op(id, client, ReadRegister, key, value, from, to, OK)
}

func cas(id, client, key int, expect, value int64, swapped bool, from, to int, outcome Outcome) Op {
	o := op(id, client, CompareAndSet, key, value, from, to, outcome)
	o.Expect, o.Swapped = expect, swapped
	return o
}

func TestRegisters(t *testing.T) {
	tests := []struct {
		name     string
		ops      []Op
		verdicts []Verdict // by key, in order
		wantIDs  [][]int
		explain  string // a part of the violation's explanation
	}{
		{name: "writes, reads and compare-and-set in order",
			ops: []Op{wr(1, 1, 1, 1, 0, 10, OK), rd(2, 2, 1, 1, 20, 30), cas(3, 1, 1, 1, 2, true, 40, 50, OK),
				rd(4, 2, 1, 2, 60, 70), cas(5, 3, 1, 1, 3, false, 80, 90, OK), rd(6, 3, 1, 2, 100, 110)},
			verdicts: []Verdict{Linearizable}},
		{name: "concurrent operations in either order",
			ops:      []Op{wr(1, 1, 1, 1, 0, 50, OK), rd(2, 2, 1, 0, 10, 20), rd(3, 3, 1, 1, 30, 40), rd(4, 2, 1, 1, 60, 70)},
			verdicts: []Verdict{Linearizable}},
		{name: "a read of a value after a later write completed",
			ops:      []Op{wr(1, 1, 1, 1, 0, 10, OK), wr(2, 2, 1, 2, 20, 30, OK), rd(3, 3, 1, 1, 40, 50)},
			verdicts: []Verdict{Illegal}, wantIDs: [][]int{{2, 3}},
			explain: "register 1 is not linearizable: the longest order that fits (2 of 3 ops) ends with " +
				"op 2 (client 2: write 2 to register 1, ok 20ms–30ms via vip on pg1 tl 1), leaving 2, " +
				"and none of op 3 (client 3: read register 1 → 1, ok 40ms–50ms via vip on pg1 tl 1) can follow"},
		{name: "a read of a value never written",
			ops:      []Op{rd(1, 1, 1, 5, 0, 10), wr(2, 2, 1, 5, 20, 30, OK)},
			verdicts: []Verdict{Illegal}, wantIDs: [][]int{{1}},
			explain: "register 1 is not linearizable: from 0, none of op 1 (client 1: read register 1 → 5"},
		{name: "a compare-and-set that swapped what it could not have found",
			ops:      []Op{wr(1, 1, 1, 1, 0, 10, OK), cas(2, 2, 1, 7, 8, true, 20, 30, OK)},
			verdicts: []Verdict{Illegal}, wantIDs: [][]int{{1, 2}}},
		{name: "an unknown write that took effect, one that did not",
			// Completing at the end, op 2 may come before op 3, op 4 after op 5.
			ops: []Op{wr(1, 1, 1, 1, 0, 10, OK), wr(2, 2, 1, 2, 20, 25, Unknown), rd(3, 1, 1, 2, 40, 50),
				wr(4, 3, 1, 3, 60, 65, Unknown), rd(5, 1, 1, 2, 80, 90)},
			verdicts: []Verdict{Linearizable}},
		{name: "unknown compare-and-set, one took effect, one did not",
			ops: []Op{wr(1, 1, 1, 1, 0, 10, OK), cas(2, 2, 1, 1, 2, false, 20, 25, Unknown), rd(3, 1, 1, 2, 40, 50),
				cas(4, 3, 1, 2, 5, false, 60, 65, Unknown), rd(5, 1, 1, 2, 80, 90), wr(6, 1, 1, 6, 100, 110, OK), rd(7, 1, 1, 6, 120, 130)},
			verdicts: []Verdict{Linearizable}},
		{name: "a failed write did not happen",
			ops:      []Op{wr(1, 1, 1, 1, 0, 10, OK), wr(2, 2, 1, 2, 20, 30, Failed), rd(3, 1, 1, 1, 40, 50)},
			verdicts: []Verdict{Linearizable}},
		{name: "a standby's stale read is not held against the register",
			ops: []Op{wr(1, 1, 1, 1, 0, 10, OK), wr(2, 2, 1, 2, 20, 30, OK),
				on(rd(3, 3, 1, 1, 40, 50), ViaPooler, Server{Node: "pg3", SystemID: 7001, Timeline: 1, Standby: true})},
			verdicts: []Verdict{Linearizable}},
		{name: "each register on its own",
			ops: []Op{wr(1, 1, 2, 1, 0, 10, OK), wr(2, 1, 1, 1, 0, 10, OK), rd(3, 2, 1, 1, 20, 30), rd(4, 2, 2, 0, 20, 30),
				op(5, 1, Append, 1, 1, 40, 50, OK)},
			verdicts: []Verdict{Linearizable, Illegal}, wantIDs: [][]int{{1, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, results := Registers(tt.ops, time.Minute)
			var verdicts []Verdict
			for _, r := range results {
				verdicts = append(verdicts, r.Verdict)
			}
			if !reflect.DeepEqual(verdicts, tt.verdicts) {
				t.Fatalf("verdicts %v; want %v\n%v", verdicts, tt.verdicts, vs)
			}
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ops %v; want %v\n%v", got, tt.wantIDs, vs)
			}
			for _, v := range vs {
				if v.Kind != NotLinearizable {
					t.Errorf("kind %s; want %s", v.Kind, NotLinearizable)
				}
			}
			if tt.explain != "" && !strings.Contains(vs[0].Explanation, tt.explain) {
				t.Errorf("explanation\n%s\nlacks\n%s", vs[0].Explanation, tt.explain)
			}
		})
	}
}

// A search that runs out of time is Undecided, not a violation.
func TestRegistersUndecided(t *testing.T) {
	// 30 concurrent writes and 30 concurrent reads of what they wrote, then
	// a read of a value none wrote: proving no order fits means trying
	// them all.
	var ops []Op
	for i := range 30 {
		ops = append(ops, wr(i, i, 1, int64(i+1), 0, 100, OK), rd(100+i, 100+i, 1, int64(i+1), 0, 100))
	}
	ops = append(ops, rd(999, 1, 1, 999, 200, 210))
	vs, results := Registers(ops, 10*time.Millisecond)
	if len(vs) != 0 || len(results) != 1 || results[0].Verdict != Undecided || results[0].Ops != len(ops) {
		t.Errorf("violations %v, results %+v; want none and one Undecided of %d ops", vs, results, len(ops))
	}
}

func TestRegistersVisualize(t *testing.T) {
	_, results := Registers([]Op{wr(1, 1, 1, 1, 0, 10, OK), wr(2, 2, 1, 2, 20, 30, OK), rd(3, 3, 1, 1, 40, 50)}, time.Minute)
	var page bytes.Buffer
	if err := results[0].Visualize(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<html", "read → 1", "write 2", "op 3 (client 3: read register 1 → 1"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if err := (RegisterResult{Key: 4}).Visualize(&page); err == nil {
		t.Error("a result without a search visualized")
	}
}

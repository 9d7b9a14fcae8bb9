package history

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Invariant 2: no acknowledged commit lost.
func TestLostWrites(t *testing.T) {
	final := func(pg1, pg3 []int64) []NodeState {
		return []NodeState{{Node: "pg1", Lists: map[int][]int64{1: pg1}}, {Node: "pg3", Standby: true, Lists: map[int][]int64{1: pg3}}}
	}
	tests := []struct {
		name    string
		ops     []Op
		final   []NodeState
		want    []ViolationKind
		wantIDs [][]int
		explain string // a part of the first violation's explanation
	}{
		{name: "every acknowledged append everywhere",
			ops:   []Op{op(1, 1, Append, 1, 11, 0, 5, OK), op(2, 2, Append, 1, 12, 1, 6, OK)},
			final: final([]int64{11, 12}, []int64{11, 12})},
		{name: "an acknowledged append missing on a standby",
			ops:   []Op{op(1, 1, Append, 1, 11, 0, 5, OK), op(2, 2, Append, 1, 12, 1, 6, OK)},
			final: final([]int64{11, 12}, []int64{11}),
			want:  []ViolationKind{LostWrite}, wantIDs: [][]int{{2}},
			explain: "op 2 (client 2: append 12 to list 1, ok 1ms–6ms via vip on pg1 tl 1) was acknowledged, but id 12 is missing from list 1 on pg3 (standby)"},
		{name: "an acknowledged append missing everywhere, its key too",
			ops:   []Op{op(1, 1, Append, 2, 21, 0, 5, OK)},
			final: final([]int64{11}, []int64{11}),
			want:  []ViolationKind{LostWrite}, wantIDs: [][]int{{1}},
			explain: "missing from list 2 on pg1 (primary), pg3 (standby)"},
		{name: "a failed append took effect",
			ops:   []Op{op(1, 1, Append, 1, 11, 0, 5, OK), op(2, 2, Append, 1, 12, 1, 6, Failed)},
			final: final([]int64{11, 12}, []int64{11, 12}),
			want:  []ViolationKind{FailedWriteTookEffect}, wantIDs: [][]int{{2}},
			explain: "failed, yet id 12 is in list 1 on pg1 (primary), pg3 (standby)"},
		{name: "a failed append absent, unknown appends either way",
			ops: []Op{op(1, 1, Append, 1, 11, 0, 5, Failed), op(2, 2, Append, 1, 12, 1, 6, Unknown),
				op(3, 3, Append, 1, 13, 1, 6, Unknown)},
			final: final([]int64{12}, []int64{12})},
		{name: "reads and registers are not appends",
			ops:   []Op{read(1, 1, 1, []int64{99}, 0, 1), op(2, 1, WriteRegister, 1, 5, 2, 3, OK)},
			final: final(nil, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := LostWrites(tt.ops, tt.final)
			if got := kinds(vs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("kinds %v; want %v\n%v", got, tt.want, vs)
			}
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ops %v; want %v", got, tt.wantIDs)
			}
			if tt.explain != "" && !strings.Contains(vs[0].Explanation, tt.explain) {
				t.Errorf("explanation %q lacks %q", vs[0].Explanation, tt.explain)
			}
		})
	}
}

// Invariant 1: one writable primary.
func TestSplitBrain(t *testing.T) {
	onPg2 := func(o Op) Op { return on(o, ViaVIP, pg2tl2) }
	tests := []struct {
		name    string
		ops     []Op
		want    []ViolationKind
		wantIDs [][]int
		explain string
	}{
		{name: "a failover: timeline 1, then timeline 2",
			ops: []Op{op(1, 1, Append, 1, 11, 0, 10, OK), op(2, 2, WriteRegister, 1, 5, 5, 20, OK),
				onPg2(op(3, 1, Append, 1, 12, 30, 40, OK)), onPg2(op(4, 2, Append, 1, 13, 35, 45, OK))}},
		{name: "the old timeline acknowledges a write concurrent with the new one's",
			ops: []Op{onPg2(op(1, 1, Append, 1, 11, 0, 100, OK)), op(2, 2, Append, 1, 12, 90, 110, OK)}},
		{name: "the old timeline acknowledges a write invoked after the new one's",
			ops: []Op{op(1, 1, Append, 1, 11, 0, 10, OK), onPg2(op(2, 1, Append, 1, 12, 50, 100, OK)),
				op(3, 2, Append, 1, 13, 120, 130, OK)},
			want: []ViolationKind{SplitBrainTimeline}, wantIDs: [][]int{{2, 3}},
			explain: "op 3 (client 2: append 13 to list 1, ok 120ms–130ms via vip on pg1 tl 1) was acknowledged on timeline 1 " +
				"though invoked after op 2 (client 1: append 12 to list 1, ok 50ms–100ms via vip on pg2 tl 2) had been acknowledged on timeline 2"},
		{name: "the old timeline swaps a register after the new one's write",
			ops: func() []Op {
				cas := op(2, 2, CompareAndSet, 1, 6, 120, 130, OK)
				cas.Swapped = true
				return []Op{onPg2(op(1, 1, WriteRegister, 1, 5, 50, 100, OK)), cas}
			}(),
			want: []ViolationKind{SplitBrainTimeline}, wantIDs: [][]int{{1, 2}}},
		{name: "the old timeline answers reads, failures and a cas that changed nothing",
			ops: []Op{onPg2(op(1, 1, Append, 1, 12, 50, 100, OK)), read(2, 2, 1, nil, 120, 130),
				op(3, 2, CompareAndSet, 1, 6, 140, 150, OK), op(4, 2, Append, 1, 13, 160, 170, Failed)}},
		{name: "writes from two clusters",
			ops: []Op{op(1, 1, Append, 1, 11, 0, 10, OK), op(2, 1, Append, 1, 12, 20, 30, OK),
				on(op(3, 2, Append, 1, 13, 5, 40, OK), ViaPooler, pgXtl1), on(op(4, 2, Append, 1, 14, 50, 60, OK), ViaPooler, pgXtl1)},
			want: []ViolationKind{SplitBrainSystemID}, wantIDs: [][]int{{1, 3}},
			explain: "acknowledged writes from two clusters: op 1 (client 1: append 11 to list 1, ok 0s–10ms via vip on pg1 tl 1) on system 7001 " +
				"and op 3 (client 2: append 13 to list 1, ok 5ms–40ms via pooler on pgX tl 1) on system 9009"},
		{name: "a server that did not say its system or timeline",
			ops: []Op{onPg2(op(1, 1, Append, 1, 11, 0, 10, OK)), on(op(2, 1, Append, 1, 12, 20, 30, OK), ViaVIP, Server{Node: "pg1"})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := SplitBrain(tt.ops)
			if got := kinds(vs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("kinds %v; want %v\n%v", got, tt.want, vs)
			}
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ops %v; want %v", got, tt.wantIDs)
			}
			if tt.explain != "" && vs[0].Explanation != tt.explain {
				t.Errorf("explanation\n got %s\nwant %s", vs[0].Explanation, tt.explain)
			}
		})
	}
}

// A read that saw an append never acknowledged and gone at the end is a
// vanished read; one whose append is still somewhere, or was acknowledged,
// or with no final state to compare, is not.
func TestVanishedReads(t *testing.T) {
	final := []NodeState{{Node: "pg2", Lists: map[int][]int64{1: {11, 13}}}, {Node: "pg3", Standby: true, Lists: map[int][]int64{1: {11}}}}
	ops := []Op{
		op(1, 1, Append, 1, 11, 0, 5, OK),
		op(2, 2, Append, 1, 12, 10, 2010, Unknown), // seen, then gone
		read(3, 3, 1, []int64{11, 12}, 20, 25),
		op(4, 2, Append, 1, 13, 30, 2030, Unknown), // seen, and still on pg2
		read(5, 3, 1, []int64{11, 13}, 40, 45),
		read(6, 3, 1, []int64{11}, 50, 55),
	}
	vs := VanishedReads(ops, final)
	if got := ids(vs); len(got) != 1 || !slices.Equal(got[0], []int{3, 2}) {
		t.Fatalf("violations %v; want read 3 naming append 2", vs)
	}
	if vs[0].Kind != VanishedRead || !strings.Contains(vs[0].Explanation, "never acknowledged and on no node at the end") {
		t.Errorf("violation %v", vs[0])
	}
	if vs := VanishedReads(ops, nil); len(vs) != 0 {
		t.Errorf("without a final state: %v", vs)
	}
	// Check reports it among the rest.
	if r := Check(History{Ops: ops, Final: final}, Options{}); !slices.Contains(kinds(r.Violations), VanishedRead) {
		t.Errorf("Check: %v", r.Violations)
	}
}

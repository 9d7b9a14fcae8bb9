package history

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// viaPooler sends an operation through the pooler, in session 1, and has
// pg3 (a standby) answer a read and pg2 (the primary) anything else.
func viaPooler(o Op) Op {
	o.Session = 1
	if o.Kind == ReadList {
		return on(o, ViaPooler, pg3sb)
	}
	return on(o, ViaPooler, pg2tl2)
}

// The pooler's read_your_writes promise.
func TestReadYourWrites(t *testing.T) {
	appended := viaPooler(op(1, 1, Append, 1, 11, 0, 10, OK))
	tests := []struct {
		name    string
		ops     []Op
		window  time.Duration
		wantIDs [][]int
		explain string
	}{
		{name: "the client reads its append",
			ops: []Op{appended, viaPooler(read(2, 1, 1, []int64{11}, 20, 30))}},
		{name: "the client misses its append",
			ops:     []Op{appended, viaPooler(op(2, 1, Append, 1, 12, 12, 15, OK)), viaPooler(read(3, 1, 1, []int64{11}, 20, 30))},
			wantIDs: [][]int{{2, 3}},
			explain: "op 3 (client 1: read list 1 → [11], ok 20ms–30ms via pooler on pg3 tl 2) missed its own session's acknowledged " +
				"op 2 (client 1: append 12 to list 1, ok 12ms–15ms via pooler on pg2 tl 2)"},
		{name: "a read invoked before the append completed may miss it",
			ops: []Op{appended, viaPooler(read(2, 1, 1, nil, 9, 30))}},
		{name: "another client's append is not promised",
			ops: []Op{appended, viaPooler(read(2, 2, 1, nil, 20, 30))}},
		{name: "a new session is not bound by the last one's writes",
			ops: func() []Op {
				r := viaPooler(read(2, 1, 1, nil, 20, 30))
				r.Session = 2
				return []Op{appended, r}
			}()},
		{name: "the database VIP's reads and writes are not the pooler's promise",
			ops: []Op{appended, read(2, 1, 1, nil, 20, 30), op(3, 1, Append, 1, 13, 40, 50, OK), viaPooler(read(4, 1, 1, []int64{11}, 60, 70))}},
		{name: "appends that failed or may not have happened are not promised",
			ops: []Op{viaPooler(op(1, 1, Append, 1, 11, 0, 10, Failed)), viaPooler(op(2, 1, Append, 1, 12, 0, 10, Unknown)),
				viaPooler(read(3, 1, 1, nil, 20, 30))}},
		{name: "past the window the promise is kept by the lag limits instead",
			ops:    []Op{appended, viaPooler(read(2, 1, 1, nil, 1990, 2001))},
			window: 2 * time.Second},
		{name: "within the window it holds",
			ops:    []Op{appended, viaPooler(read(2, 1, 1, nil, 1990, 1999))},
			window: 2 * time.Second, wantIDs: [][]int{{1, 2}}},
		{name: "reads of another list do not count",
			ops: []Op{appended, viaPooler(read(2, 1, 2, nil, 20, 30))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := ReadYourWrites(tt.ops, tt.window)
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Fatalf("ops %v; want %v\n%v", got, tt.wantIDs, vs)
			}
			for _, v := range vs {
				if v.Kind != StaleRead {
					t.Errorf("kind %s; want %s", v.Kind, StaleRead)
				}
			}
			if tt.explain != "" && vs[0].Explanation != tt.explain {
				t.Errorf("explanation\n got %s\nwant %s", vs[0].Explanation, tt.explain)
			}
		})
	}
}

func TestGarbageReads(t *testing.T) {
	tried := []Op{op(1, 1, Append, 1, 11, 0, 10, OK), op(2, 1, Append, 1, 12, 0, 10, Failed), op(3, 1, Append, 1, 13, 0, 10, Unknown),
		op(4, 1, Append, 2, 21, 0, 10, OK), wr(5, 1, 1, 5, 0, 10, Unknown), cas(6, 1, 1, 5, 6, false, 0, 10, Failed)}
	tests := []struct {
		name    string
		ops     []Op
		final   []NodeState
		wantIDs [][]int
		explain string
	}{
		{name: "ids and values some operation tried to write, whatever became of it",
			ops:   slices.Concat(tried, []Op{read(10, 2, 1, []int64{11, 12, 13}, 20, 30), rd(11, 2, 1, 0, 20, 30), rd(12, 2, 1, 5, 30, 40), rd(13, 2, 1, 6, 40, 50)}),
			final: []NodeState{{Node: "pg1", Lists: map[int][]int64{1: {11, 13}, 2: {21}}}}},
		{name: "an id no append tried",
			ops:     slices.Concat(tried, []Op{read(10, 2, 1, []int64{11, 99}, 20, 30)}),
			wantIDs: [][]int{{10}},
			explain: "op 10 (client 2: read list 1 → [11 99], ok 20ms–30ms via vip on pg1 tl 1) returned ids [99] that no append to list 1 tried to write"},
		{name: "an id appended to another list",
			ops:     slices.Concat(tried, []Op{read(10, 2, 2, []int64{21, 11}, 20, 30)}),
			wantIDs: [][]int{{10}}},
		{name: "a register value nothing tried to set",
			ops:     slices.Concat(tried, []Op{rd(10, 2, 1, 21, 20, 30), rd(11, 2, 2, 5, 20, 30)}),
			wantIDs: [][]int{{10}, {11}},
			explain: "returned 21, which nothing tried to set"},
		{name: "a node holding an id no append tried",
			ops:     tried,
			final:   []NodeState{{Node: "pg1", Lists: map[int][]int64{1: {11}}}, {Node: "pg3", Standby: true, Lists: map[int][]int64{2: {21, 77}}}},
			wantIDs: [][]int{nil},
			explain: "pg3 (standby) holds ids [77] in list 2 at the end, which no append tried to write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := GarbageReads(tt.ops, tt.final)
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Fatalf("ops %v; want %v\n%v", got, tt.wantIDs, vs)
			}
			for _, v := range vs {
				if v.Kind != GarbageRead {
					t.Errorf("kind %s; want %s", v.Kind, GarbageRead)
				}
			}
			if tt.explain != "" && !strings.Contains(vs[0].Explanation, tt.explain) {
				t.Errorf("explanation\n%s\nlacks\n%s", vs[0].Explanation, tt.explain)
			}
		})
	}
}

func TestListOrder(t *testing.T) {
	tests := []struct {
		name    string
		ops     []Op
		final   []NodeState
		want    []ViolationKind
		wantIDs [][]int
		explain string
	}{
		{name: "reads of a growing list, a lagging standby, the end",
			ops: []Op{read(1, 1, 1, nil, 0, 10), read(2, 1, 1, []int64{11}, 10, 20), on(read(3, 2, 1, []int64{11}, 30, 40), ViaPooler, pg3sb),
				read(4, 1, 1, []int64{11, 12, 13}, 30, 40), read(5, 1, 2, []int64{21}, 30, 40)},
			final: []NodeState{{Node: "pg1", Lists: map[int][]int64{1: {11, 12, 13, 14}, 2: {21}}}, {Node: "pg3", Standby: true, Lists: map[int][]int64{1: {11, 12, 13, 14}}}}},
		{name: "two reads in different orders",
			ops:     []Op{read(1, 1, 1, []int64{11, 12}, 0, 10), read(2, 2, 1, []int64{11, 13, 12}, 10, 20)},
			want:    []ViolationKind{IncompatibleOrder},
			wantIDs: [][]int{{1, 2}},
			explain: "op 1 (client 1: read list 1 → [11 12], ok 0s–10ms via vip on pg1 tl 1) and " +
				"op 2 (client 2: read list 1 → [11 13 12], ok 10ms–20ms via vip on pg1 tl 1) disagree on list 1 from position 2 (12 against 13)"},
		{name: "a read saw an id the end no longer has",
			ops:     []Op{read(1, 1, 1, []int64{11, 12}, 0, 10)},
			final:   []NodeState{{Node: "pg2", Lists: map[int][]int64{1: {11, 13, 14}}}},
			want:    []ViolationKind{IncompatibleOrder},
			wantIDs: [][]int{{1}},
			explain: "and pg2 (primary) at the end ([11 13 14]) disagree on list 1 from position 2 (12 against 13)"},
		{name: "an id twice",
			ops:     []Op{read(1, 1, 1, []int64{11, 12, 11}, 0, 10)},
			final:   []NodeState{{Node: "pg2", Lists: map[int][]int64{1: {11, 12, 11}}}},
			want:    []ViolationKind{DuplicateAppend, DuplicateAppend},
			wantIDs: [][]int{{1}, nil},
			explain: "has ids [11] in list 1 more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := ListOrder(tt.ops, tt.final)
			if got := kinds(vs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("kinds %v; want %v\n%v", got, tt.want, vs)
			}
			if got := ids(vs); !reflect.DeepEqual(got, tt.wantIDs) {
				t.Errorf("ops %v; want %v", got, tt.wantIDs)
			}
			if tt.explain != "" && !strings.Contains(vs[0].Explanation, tt.explain) {
				t.Errorf("explanation\n%s\nlacks\n%s", vs[0].Explanation, tt.explain)
			}
		})
	}
}

// A standby the pooler had marked down before a read and still after it
// must not answer it; one it marked usable in between, or only on one
// side, or a sample from another pooler, proves nothing.
func TestMarkedReads(t *testing.T) {
	mark := func(at int, pooler string, usable bool) PoolerMark {
		m := PoolerMark{At: time.Duration(at) * ms, Pooler: pooler, Node: "pg3", Usable: usable}
		if !usable {
			m.Why = "down"
		}
		return m
	}
	down := []PoolerMark{mark(0, "p1", true), mark(500, "p1", false), mark(1000, "p1", false), mark(1500, "p1", false), mark(2000, "p1", true)}
	ops := []Op{
		on(read(1, 1, 1, nil, 600, 700), ViaPooler, pg3sb),   // marked on both sides: a violation
		on(read(2, 1, 1, nil, 1800, 2100), ViaPooler, pg3sb), // usable again before it completed
		on(read(3, 1, 1, nil, 100, 200), ViaPooler, pg3sb),   // usable before
		on(read(4, 1, 1, nil, 600, 700), ViaVIP, pg3sb),      // not through the pooler
		on(read(5, 1, 1, nil, 600, 700), ViaPooler, pg2tl2),  // a primary
	}
	vs := MarkedReads(ops, down)
	if got := ids(vs); len(got) != 1 || got[0][0] != 1 {
		t.Fatalf("violations %v; want read 1 only", vs)
	}
	if !strings.Contains(vs[0].Explanation, "pooler p1 had marked unusable (down) from 0.5s to 1.0s") {
		t.Errorf("explanation %q", vs[0].Explanation)
	}
	// Only the other pooler's sample after it: no verdict.
	other := []PoolerMark{mark(500, "p1", false), mark(1000, "p2", false)}
	if vs := MarkedReads(ops[:1], other); len(vs) != 0 {
		t.Errorf("a sample of another pooler counted: %v", vs)
	}
	// A clean history: no marks, no violations.
	if vs := MarkedReads(ops, nil); len(vs) != 0 {
		t.Errorf("no marks: %v", vs)
	}
}

package history

import (
	"reflect"
	"testing"
	"time"
)

// failover is a clean run: pg1 (timeline 1) crashes at 1s, pg2 is promoted
// (timeline 2), pg1 comes back as a standby; writes through both
// addresses, reads on a standby through the pooler, a write of unknown
// outcome that took effect and one that failed.
func failover() History {
	pooled := func(o Op, session int, s Server) Op {
		o.Session = session
		return on(o, ViaPooler, s)
	}
	on2 := func(o Op) Op { return on(o, ViaVIP, pg2tl2) }
	return History{
		Started: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Ops: []Op{
			op(1, 1, Append, 1, 11, 0, 10, OK),
			pooled(op(2, 2, Append, 1, 12, 5, 15, OK), 1, pg1tl1),
			wr(3, 3, 1, 1, 20, 30, OK),
			pooled(read(4, 2, 1, []int64{11, 12}, 40, 50), 1, pg3sb),
			op(5, 1, Append, 1, 13, 990, 3000, Unknown), // pg1 crashed under it: it committed
			pooled(op(6, 2, Append, 1, 14, 1000, 1020, Failed), 1, Server{}),
			wr(7, 3, 1, 2, 1000, 3000, Unknown), // it did not commit
			on2(op(8, 1, Append, 1, 15, 3100, 3200, OK)),
			on2(rd(9, 3, 1, 1, 3100, 3150)),
			pooled(op(10, 2, Append, 1, 16, 3300, 3400, OK), 2, pg2tl2),
			pooled(read(11, 2, 1, []int64{11, 12, 13, 15, 16}, 3500, 3600), 2, pg3sb),
			on2(cas(12, 3, 1, 1, 5, true, 3600, 3700, OK)),
			on2(rd(13, 3, 1, 5, 3800, 3900)),
		},
		Faults: []Fault{{Kind: "host-crash", Target: "pg1", Start: 1000 * ms, Healed: 3000 * ms}},
		Final: []NodeState{
			{Node: "pg1", Standby: true, Lists: map[int][]int64{1: {11, 12, 13, 15, 16}}},
			{Node: "pg2", Lists: map[int][]int64{1: {11, 12, 13, 15, 16}}},
			{Node: "pg3", Standby: true, Lists: map[int][]int64{1: {11, 12, 13, 15, 16}}},
		},
	}
}

func TestCheckCleanHistory(t *testing.T) {
	h := failover()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	r := Check(h, Options{RegisterTimeout: time.Minute, ReadYourWritesWindow: 2 * time.Second})
	if len(r.Violations) != 0 {
		t.Errorf("violations in a clean history: %v", r.Violations)
	}
	if len(r.Registers) != 1 || r.Registers[0].Verdict != Linearizable || r.Registers[0].Ops != 5 {
		t.Errorf("registers %+v; want register 1 linearizable over 5 ops (the unknown write kept)", r.Registers)
	}
	want := []Outage{{Fault: h.Faults[0], ToWrite: 2200 * ms, Wrote: true, ToRead: 2150 * ms, Read: true, Errors: 3}}
	if !reflect.DeepEqual(r.Outages, want) {
		t.Errorf("outages %+v; want %+v", r.Outages, want)
	}
	if len(r.Summary) != 1 || r.Summary[0].Faults != 1 || r.Summary[0].ToWrite.Max != 2200*ms {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestCheckOrdersViolationsByStrength(t *testing.T) {
	h := failover()
	// pg3 lost 16 and took the failed 14; pg1 took a write after pg2 had.
	h.Final[2].Lists[1] = []int64{11, 12, 13, 14, 15}
	h.Ops = append(h.Ops, on(op(14, 4, Append, 1, 17, 3500, 3600, OK), ViaVIP, pg1tl1))
	r := Check(h, Options{})
	want := []ViolationKind{SplitBrainTimeline, LostWrite, LostWrite, IncompatibleOrder, FailedWriteTookEffect}
	if got := kinds(r.Violations); !reflect.DeepEqual(got, want) {
		t.Errorf("kinds %v; want %v\n%v", got, want, r.Violations)
	}
}

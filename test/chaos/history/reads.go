package history

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ReadYourWrites checks the pooler's read_your_writes promise: a read of
// a list through the pooler, invoked after an acknowledged append of the
// same client to that list, through the pooler, in the same session, had
// completed, contains the append's id. The pooler keeps the promise for
// window after a write (0: for ever), by its own clock, so only a read
// that completed within window of the append's invocation counts: the
// pooler saw both inside that span, whatever its clock said.
func ReadYourWrites(ops []Op, window time.Duration) []Violation {
	type stream struct{ client, session, key int }
	appends := map[stream][]Op{}
	for _, op := range ops {
		if op.Kind == Append && op.Outcome == OK && op.Path == ViaPooler {
			s := stream{op.Client, op.Session, op.Key}
			appends[s] = append(appends[s], op)
		}
	}
	var vs []Violation
	for _, r := range ops {
		if r.Kind != ReadList || r.Outcome != OK || r.Path != ViaPooler {
			continue
		}
		var missed []Op
		for _, a := range appends[stream{r.Client, r.Session, r.Key}] {
			bound := window <= 0 || r.Completed-a.Invoked < window
			if a.Completed < r.Invoked && bound && !slices.Contains(r.List, a.Value) {
				missed = append(missed, a)
			}
		}
		if len(missed) == 0 {
			continue
		}
		names := make([]string, len(missed))
		for i, a := range missed {
			names[i] = a.String()
		}
		vs = append(vs, Violation{StaleRead, fmt.Sprintf("%v missed its own session's acknowledged %s",
			r, strings.Join(names, ", ")), append(missed, r)})
	}
	return vs
}

// GarbageReads checks that no read, and no node at the end, holds an id no
// append to that list tried to write (whatever the append's outcome), and
// that no register read returns a value no write or compare-and-set tried
// to set (or the initial 0).
func GarbageReads(ops []Op, final []NodeState) []Violation {
	type keyed struct {
		register bool
		key      int
	}
	tried := map[keyed]map[int64]bool{}
	for _, op := range ops {
		if op.Kind == Append || op.Kind == WriteRegister || op.Kind == CompareAndSet {
			k := keyed{op.Kind.IsRegister(), op.Key}
			if tried[k] == nil { // a register starts at 0, a list empty
				tried[k] = map[int64]bool{0: op.Kind.IsRegister()}
			}
			tried[k][op.Value] = true
		}
	}
	garbage := func(list []int64, key int) []int64 {
		var g []int64
		for _, id := range list {
			if !tried[keyed{false, key}][id] {
				g = append(g, id)
			}
		}
		return g
	}
	var vs []Violation
	for _, op := range ops {
		switch {
		case op.Outcome != OK:
		case op.Kind == ReadList:
			if g := garbage(op.List, op.Key); len(g) > 0 {
				vs = append(vs, Violation{GarbageRead, fmt.Sprintf("%v returned ids %v that no append to list %d tried to write",
					op, g, op.Key), []Op{op}})
			}
		case op.Kind == ReadRegister && op.Value != 0 && !tried[keyed{true, op.Key}][op.Value]:
			vs = append(vs, Violation{GarbageRead, fmt.Sprintf("%v returned %d, which nothing tried to set",
				op, op.Value), []Op{op}})
		}
	}
	for _, n := range final {
		for _, key := range slices.Sorted(maps.Keys(n.Lists)) {
			if g := garbage(n.Lists[key], key); len(g) > 0 {
				vs = append(vs, Violation{GarbageRead, fmt.Sprintf("%s holds ids %v in list %d at the end, which no append tried to write",
					nodeText(n), g, key), nil})
			}
		}
	}
	return vs
}

// ListOrder checks that every read of a list (and every node's list at the
// end) is a prefix of every longer one: with one primary a list only
// grows at its end, and standbys replay the same WAL, so two reads that
// part show a write undone or applied in two orders. It also finds an id
// appended twice.
func ListOrder(ops []Op, final []NodeState) []Violation {
	type seen struct {
		op   *Op    // the read, or nil for a node at the end
		node string // the node at the end
		list []int64
	}
	name := func(s seen) string {
		if s.op != nil {
			return s.op.String()
		}
		return s.node + " at the end (" + listText(s.list) + ")"
	}
	involved := func(ss ...seen) []Op {
		var ops []Op
		for _, s := range ss {
			if s.op != nil {
				ops = append(ops, *s.op)
			}
		}
		return ops
	}
	byKey := map[int][]seen{}
	for i, op := range ops {
		if op.Kind == ReadList && op.Outcome == OK {
			byKey[op.Key] = append(byKey[op.Key], seen{op: &ops[i], list: op.List})
		}
	}
	for _, n := range final {
		for key, list := range n.Lists {
			byKey[key] = append(byKey[key], seen{node: nodeText(n), list: list})
		}
	}
	var vs []Violation
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		all := byKey[key]
		for _, s := range all {
			if d := duplicates(s.list); len(d) > 0 {
				vs = append(vs, Violation{DuplicateAppend, fmt.Sprintf("%s has ids %v in list %d more than once",
					name(s), d, key), involved(s)})
			}
		}
		// Sorted by length, each must be a prefix of the next.
		slices.SortStableFunc(all, func(a, b seen) int { return cmp.Compare(len(a.list), len(b.list)) })
		for i := 1; i < len(all); i++ {
			short, long := all[i-1], all[i]
			at := -1 // where they part
			for j, id := range short.list {
				if long.list[j] != id {
					at = j
					break
				}
			}
			if at < 0 {
				continue
			}
			vs = append(vs, Violation{IncompatibleOrder, fmt.Sprintf("%s and %s disagree on list %d from position %d (%d against %d)",
				name(short), name(long), key, at+1, short.list[at], long.list[at]), involved(short, long)})
		}
	}
	return vs
}

// duplicates lists the ids in list more than once, in order.
func duplicates(list []int64) []int64 {
	count := make(map[int64]int, len(list))
	var d []int64
	for _, id := range list {
		if count[id]++; count[id] == 2 {
			d = append(d, id)
		}
	}
	return d
}

// MarkedReads checks that no standby the pooler had marked unusable
// answered a read through it. Marks are samples, so a read counts only
// when the same pooler's samples of that node on both sides of it, and
// every one between, say unusable: the pooler decided so before the read
// and had not changed its mind after it.
func MarkedReads(ops []Op, marks []PoolerMark) []Violation {
	byNode := map[string][]PoolerMark{}
	for _, m := range marks {
		byNode[m.Node] = append(byNode[m.Node], m)
	}
	for _, ms := range byNode {
		slices.SortStableFunc(ms, func(a, b PoolerMark) int { return cmp.Compare(a.At, b.At) })
	}
	var vs []Violation
	for _, r := range ops {
		if r.Outcome != OK || r.Path != ViaPooler || r.Kind.IsWrite() || !r.Server.Standby || r.Server.Node == "" {
			continue
		}
		ms := byNode[r.Server.Node]
		// before: the last sample at or before the invocation.
		before, _ := slices.BinarySearchFunc(ms, r.Invoked+1, func(m PoolerMark, t time.Duration) int { return cmp.Compare(m.At, t) })
		before--
		if before < 0 || ms[before].Usable {
			continue
		}
		marked := true
		after := -1
		for i := before + 1; i < len(ms); i++ {
			if ms[i].Pooler != ms[before].Pooler {
				continue
			}
			if ms[i].Usable {
				marked = false
				break
			}
			if ms[i].At >= r.Completed {
				after = i
				break
			}
		}
		if !marked || after < 0 {
			continue
		}
		vs = append(vs, Violation{MarkedRead, fmt.Sprintf("%v was answered by %s, which pooler %s had marked unusable (%s) from %.1fs to %.1fs",
			r, r.Server.Node, ms[before].Pooler, ms[before].Why, ms[before].At.Seconds(), ms[after].At.Seconds()), []Op{r}})
	}
	return vs
}

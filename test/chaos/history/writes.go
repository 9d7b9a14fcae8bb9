package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// LostWrites checks ARCHITECTURE.md's invariant 2 on the list-append workload:
// every acknowledged append is in its list on every node at the end (the
// final primary and each standby, read once converged). An append that
// failed with a definite error must be on none; one that is reports the
// weaker FailedWriteTookEffect. An Unknown append may be either.
func LostWrites(ops []Op, final []NodeState) []Violation {
	held := make([]map[int]map[int64]bool, len(final)) // node, key, id
	for i, n := range final {
		held[i] = make(map[int]map[int64]bool, len(n.Lists))
		for key, list := range n.Lists {
			held[i][key] = make(map[int64]bool, len(list))
			for _, id := range list {
				held[i][key][id] = true
			}
		}
	}
	var vs []Violation
	for _, op := range ops {
		if op.Kind != Append || op.Outcome == Unknown {
			continue
		}
		// where the append is wrongly absent (ok) or wrongly present (failed)
		var where []string
		for i, n := range final {
			if held[i][op.Key][op.Value] != (op.Outcome == OK) {
				where = append(where, nodeText(n))
			}
		}
		if len(where) == 0 {
			continue
		}
		if op.Outcome == OK {
			vs = append(vs, Violation{LostWrite, fmt.Sprintf("%v was acknowledged, but id %d is missing from list %d on %s",
				op, op.Value, op.Key, strings.Join(where, ", ")), []Op{op}})
		} else {
			vs = append(vs, Violation{FailedWriteTookEffect, fmt.Sprintf("%v failed, yet id %d is in list %d on %s",
				op, op.Value, op.Key, strings.Join(where, ", ")), []Op{op}})
		}
	}
	return vs
}

func nodeText(n NodeState) string {
	if n.Standby {
		return n.Node + " (standby)"
	}
	return n.Node + " (primary)"
}

// tookEffect: an acknowledged operation that changed data, so the server
// that acknowledged it was a primary (a compare-and-set that did not swap
// changed nothing).
func tookEffect(op Op) bool {
	return op.Outcome == OK && (op.Kind == Append || op.Kind == WriteRegister || op.Kind == CompareAndSet && op.Swapped)
}

// SplitBrain checks ARCHITECTURE.md's invariant 1 from the writes the clients
// saw acknowledged: they all come from one cluster (one system
// identifier), and once a write on timeline T has been acknowledged, no
// write invoked later is acknowledged on a timeline older than T (an old
// primary still took writes after a newer one had). Timelines compare
// within one system identifier (an unreported one counts as one more);
// writes whose server reported no timeline are left out of that part.
func SplitBrain(ops []Op) []Violation {
	var writes []Op
	for _, op := range ops {
		if tookEffect(op) {
			writes = append(writes, op)
		}
	}
	slices.SortStableFunc(writes, func(a, b Op) int { return cmp.Compare(a.Completed, b.Completed) })

	var vs []Violation
	// The first write of each cluster, in the order they appeared.
	var firsts []Op
	for _, w := range writes {
		if w.Server.SystemID != 0 && !slices.ContainsFunc(firsts, func(f Op) bool { return f.Server.SystemID == w.Server.SystemID }) {
			firsts = append(firsts, w)
		}
	}
	for _, f := range firsts[min(1, len(firsts)):] {
		vs = append(vs, Violation{SplitBrainSystemID, fmt.Sprintf("acknowledged writes from two clusters: %v on system %d and %v on system %d",
			firsts[0], firsts[0].Server.SystemID, f, f.Server.SystemID), []Op{firsts[0], f}})
	}

	// Per cluster, the newest timeline acknowledged by each completion
	// time; a write invoked later on an older timeline is the finding.
	byCluster := map[uint64][]Op{}
	for _, w := range writes {
		if w.Server.Timeline != 0 {
			byCluster[w.Server.SystemID] = append(byCluster[w.Server.SystemID], w)
		}
	}
	newest := map[uint64][]int{} // index of the newest timeline's first write among the first i+1
	for id, ws := range byCluster {
		n := make([]int, len(ws))
		for i, w := range ws {
			n[i] = i
			if i > 0 && ws[n[i-1]].Server.Timeline >= w.Server.Timeline {
				n[i] = n[i-1]
			}
		}
		newest[id] = n
	}
	for _, w := range ops {
		if !tookEffect(w) || w.Server.Timeline == 0 {
			continue
		}
		ws := byCluster[w.Server.SystemID]
		before, _ := slices.BinarySearchFunc(ws, w.Invoked, func(o Op, t time.Duration) int {
			if o.Completed < t {
				return -1
			}
			return 1
		})
		if before == 0 {
			continue
		}
		if newer := ws[newest[w.Server.SystemID][before-1]]; newer.Server.Timeline > w.Server.Timeline {
			vs = append(vs, Violation{SplitBrainTimeline, fmt.Sprintf("%v was acknowledged on timeline %d though invoked after %v had been acknowledged on timeline %d",
				w, w.Server.Timeline, newer, newer.Server.Timeline), []Op{newer, w}})
		}
	}
	return vs
}

// VanishedReads finds reads that saw an append which was never
// acknowledged and is on no node at the end: the primary showed a commit
// that its synchronous standby never confirmed, and the failover that
// followed dropped it. PostgreSQL makes a commit visible to every session
// before synchronous replication acknowledges it, so such a read is
// possible for any client of a primary that is cut off or dies while a
// commit waits; no acknowledged write is lost, but the read saw data that
// never became durable. One violation per read; nothing without a final
// state (a campaign cut short).
func VanishedReads(ops []Op, final []NodeState) []Violation {
	if len(final) == 0 {
		return nil
	}
	type keyed struct {
		key int
		id  int64
	}
	onSomeNode := map[keyed]bool{}
	for _, n := range final {
		for key, list := range n.Lists {
			for _, id := range list {
				onSomeNode[keyed{key, id}] = true
			}
		}
	}
	appends := map[keyed]Op{}
	for _, op := range ops {
		if op.Kind == Append {
			appends[keyed{op.Key, op.Value}] = op
		}
	}
	var vs []Violation
	for _, r := range ops {
		if r.Kind != ReadList || r.Outcome != OK {
			continue
		}
		var gone []Op
		for _, id := range r.List {
			a, ok := appends[keyed{r.Key, id}]
			if ok && a.Outcome != OK && !onSomeNode[keyed{r.Key, id}] {
				gone = append(gone, a)
			}
		}
		if len(gone) == 0 {
			continue
		}
		names := make([]string, len(gone))
		for i, a := range gone {
			names[i] = a.String()
		}
		vs = append(vs, Violation{VanishedRead, fmt.Sprintf("%v saw %s, never acknowledged and on no node at the end: "+
			"the primary showed a commit its synchronous standby never confirmed", r, strings.Join(names, ", ")), append([]Op{r}, gone...)})
	}
	return vs
}

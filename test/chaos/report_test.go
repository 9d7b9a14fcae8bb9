package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/chaos/history"
)

func TestReportNamesTheReplay(t *testing.T) {
	faults := []history.Fault{{Kind: "freeze", Start: time.Second, Healed: 5 * time.Second}}
	v := history.Violation{Kind: history.LostWrite, Explanation: "op 3 lost", Ops: []history.Op{{ID: 3, Invoked: 2 * time.Second}}}
	res := Result{
		Steps:   []Step{{Kind: Freeze, Target: Primary, Hold: 4 * time.Second}},
		History: history.History{Faults: faults},
		Report:  history.Report{Violations: []history.Violation{v}, Summary: []history.FaultSummary{{Kind: "freeze", Faults: 1}}},
	}
	o := Options{Seed: 7, Faults: 1, Kinds: []Kind{Freeze, Overlap}}
	md := Markdown(res, o, time.Minute)
	for _, want := range []string{"rampart lab chaos --seed 7 --faults 1 --kinds freeze,overlap", "lost-write: op 3 lost", "| freeze | 1 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// A convergence that did not come shows as missed, not as 0 s.
	res.Misses = []Miss{{After: "fault 1 (freeze n2)", Kinds: []Kind{Freeze}, Status: "n2 is unclean"}}
	if md := Markdown(res, o, time.Minute); !strings.Contains(md, "**1 missed**") || strings.Contains(md, "| 0 | 0.0s / 0.0s |") {
		t.Errorf("a missed convergence is not shown as missed:\n%s", md)
	}
	res.Halted = "fault 1"
	if md := Markdown(res, o, time.Minute); !strings.Contains(md, "Stopped injecting after fault 1") {
		t.Errorf("a campaign halted after a miss does not say so:\n%s", md)
	}
	if got := KindOf(v, faults); got != "freeze" {
		t.Errorf("KindOf = %q, want freeze", got)
	}
	if got := KindOf(history.Violation{Ops: []history.Op{{Invoked: 0}}}, faults); got != "" {
		t.Errorf("KindOf before any fault = %q, want none", got)
	}
}

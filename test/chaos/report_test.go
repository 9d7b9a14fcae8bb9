package chaos

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/chaos/history"
	"github.com/rampart-ha/rampart/test/seed"
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
	many := res
	for range violationsListed + 1 {
		many.Report.Violations = append(slices.Clone(many.Report.Violations), v)
	}
	if md := Markdown(many, o, time.Minute); strings.Count(md, "lost-write: op 3 lost") != violationsListed || !strings.Contains(md, "… and 2 more lost-write") {
		t.Errorf("the report does not cap its list of violations at %d a kind:\n%s", violationsListed, md)
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

// Write leaves the history, the report, its JSON and the timeline.
func TestWriteLeavesTheTimelineAndJSON(t *testing.T) {
	h := history.History{Started: time.Unix(1000, 0),
		Faults: []history.Fault{{Kind: "freeze", Target: "n1 (primary)", Start: 2 * time.Second, Healed: 6 * time.Second}},
		Ops: []history.Op{
			{ID: 1, Kind: history.Append, Outcome: history.OK, Invoked: time.Second, Completed: time.Second + time.Millisecond},
			{ID: 2, Kind: history.ReadList, Outcome: history.OK, Invoked: 1500 * time.Millisecond, Completed: 1600 * time.Millisecond},
			{ID: 3, Kind: history.Append, Outcome: history.Unknown, Invoked: 3 * time.Second, Completed: 5 * time.Second},
		}}
	res := Result{History: h, Halted: "fault 1", Misses: []Miss{{After: "fault 1", Status: "n1 is unclean"}}}
	dir := t.TempDir()
	if err := Write(dir, res, Options{Seed: 3, Faults: 1, Kinds: []Kind{Freeze}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "timeline.svg"))
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "1 freeze n1") {
		t.Errorf("timeline.svg (%v) lacks the plot or the fault's mark:\n%.400s", err, svg)
	}
	s := Series(h)
	if s.Total(seed.Write, 0, s.End()) != 1 || s.Total(seed.Read, 0, s.End()) != 1 || s.Total(seed.Error, 0, s.End()) != 1 {
		t.Errorf("series counts writes %d reads %d errors %d; want 1 each", s.Total(seed.Write, 0, s.End()), s.Total(seed.Read, 0, s.End()), s.Total(seed.Error, 0, s.End()))
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	var summary struct {
		Replay string `json:"replay"`
		Halted string `json:"halted"`
		Misses []Miss `json:"misses"`
	}
	if err == nil {
		err = json.Unmarshal(b, &summary)
	}
	if err != nil || summary.Halted != "fault 1" || len(summary.Misses) != 1 || !strings.HasPrefix(summary.Replay, "rampart lab chaos --seed 3") {
		t.Errorf("report.json (%v): %+v", err, summary)
	}
}

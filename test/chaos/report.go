package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/test/chaos/history"
)

// Replay is the command that runs a campaign again.
func Replay(o Options) string {
	s := fmt.Sprintf("rampart lab chaos --seed %d --faults %d --kinds %s", o.Seed, o.Faults, FormatKinds(o.Kinds))
	if o.EarlyAck {
		s += " --early-ack"
	}
	if o.PlainReads {
		s += " --plain-reads"
	}
	return s
}

// KindOf lays a violation at the door of the last fault started before its
// first operation was invoked ("" for none: before the first fault).
func KindOf(v history.Violation, faults []history.Fault) string {
	if len(v.Ops) == 0 {
		return ""
	}
	at := v.Ops[0].Invoked
	for _, op := range v.Ops {
		at = min(at, op.Invoked)
	}
	kind := ""
	for _, f := range faults {
		if f.Start <= at {
			kind = f.Kind
		}
	}
	return kind
}

// Markdown is the campaign's report.
func Markdown(res Result, o Options, took time.Duration) string {
	var b strings.Builder
	replay := Replay(o)
	fmt.Fprintf(&b, "# Chaos campaign, seed %d\n\n", o.Seed)
	if o.EarlyAck {
		b.WriteString("**A broken cluster on purpose** (`--early-ack`: synchronous_commit = local, commits acknowledged before the synchronous standby has them): this run tests the checker, not rampart.\n\n")
	}
	if o.PlainReads {
		b.WriteString("**Plain reads** (`--plain-reads`: no durable_reads in the pooler, no barrier on the VIP): reads may see commits a failover takes back, as PostgreSQL shows them.\n\n")
	}
	fmt.Fprintf(&b, "`%s`: %d faults planned, %d injected, %s in all. ", replay, len(res.Steps), len(res.History.Faults), took.Round(time.Second))
	ok, failed, unknown := 0, 0, 0
	for _, op := range res.History.Ops {
		switch op.Outcome {
		case history.OK:
			ok++
		case history.Failed:
			failed++
		default:
			unknown++
		}
	}
	fmt.Fprintf(&b, "%d operations: %d ok, %d failed, %d unknown.\n\n", len(res.History.Ops), ok, failed, unknown)
	verdict := "**No violation, every convergence in time.**"
	if res.Failed() {
		verdict = fmt.Sprintf("**%d violations, %d convergence misses.**", len(res.Report.Violations), len(res.Misses))
	}
	if res.Halted != "" {
		verdict += fmt.Sprintf(" **Stopped injecting after %s:** the cluster did not converge (below).", res.Halted)
	}
	if res.Err != "" {
		verdict += fmt.Sprintf(" **Stopped early:** %s", strings.Join(strings.Fields(res.Err), " "))
	}
	b.WriteString(verdict + "\n\n")
	b.WriteString("Beside this report: `timeline.svg` (operations per second, errors, faults marked), `report.json` (these figures), `history.json` (every operation).\n\n")

	byKind := map[string]int{}
	for _, v := range res.Report.Violations {
		byKind[KindOf(v, res.History.Faults)]++
	}
	b.WriteString("| fault | count | path | write outage p50 / p95 / max | no write after | read outage p50 / p95 / max | client errors | converged p50 / max | violations |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	byPath := map[history.Path][]history.FaultSummary{}
	for _, p := range []history.Path{history.ViaVIP, history.ViaPooler} {
		ops := slices.DeleteFunc(slices.Clone(res.History.Ops), func(op history.Op) bool { return op.Path != p })
		byPath[p] = history.Summarize(history.Outages(ops, res.History.Faults))
	}
	missed := map[Kind]int{}
	for _, m := range res.Misses {
		for _, k := range m.Kinds {
			missed[k]++
		}
	}
	for i, s := range res.Report.Summary {
		conv := history.SpreadOf(res.Converged[Kind(s.Kind)])
		for j, p := range []history.Path{history.ViaVIP, history.ViaPooler} {
			ps := byPath[p][i] // same faults, same kinds, same order
			kind, count, converged, violations := "", "", "", ""
			if j == 0 {
				kind, count = s.Kind, fmt.Sprint(s.Faults)
				converged, violations = convergedText(res.Converged[Kind(s.Kind)], conv, missed[Kind(s.Kind)]), fmt.Sprint(byKind[s.Kind])
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s / %s / %s | %d | %s / %s / %s | %d | %s | %s |\n", kind, count, p,
				secs(ps.ToWrite.P50), secs(ps.ToWrite.P95), secs(ps.ToWrite.Max), ps.NoWrite,
				secs(ps.ToRead.P50), secs(ps.ToRead.P95), secs(ps.ToRead.Max), ps.Errors, converged, violations)
		}
	}
	if n := byKind[""]; n > 0 {
		fmt.Fprintf(&b, "| (before any fault) | | | | | | | | %d |\n", n)
	}
	b.WriteString("\nOutage, per path: from the fault to the first acknowledgement of an operation through that path invoked after it. " +
		"Client errors: operations failed or unknown while the fault lasted. Converged: from the heal to `rampart status` answering no problem (exit 0) for 6 s; " +
		"an overlapped pair's convergence counts for both kinds.\n")
	b.WriteString("\n## Faults\n\n")
	for i, f := range res.History.Faults {
		fmt.Fprintf(&b, "%d. %s on %s, %s–%s\n", i+1, f.Kind, f.Target, secs(f.Start), secs(f.Healed))
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(&b, "- skipped: %s\n", s)
	}

	if len(res.Report.Violations) > 0 {
		fmt.Fprintf(&b, "\n## Violations\n\nReplay: `%s`\n\n", replay)
		// The first few of each kind; report.json has them all.
		listed := map[history.ViolationKind]int{}
		for _, v := range res.Report.Violations {
			if listed[v.Kind]++; listed[v.Kind] <= violationsListed {
				fmt.Fprintf(&b, "- %s\n", v)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(listed)) {
			if n := listed[k] - violationsListed; n > 0 {
				fmt.Fprintf(&b, "- … and %d more %s (report.json lists every one)\n", n, k)
			}
		}
	}
	if len(res.Misses) > 0 {
		b.WriteString("\n## Convergence misses\n\n")
		for _, m := range res.Misses {
			fmt.Fprintf(&b, "After %s (replay: `%s`):\n\n```\n%s\n```\n\n", m.After, replay, strings.TrimSpace(m.Status))
		}
	}
	return b.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// violationsListed is how many violations of each kind the report lists.
const violationsListed = 10

// Write puts history.json and report.md into dir.
func Write(dir string, res Result, o Options, took time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "history.json"))
	if err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	if err := history.Encode(f, res.History); err != nil {
		f.Close()
		return fmt.Errorf("write history: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(Markdown(res, o, took)), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "timeline.svg"), []byte(SVG(res, o)), 0o644); err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	// The report's figures for programs: the result without its history
	// (history.json has that).
	summary := struct {
		Replay    string                   `json:"replay"`
		Took      time.Duration            `json:"took_ns"`
		Steps     []Step                   `json:"steps"`
		Report    history.Report           `json:"report"`
		Misses    []Miss                   `json:"misses"`
		Converged map[Kind][]time.Duration `json:"converged_ns"`
		Skipped   []string                 `json:"skipped,omitempty"`
		Halted    string                   `json:"halted,omitempty"`
		Err       string                   `json:"error,omitempty"`
	}{Replay(o), took, res.Steps, res.Report, res.Misses, res.Converged, res.Skipped, res.Halted, res.Err}
	b, err := json.MarshalIndent(summary, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644)
	}
	if err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}
	return nil
}

// convergedText is a kind's convergence column: p50 / max of the times it
// converged, and how many times it did not (a miss has no time).
func convergedText(times []time.Duration, spread history.Spread, missed int) string {
	var text string
	if len(times) > 0 {
		text = secs(spread.P50) + " / " + secs(spread.Max)
	}
	if missed > 0 {
		if text != "" {
			text += ", "
		}
		text += fmt.Sprintf("**%d missed**", missed)
	}
	return text
}

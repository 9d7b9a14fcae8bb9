package pgxsuite

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Outcome is what became of one test or subtest.
type Outcome string

const (
	Pass Outcome = "pass"
	Fail Outcome = "fail"
	Skip Outcome = "skip"
	// NotRun is a parallel test that was paused and never continued before
	// its package's test binary ended (a timeout elsewhere).
	NotRun Outcome = "notrun"
)

// TestResult is one test or subtest of one run.
type TestResult struct {
	Package string  `json:"package"`
	Test    string  `json:"test"`
	Outcome Outcome `json:"outcome"`
	Elapsed float64 `json:"elapsed,omitempty"`
	// Reason is the first line that says why it failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// Output is the test's own output, kept for failures only.
	Output []string `json:"output,omitempty"`
}

// Key names a test across runs.
func (r TestResult) Key() string { return r.Package + " " + r.Test }

// PackageResult is one package of one run.
type PackageResult struct {
	Package string `json:"package"`
	// Outcome: pass, fail, timeout (-timeout ended it), panic, build-fail,
	// or killed (no end reported: the go command was stopped).
	Outcome string  `json:"outcome"`
	Elapsed float64 `json:"elapsed,omitempty"`
	// Output is the package's own output (build errors, a panic), kept
	// when it did not pass.
	Output []string `json:"output,omitempty"`
	// Hung are the tests that were still running, for half the -timeout
	// or more, when it ended the package (see Merge).
	Hung []string `json:"hung,omitempty"`
}

// Reasons for failures the stream does not state.
const (
	reasonSubtests = "(a subtest failed)"
	reasonUnknown  = "(no message)"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string // build-output
	FailedBuild string
}

type testState struct {
	TestResult
	paused   bool
	finished bool
}

type packageState struct {
	PackageResult
	finished bool
	tests    map[string]*testState
	order    []string
	panic    []string // from the first "panic:" line on
}

// Parse reads a `go test -json` stream. Tests a test binary left
// unfinished (its -timeout, a panic) count as failed if they were running
// then, as not run if they were paused waiting for a parallel slot.
func Parse(r io.Reader) ([]PackageResult, []TestResult, error) {
	pkgs := map[string]*packageState{}
	var order []string
	build := map[string][]string{} // build output by import path
	pkg := func(name string) *packageState {
		p := pkgs[name]
		if p == nil {
			p = &packageState{PackageResult: PackageResult{Package: name}, tests: map[string]*testState{}}
			pkgs[name] = p
			order = append(order, name)
		}
		return p
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // the go command's own words, outside JSON
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, nil, fmt.Errorf("go test -json: %w: %.200s", err, line)
		}
		if e.Action == "build-output" {
			build[e.ImportPath] = append(build[e.ImportPath], strings.TrimRight(e.Output, "\n"))
			continue
		}
		if e.Package == "" {
			continue
		}
		p := pkg(e.Package)
		if e.Test == "" {
			switch e.Action {
			case "output":
				p.note(e.Output)
				p.Output = append(p.Output, strings.TrimRight(e.Output, "\n"))
			case "pass", "fail", "skip":
				p.finished, p.Outcome, p.Elapsed = true, e.Action, e.Elapsed
				if e.FailedBuild != "" {
					p.Outcome = "build-fail"
					p.Output = append(p.Output, build[e.FailedBuild]...)
				}
			}
			continue
		}
		t := p.tests[e.Test]
		if t == nil {
			t = &testState{TestResult: TestResult{Package: e.Package, Test: e.Test}}
			p.tests[e.Test] = t
			p.order = append(p.order, e.Test)
		}
		switch e.Action {
		case "pause":
			t.paused = true
		case "cont", "run":
			t.paused = false
		case "output":
			p.note(e.Output)
			if !isFraming(e.Output) && len(t.Output) < 300 {
				t.Output = append(t.Output, strings.TrimRight(e.Output, "\n"))
			}
		case "pass", "fail", "skip":
			t.finished, t.Outcome, t.Elapsed = true, Outcome(e.Action), e.Elapsed
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("go test -json: %w", err)
	}
	var presults []PackageResult
	var tresults []TestResult
	for _, name := range order {
		p := pkgs[name]
		running, cause := p.unfinished()
		switch {
		case !p.finished:
			p.Outcome = "killed"
		case p.Outcome == "fail" && len(p.panic) > 0 && strings.HasPrefix(p.panic[0], "panic: test timed out"):
			p.Outcome = "timeout"
		case p.Outcome == "fail" && len(p.panic) > 0:
			p.Outcome = "panic"
		}
		for _, tn := range p.order {
			t := p.tests[tn]
			if !t.finished {
				t.Outcome, t.Reason = Fail, "still running when "+cause
				if d, ok := running[tn]; ok {
					t.Elapsed = d.Seconds()
				} else if t.paused {
					t.Outcome, t.Reason = NotRun, "paused, not continued before "+cause
				}
			}
			switch t.Outcome {
			case Fail:
				if t.Reason == "" {
					t.Reason = reason(t.Output, hasChild(p.order, tn, p.tests, Fail))
				}
			case Skip:
				t.Reason = reason(t.Output, false)
			}
			if t.Outcome != Fail {
				t.Output = nil
			}
			tresults = append(tresults, t.TestResult)
		}
		if p.Outcome == "pass" || p.Outcome == "skip" {
			p.Output = nil
		}
		presults = append(presults, p.PackageResult)
	}
	return presults, tresults, nil
}

// note keeps the package's output from its first panic on: a timeout's
// panic lists the tests that were running.
func (p *packageState) note(out string) {
	if len(p.panic) == 0 && !strings.HasPrefix(out, "panic: ") {
		return
	}
	if len(p.panic) < 500 {
		p.panic = append(p.panic, strings.TrimRight(out, "\n"))
	}
}

// unfinished returns the tests a timeout's panic names as running, with
// how long each had run, and what ended the package's unfinished tests.
func (p *packageState) unfinished() (running map[string]time.Duration, cause string) {
	switch {
	case !p.finished:
		return nil, "the go command was stopped"
	case len(p.panic) == 0:
		return nil, "the test binary exited"
	}
	cause = "the test binary panicked (" + p.panic[0] + ")"
	if after, ok := strings.CutPrefix(p.panic[0], "panic: "); ok && strings.HasPrefix(after, "test timed out") {
		cause = after
	}
	in := false
	for _, l := range p.panic[1:] {
		switch {
		case strings.TrimSpace(l) == "running tests:":
			in, running = true, map[string]time.Duration{}
		case in && strings.TrimSpace(l) == "":
			in = false
		case in:
			// "\t\tTestName (10m0s)": names have no spaces (go test makes them _).
			f := strings.Fields(l)
			d, _ := time.ParseDuration(strings.Trim(f[len(f)-1], "()"))
			running[f[0]] = d
		}
	}
	return running, cause
}

func hasChild(order []string, parent string, tests map[string]*testState, o Outcome) bool {
	for _, tn := range order {
		if strings.HasPrefix(tn, parent+"/") && tests[tn].finished && tests[tn].Outcome == o {
			return true
		}
	}
	return false
}

// isFraming says whether a line is the testing package's own framing
// (=== RUN, --- FAIL, …) rather than what the test said.
func isFraming(out string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(strings.TrimLeft(out, " "), p) {
			return true
		}
	}
	return false
}

var (
	fileLine     = regexp.MustCompile(`^\s*[\w.\-]+\.go:\d+: ?(.*)$`)
	testifyLabel = regexp.MustCompile(`^(Error Trace|Error|Test|Messages):\s*(.*)$`)
	spaces       = regexp.MustCompile(`\s+`)
)

// reason picks the line that says why a test failed or skipped: testify's
// "Error:" (with the line after it when it ends in a colon, which holds
// the error itself), else the first message of t.Fatal, t.Error or t.Skip,
// else the first line at all.
func reason(lines []string, subtestFailed bool) string {
	var first, firstAny string
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if m := testifyLabel.FindStringSubmatch(trimmed); m != nil && m[1] == "Error" {
			msg := m[2]
			if strings.HasSuffix(strings.TrimSpace(msg), ":") {
				for j := i + 1; j < len(lines) && j <= i+2; j++ {
					next := strings.TrimSpace(lines[j])
					if next == "" || testifyLabel.MatchString(next) {
						break
					}
					msg += " " + next
				}
			}
			return clip(msg)
		}
		if m := fileLine.FindStringSubmatch(l); m != nil && first == "" && strings.TrimSpace(m[1]) != "" {
			first = m[1]
		}
		if firstAny == "" && trimmed != "" && fileLine.FindStringSubmatch(l) == nil {
			firstAny = trimmed
		}
	}
	switch {
	case first != "":
		return clip(first)
	case firstAny != "":
		return clip(firstAny)
	case subtestFailed:
		return reasonSubtests
	}
	return reasonUnknown
}

func clip(s string) string {
	s = strings.TrimSpace(spaces.ReplaceAllString(s, " "))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Counts are a run's tests and subtests by outcome.
type Counts struct {
	Passed, Failed, Skipped, NotRun int
}

func count(tests []TestResult, pkg string) Counts {
	var c Counts
	for _, t := range tests {
		if pkg != "" && t.Package != pkg {
			continue
		}
		switch t.Outcome {
		case Pass:
			c.Passed++
		case Fail:
			c.Failed++
		case Skip:
			c.Skipped++
		case NotRun:
			c.NotRun++
		}
	}
	return c
}

// Round is one go test run of one package.
type Round struct {
	Package PackageResult
	Tests   []TestResult
}

const stillRunning = "still running when test timed out"

// Hung returns the top-level tests of a round that were still running,
// for at least least, when the package's -timeout ended it: hung, rather
// than started a moment before by the same end.
func Hung(tests []TestResult, least time.Duration) []string {
	var hung []string
	for _, t := range tests {
		if !strings.Contains(t.Test, "/") && t.Outcome == Fail && strings.HasPrefix(t.Reason, stillRunning) && t.Elapsed >= least.Seconds() {
			hung = append(hung, t.Test)
		}
	}
	return hung
}

// Settled returns the top-level tests a round has an answer for: those
// that finished, and those that hung (see Hung). The others (running for
// a short while at the timeout, waiting for a parallel slot, or never
// reached) need another round.
func Settled(tests []TestResult, least time.Duration) []string {
	var settled []string
	for _, t := range tests {
		if strings.Contains(t.Test, "/") {
			continue
		}
		unfinished := t.Outcome == NotRun || (t.Outcome == Fail && strings.HasPrefix(t.Reason, "still running when "))
		if !unfinished || slices.Contains(Hung([]TestResult{t}, least), t.Test) {
			settled = append(settled, t.Test)
		}
	}
	return settled
}

// SkipPattern is go test's -skip for these top-level tests.
func SkipPattern(tests []string) string {
	quoted := make([]string, len(tests))
	for i, t := range tests {
		quoted[i] = regexp.QuoteMeta(t)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// Merge makes one package result of its rounds, each of which ran only
// the tests no round before had settled: every top-level test (with its
// subtests) keeps the round that settled it, the last round everything
// it has. The package's outcome is timeout if any round's was.
func Merge(rounds []Round, least time.Duration) (PackageResult, []TestResult) {
	last := rounds[len(rounds)-1]
	p := last.Package
	var tests []TestResult
	var elapsed float64
	timedOut := false
	for i, r := range rounds {
		elapsed += r.Package.Elapsed
		timedOut = timedOut || r.Package.Outcome == "timeout"
		p.Hung = append(p.Hung, Hung(r.Tests, least)...)
		if i == len(rounds)-1 {
			break
		}
		settled := Settled(r.Tests, least)
		for _, t := range r.Tests {
			top, _, _ := strings.Cut(t.Test, "/")
			if slices.Contains(settled, top) {
				tests = append(tests, t)
			}
		}
	}
	tests = append(tests, last.Tests...)
	p.Elapsed = elapsed
	if timedOut && (p.Outcome == "pass" || p.Outcome == "fail") {
		p.Outcome = "timeout"
	}
	return p, tests
}

// Run is pgx's suite run once against one target.
type Run struct {
	Target string `json:"target"`
	// Env are the PGX_TEST_* variables the suite ran with.
	Env            map[string]string `json:"env"`
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	Packages       []PackageResult   `json:"packages"`
	Tests          []TestResult      `json:"tests"`
	// PoolerExits are the target's pooler's exits during the run (it was
	// started again each time).
	PoolerExits []string `json:"pooler_exits,omitempty"`
}

// Counts are the run's tests and subtests by outcome.
func (r Run) Counts() Counts { return count(r.Tests, "") }

func (r Run) outcomes() map[string]Outcome {
	m := make(map[string]Outcome, len(r.Tests))
	for _, t := range r.Tests {
		m[t.Key()] = t.Outcome
	}
	return m
}

// RampartOnly returns the tests that fail through rampart and pass both
// directly and through PgBouncer in the same pool mode.
func RampartOnly(direct, bouncer, rampart Run) []TestResult {
	d, b := direct.outcomes(), bouncer.outcomes()
	var out []TestResult
	for _, t := range rampart.Tests {
		if t.Outcome == Fail && d[t.Key()] == Pass && b[t.Key()] == Pass {
			out = append(out, t)
		}
	}
	return out
}

// Change is a test whose outcome differs from a baseline run's.
type Change struct {
	Key      string
	Was, Now Outcome
}

// Diff compares a run with an earlier one of the same target: tests that
// passed then and fail now (broken), and the reverse (fixed).
func Diff(baseline, now Run) (broken, fixed []Change) {
	was := baseline.outcomes()
	for _, t := range now.Tests {
		w, ok := was[t.Key()]
		switch {
		case ok && w == Pass && t.Outcome == Fail:
			broken = append(broken, Change{t.Key(), w, t.Outcome})
		case ok && w == Fail && t.Outcome == Pass:
			fixed = append(fixed, Change{t.Key(), w, t.Outcome})
		}
	}
	return broken, fixed
}

// Report is everything one invocation measured; its JSON is what later
// runs are compared with.
type Report struct {
	Started  string            `json:"started"`
	Versions map[string]string `json:"versions"`
	Settings map[string]string `json:"settings"`
	Runs     []Run             `json:"runs"`
	// RampartOnly by pool mode (session, transaction): see RampartOnly.
	RampartOnly map[string][]TestResult `json:"rampart_only"`
	// TransactionOnly fail through rampart in transaction mode and pass
	// directly and through rampart in session mode: transaction pooling's
	// own defects (or limits), which RampartOnly misses when PgBouncer
	// fails the same test for a reason of its own.
	TransactionOnly []TestResult `json:"rampart_transaction_only"`
}

// Modes pairs each pool mode with its targets.
var Modes = []struct{ Mode, Bouncer, Rampart string }{
	{"session", "pgbouncer-session", "rampart-session"},
	{"transaction", "pgbouncer-transaction", "rampart-transaction"},
}

// Run returns the run of target, if the report has one.
func (r *Report) Run(target string) (Run, bool) {
	i := slices.IndexFunc(r.Runs, func(run Run) bool { return run.Target == target })
	if i < 0 {
		return Run{}, false
	}
	return r.Runs[i], true
}

// Compare fills RampartOnly for each mode whose three targets ran.
func (r *Report) Compare() {
	r.RampartOnly = map[string][]TestResult{}
	direct, ok := r.Run("direct")
	if !ok {
		return
	}
	for _, m := range Modes {
		b, okb := r.Run(m.Bouncer)
		ra, okr := r.Run(m.Rampart)
		if okb && okr {
			r.RampartOnly[m.Mode] = RampartOnly(direct, b, ra)
		}
	}
	session, oks := r.Run("rampart-session")
	transaction, okt := r.Run("rampart-transaction")
	if oks && okt {
		r.TransactionOnly = RampartOnly(direct, session, transaction)
	}
}

// shortPackage drops pgx's module path: "pgconn", or "pgx" for its root.
func shortPackage(p string) string {
	const module = "github.com/jackc/pgx/v5"
	if p == module {
		return "pgx"
	}
	return strings.TrimPrefix(p, module+"/")
}

// Summary renders the report: a table of passed/failed per package and
// target (tests and subtests), skipped tests by reason, and the tests
// that fail only through rampart with the first line of each failure.
func (r *Report) Summary(w io.Writer) {
	var pkgs []string
	for _, run := range r.Runs {
		for _, p := range run.Packages {
			if !slices.Contains(pkgs, p.Package) {
				pkgs = append(pkgs, p.Package)
			}
		}
	}
	fmt.Fprintf(w, "pgx %s's own tests (tests and subtests, passed/failed)\n\n", r.Versions["pgx"])
	header := "| |"
	rule := "|---|"
	for _, run := range r.Runs {
		header += " " + run.Target + " |"
		rule += "---|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, rule)
	for _, pkg := range pkgs {
		row := "| " + shortPackage(pkg) + " |"
		for _, run := range r.Runs {
			c := count(run.Tests, pkg)
			cell := fmt.Sprintf("%d/%d", c.Passed, c.Failed)
			if i := slices.IndexFunc(run.Packages, func(p PackageResult) bool { return p.Package == pkg }); i >= 0 {
				if o := run.Packages[i].Outcome; o != "pass" && o != "fail" {
					cell += " " + o
				}
			}
			row += " " + cell + " |"
		}
		fmt.Fprintln(w, row)
	}
	rows := []struct {
		name string
		cell func(Run) string
	}{
		{"**all**", func(run Run) string { c := run.Counts(); return fmt.Sprintf("**%d/%d**", c.Passed, c.Failed) }},
		{"skipped", func(run Run) string { return fmt.Sprint(run.Counts().Skipped) }},
		{"not run (after a timeout)", func(run Run) string { return fmt.Sprint(run.Counts().NotRun) }},
		{"minutes", func(run Run) string { return fmt.Sprintf("%.1f", run.ElapsedSeconds/60) }},
	}
	for _, row := range rows {
		line := "| " + row.name + " |"
		for _, run := range r.Runs {
			line += " " + row.cell(run) + " |"
		}
		fmt.Fprintln(w, line)
	}
	for _, run := range r.Runs {
		if len(run.PoolerExits) > 0 {
			fmt.Fprintf(w, "\n%s: the pooler exited %d times (and was started again):\n", run.Target, len(run.PoolerExits))
		}
		for _, e := range run.PoolerExits {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if direct, ok := r.Run("direct"); ok {
		fmt.Fprintf(w, "\nSkipped directly (%d), by reason:\n", direct.Counts().Skipped)
		byReason := map[string]int{}
		for _, t := range direct.Tests {
			if t.Outcome == Skip {
				byReason[t.Reason]++
			}
		}
		reasons := make([]string, 0, len(byReason))
		for k := range byReason {
			reasons = append(reasons, k)
		}
		slices.SortFunc(reasons, func(a, b string) int {
			if byReason[a] != byReason[b] {
				return byReason[b] - byReason[a]
			}
			return strings.Compare(a, b)
		})
		for _, k := range reasons {
			fmt.Fprintf(w, "  %4d  %s\n", byReason[k], k)
		}
	}
	for _, m := range Modes {
		if only, ok := r.RampartOnly[m.Mode]; ok {
			list(w, only, fmt.Sprintf("Fail through rampart only, %s mode: %d tests and subtests pass directly and through %s but fail through %s",
				m.Mode, len(only), m.Bouncer, m.Rampart))
		}
	}
	if _, ok := r.Run("rampart-transaction"); ok && r.TransactionOnly != nil {
		list(w, r.TransactionOnly, fmt.Sprintf("Fail through rampart in transaction mode only: %d tests and subtests pass directly and through rampart-session but fail through rampart-transaction (whatever PgBouncer does)",
			len(r.TransactionOnly)))
	}
}

// list renders failures under a heading; parents that failed only because
// a subtest did are counted in the heading, not listed.
func list(w io.Writer, tests []TestResult, heading string) {
	var shown []TestResult
	for _, t := range tests {
		if t.Reason != reasonSubtests {
			shown = append(shown, t)
		}
	}
	fmt.Fprintf(w, "\n%s", heading)
	if len(shown) < len(tests) {
		fmt.Fprintf(w, " (%d parents that failed only through their subtests not listed)", len(tests)-len(shown))
	}
	fmt.Fprintln(w, ":")
	for _, t := range shown {
		fmt.Fprintf(w, "  %s %s: %s\n", shortPackage(t.Package), t.Test, t.Reason)
	}
}

// Compared renders what changed since a baseline report, target by target.
func Compared(w io.Writer, baseline, now *Report) {
	fmt.Fprintf(w, "\nSince the baseline of %s:\n", baseline.Started)
	for _, run := range now.Runs {
		old, ok := baseline.Run(run.Target)
		if !ok {
			continue
		}
		broken, fixed := Diff(old, run)
		fmt.Fprintf(w, "  %s: %d now fail, %d now pass\n", run.Target, len(broken), len(fixed))
		for _, c := range broken {
			fmt.Fprintf(w, "    now fails:  %s\n", c.Key)
		}
		for _, c := range fixed {
			fmt.Fprintf(w, "    now passes: %s\n", c.Key)
		}
	}
}

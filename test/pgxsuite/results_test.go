package pgxsuite

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// testdata/sample.jsonl is real `go test -json` output of Go 1.26: a
// package whose binary hit its -timeout (one test running a subtest, one
// parallel test paused), a package that did not build, and testify-shaped
// failures.
func TestParse(t *testing.T) {
	f, err := os.Open("testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, tests, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	gotPkgs := map[string]string{}
	for _, p := range pkgs {
		gotPkgs[p.Package] = p.Outcome
	}
	for pkg, want := range map[string]string{"tj": "timeout", "tj/bad": "build-fail", "tf": "fail"} {
		if gotPkgs[pkg] != want {
			t.Errorf("package %s: outcome %q, want %q", pkg, gotPkgs[pkg], want)
		}
	}
	got := map[string]TestResult{}
	for _, r := range tests {
		got[r.Key()] = r
	}
	for _, tt := range []struct {
		key     string
		outcome Outcome
		reason  string
	}{
		{"tj TestPass/sub_one", Pass, ""},
		{"tj TestSkip", Skip, "Skipping due to missing environment variable X"},
		{"tj TestFail/a/b", Fail, "boom: x"},
		{"tj TestFail", Fail, reasonSubtests},
		{"tj TestHang2/inner", Fail, "still running when test timed out after 2s"},
		{"tj TestHang2", Fail, "still running when test timed out after 2s"},
		{"tj TestHang", NotRun, "paused, not continued before test timed out after 2s"},
		{"tf TestBatch", Fail, `Received unexpected error: ERROR: bind message supplies 2 parameters, but prepared statement "" requires 0 (SQLSTATE 08P01)`},
		{"tf TestEqual", Fail, "Not equal: expected: 1 actual : 2"},
	} {
		r, ok := got[tt.key]
		if !ok {
			t.Errorf("%s: not parsed", tt.key)
			continue
		}
		if r.Outcome != tt.outcome || r.Reason != tt.reason {
			t.Errorf("%s: %s %q, want %s %q", tt.key, r.Outcome, r.Reason, tt.outcome, tt.reason)
		}
		if r.Outcome == Pass && len(r.Output) != 0 {
			t.Errorf("%s passed but keeps its output: %q", tt.key, r.Output)
		}
	}
	if c := count(tests, "tj"); c != (Counts{Passed: 2, Failed: 4, Skipped: 1, NotRun: 1}) {
		t.Errorf("counts of tj: %+v", c)
	}
	for _, p := range pkgs {
		if p.Package == "tj/bad" && !strings.Contains(strings.Join(p.Output, "\n"), "undefined: undefined") {
			t.Errorf("build failure output not kept: %q", p.Output)
		}
	}
}

// A package whose binary timed out runs again with the tests that had not
// settled: the test that hung keeps its failure, every test one outcome.
func TestMerge(t *testing.T) {
	f, err := os.Open("testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, tests, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var first Round
	for i, p := range pkgs {
		if p.Package == "tj" {
			first.Package = pkgs[i]
		}
	}
	for _, r := range tests {
		if r.Package == "tj" {
			first.Tests = append(first.Tests, r)
		}
	}
	if hung := Hung(first.Tests, time.Second); !slices.Equal(hung, []string{"TestHang2"}) {
		t.Fatalf("hung: %v, want TestHang2 (TestHang was paused, not running)", hung)
	}
	if got := SkipPattern([]string{"TestHang2", "TestA.b"}); got != `^(TestHang2|TestA\.b)$` {
		t.Errorf("skip pattern %q", got)
	}
	settled := Settled(first.Tests, time.Second)
	if want := []string{"TestPass", "TestSkip", "TestFail", "TestHang2"}; !slices.Equal(settled, want) {
		t.Fatalf("settled: %v, want %v (TestHang never ran)", settled, want)
	}
	// The second round runs the rest: TestHang, and a test never reached.
	second := Round{Package: PackageResult{Package: "tj", Outcome: "pass", Elapsed: 1}, Tests: []TestResult{
		{Package: "tj", Test: "TestLater", Outcome: Pass}, {Package: "tj", Test: "TestHang", Outcome: Pass}}}
	p, merged := Merge([]Round{first, second}, time.Second)
	if p.Outcome != "timeout" || !slices.Equal(p.Hung, []string{"TestHang2"}) {
		t.Errorf("package %s, hung %v; want timeout, [TestHang2]", p.Outcome, p.Hung)
	}
	got := map[string]Outcome{}
	for _, r := range merged {
		got[r.Test] = r.Outcome
	}
	want := map[string]Outcome{"TestPass": Pass, "TestPass/sub_one": Pass, "TestSkip": Skip, "TestFail": Fail, "TestFail/a/b": Fail,
		"TestHang2": Fail, "TestHang2/inner": Fail, "TestLater": Pass, "TestHang": Pass}
	if !maps.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
}

func run(target string, outcomes map[string]Outcome) Run {
	r := Run{Target: target}
	for test, o := range outcomes {
		r.Tests = append(r.Tests, TestResult{Package: "p", Test: test, Outcome: o, Reason: "r " + test})
	}
	return r
}

func TestRampartOnly(t *testing.T) {
	direct := run("direct", map[string]Outcome{"A": Pass, "B": Pass, "C": Fail, "D": Pass, "E": Pass})
	bouncer := run("pgbouncer-session", map[string]Outcome{"A": Pass, "B": Fail, "C": Pass, "D": Pass, "E": Skip})
	rampart := run("rampart-session", map[string]Outcome{"A": Fail, "B": Fail, "C": Fail, "D": Pass, "E": Fail})
	only := RampartOnly(direct, bouncer, rampart)
	if len(only) != 1 || only[0].Test != "A" {
		t.Fatalf("got %+v, want only A: B fails through PgBouncer too, C directly, E skips through PgBouncer", only)
	}
	rep := &Report{Versions: map[string]string{"pgx": "v5"}, Runs: []Run{direct, bouncer, rampart}}
	rep.Compare()
	if _, ok := rep.RampartOnly["transaction"]; ok {
		t.Error("transaction mode compared without its runs")
	}
	transaction := run("rampart-transaction", map[string]Outcome{"A": Fail, "B": Fail, "C": Fail, "D": Fail, "E": Fail})
	rep.Runs = append(rep.Runs, transaction)
	rep.Compare()
	if len(rep.TransactionOnly) != 1 || rep.TransactionOnly[0].Test != "D" {
		t.Errorf("transaction only: %+v, want D: the one that passes directly and through rampart in session mode", rep.TransactionOnly)
	}
	var b strings.Builder
	rep.Summary(&b)
	for _, want := range []string{"| **all** | **4/1** | **3/1** | **1/4** | **0/5** |", "Fail through rampart only, session mode: 1", "  p A: r A\n",
		"Fail through rampart in transaction mode only: 1", "  p D: r D\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDiff(t *testing.T) {
	before := run("rampart-session", map[string]Outcome{"A": Fail, "B": Pass, "C": Skip})
	after := run("rampart-session", map[string]Outcome{"A": Pass, "B": Fail, "C": Fail, "D": Fail})
	broken, fixed := Diff(before, after)
	if len(broken) != 1 || broken[0].Key != "p B" || len(fixed) != 1 || fixed[0].Key != "p A" {
		t.Errorf("broken %v, fixed %v; want B broken and A fixed (C was skipped, D is new)", broken, fixed)
	}
}

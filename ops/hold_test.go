package ops

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pg"
)

func TestResumeReady(t *testing.T) {
	final := pg.LSN(0x3000148)
	tests := []struct {
		name string
		h    pg.History
		ok   bool
		want string
	}{
		{"not promoted yet", pg.History{Timeline: 2}, false, "not promoted yet"},
		{"promoted past the old primary's position", pg.History{Timeline: 3, Switches: []pg.TimelineSwitch{{Timeline: 1, End: 0x1000000}, {Timeline: 2, End: 0x3000200}}}, true, "at or past"},
		{"promoted exactly there", pg.History{Timeline: 3, Switches: []pg.TimelineSwitch{{Timeline: 2, End: final}}}, true, "at or past"},
		{"promoted short of it", pg.History{Timeline: 3, Switches: []pg.TimelineSwitch{{Timeline: 2, End: 0x3000100}}}, false, "commits may be missing"},
		{"another history", pg.History{Timeline: 4, Switches: []pg.TimelineSwitch{{Timeline: 3, End: 0x4000000}}}, false, "does not descend"},
	}
	for _, tt := range tests {
		ok, why := ResumeReady(tt.h, 2, final)
		if ok != tt.ok || !strings.Contains(why, tt.want) {
			t.Errorf("%s: %v %q; want %v and %q", tt.name, ok, why, tt.ok, tt.want)
		}
	}
}

// A dead third node blocks a switchover until the operator sets it aside;
// the primary, the target and problems of the whole cluster cannot be.
func TestCheckSwitchoverIgnoring(t *testing.T) {
	o := healthy()
	o.Cluster.Nodes[2].Online = false
	o.Cluster.Resources = o.Cluster.Resources[:2]
	v := Assemble(o)
	if err := CheckSwitchover(v, "n2"); err == nil || !strings.Contains(err.Error(), "n3 is offline") {
		t.Fatalf("with n3 offline: %v; want a refusal naming it", err)
	}
	ignored, err := CheckSwitchoverIgnoring(v, "n2", []string{"n3"})
	if err != nil || len(ignored) == 0 || !strings.Contains(strings.Join(ignored, "; "), "n3 is offline") {
		t.Fatalf("--ignore n3: %v, ignored %q; want it through, n3's problems named", err, ignored)
	}
	for _, n := range []string{"n1", "n2", "n9"} {
		if _, err := CheckSwitchoverIgnoring(v, "n2", []string{n}); err == nil || !strings.Contains(err.Error(), "--ignore "+n) {
			t.Errorf("--ignore %s: %v; want a refusal", n, err)
		}
	}
	o.Cluster.Quorate = false
	if _, err := CheckSwitchoverIgnoring(Assemble(o), "n2", []string{"n3"}); err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("--ignore n3 without quorum: %v; want the quorum refusal", err)
	}
}

// fakeConsole records what a switchover asks of one pooler.
type fakeConsole struct {
	name    string
	holdErr error
	log     *[]string
	mu      *sync.Mutex
}

func (f fakeConsole) say(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, f.name+" "+s)
}
func (f fakeConsole) Name() string { return f.name }
func (f fakeConsole) Hold(_ context.Context, d time.Duration) error {
	f.say("hold " + d.String())
	return f.holdErr
}
func (f fakeConsole) Resume(context.Context) error { f.say("resume"); return nil }
func (f fakeConsole) Close()                       { f.say("close") }

// The switchover's steps in order with two poolers: hold both, read the
// old primary's position, move, wait until the target was promoted past
// it, resume both, wait for the old primary to stream, clear.
func TestSwitchoverHoldsThePoolers(t *testing.T) {
	var mu sync.Mutex
	var steps []string
	step := func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() }
	moved := healthy()
	moved.Cluster.Resources[0].Role, moved.Cluster.Resources[1].Role = "Unpromoted", "Promoted"
	moved.Attrs["rampart-pgsql-state"] = map[string]string{"n2": "primary", "n1": "sync", "n3": "async"}
	movedYet := false
	run := func(_ context.Context, argv ...string) (string, error) {
		step(strings.Join(argv, " "))
		if strings.Contains(strings.Join(argv, " "), "--move") {
			movedYet = true
		}
		return "", nil
	}
	look := func(context.Context) View {
		if movedYet {
			return Assemble(moved)
		}
		return Assemble(healthy())
	}
	histories := 0
	history := func(_ context.Context, _ View, node string) (pg.History, error) {
		step("history " + node)
		if node == "n1" {
			return pg.History{Timeline: 2, LSN: 0x3000148}, nil
		}
		histories++
		if histories < 3 {
			return pg.History{Timeline: 2, LSN: 0x3000148}, nil
		}
		return pg.History{Timeline: 3, LSN: 0x3000300, Switches: []pg.TimelineSwitch{{Timeline: 2, End: 0x3000200}}}, nil
	}
	consoles := []Console{fakeConsole{"p1", nil, &steps, &mu}, fakeConsole{"p2", nil, &steps, &mu}}
	log := slog.New(slog.DiscardHandler)
	_, err := Switchover(context.Background(), SwitchoverSeams{Run: run, Look: look, History: history, Poolers: consoles},
		SwitchoverOptions{Target: "n2", Timeout: 10 * time.Second, HoldTimeout: 3 * time.Second}, log)
	if err != nil {
		t.Fatalf("switchover: %v\nsteps %q", err, steps)
	}
	got := strings.Join(steps, "\n")
	order := []string{"hold 3s", "history n1", "--move --promoted --node n2", "history n2", "p1 resume", "--clear"}
	at := 0
	for _, o := range order {
		i := strings.Index(got[at:], o)
		if i < 0 {
			t.Fatalf("steps out of order, want %q after position %d:\n%s", o, at, got)
		}
		at += i
	}
	if strings.Count(got, "resume") != 2 || strings.Count(got, "close") != 2 || strings.Count(got, "hold") != 2 {
		t.Errorf("want both poolers held, resumed and closed once:\n%s", got)
	}
	if histories < 3 {
		t.Errorf("resumed after %d looks at n2; want it to wait until n2 was promoted", histories)
	}
}

// A pooler that cannot hold (a transaction that never ends) refuses the
// switchover: every pooler resumes, nothing is moved.
func TestSwitchoverRefusedWhenAHoldFails(t *testing.T) {
	var mu sync.Mutex
	var steps []string
	run := func(_ context.Context, argv ...string) (string, error) {
		mu.Lock()
		steps = append(steps, strings.Join(argv, " "))
		mu.Unlock()
		return "", nil
	}
	history := func(context.Context, View, string) (pg.History, error) { return pg.History{}, errors.New("unused") }
	held := errors.New("HOLD: transactions still running after 1s: 1 on n1 (…); everything resumed, nothing is held")
	consoles := []Console{fakeConsole{"p1", nil, &steps, &mu}, fakeConsole{"p2", held, &steps, &mu}}
	_, err := Switchover(context.Background(), SwitchoverSeams{Run: run, Look: func(context.Context) View { return Assemble(healthy()) }, History: history, Poolers: consoles},
		SwitchoverOptions{Target: "n2", Timeout: 10 * time.Second, HoldTimeout: time.Second}, slog.New(slog.DiscardHandler))
	var r *Refusal
	if !errors.As(err, &r) || !strings.Contains(err.Error(), "p2: HOLD: transactions still running") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("got %v; want a refusal naming p2's running transaction", err)
	}
	got := strings.Join(steps, "\n")
	if strings.Contains(got, "crm_resource") || strings.Count(got, "close") != 2 {
		t.Errorf("steps:\n%s\nwant no move, both console sessions closed (which resumes them)", got)
	}
}

// A failback: the old primary streams asynchronously after its rejoin. The
// switchover asks the primary to prefer it, waits until it is the
// synchronous standby, switches, and removes the preference.
func TestSwitchoverMakesTheTargetSynchronousFirst(t *testing.T) {
	var steps []string
	preferred := false
	sync3 := healthy()
	sync3.Attrs["rampart-pgsql-state"] = map[string]string{"n1": "primary", "n2": "async", "n3": "sync"}
	sync3.Attrs["rampart-pgsql-position"]["n3"] = sync3.Attrs["rampart-pgsql-position"]["n2"]
	moved := healthy()
	moved.Cluster.Resources[0].Role, moved.Cluster.Resources[2].Role = "Unpromoted", "Promoted"
	moved.Attrs["rampart-pgsql-state"] = map[string]string{"n3": "primary", "n1": "sync", "n2": "async"}
	movedYet, looks := false, 0
	run := func(_ context.Context, argv ...string) (string, error) {
		a := strings.Join(argv, " ")
		steps = append(steps, a)
		switch {
		case strings.Contains(a, "sync-preferred") && strings.Contains(a, "--update=n3"):
			preferred = true
		case strings.Contains(a, "--move"):
			movedYet = true
		}
		return "", nil
	}
	look := func(context.Context) View {
		looks++
		switch {
		case movedYet:
			return Assemble(moved)
		case preferred && looks > 4:
			return Assemble(sync3)
		}
		o := healthy()
		o.Attrs["rampart-pgsql-position"]["n3"] = o.Attrs["rampart-pgsql-position"]["n2"]
		return Assemble(o)
	}
	_, err := Switchover(context.Background(), SwitchoverSeams{Run: run, Look: look}, SwitchoverOptions{Target: "n3", Timeout: 20 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("failback to an asynchronous standby: %v\nsteps %q", err, steps)
	}
	got := strings.Join(steps, "\n")
	want := []string{"--name=rampart-pgsql-sync-preferred --update=n3", "--move --promoted --node n3", "--clear", "--name=rampart-pgsql-sync-preferred --delete"}
	at := 0
	for _, w := range want {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("want %q next:\n%s", w, got)
		}
		at += i
	}
	// A standby that never becomes synchronous: refused, preference removed, nothing moved.
	steps, preferred, movedYet, looks = nil, false, false, -1000
	_, err = Switchover(context.Background(), SwitchoverSeams{Run: run, Look: look}, SwitchoverOptions{Target: "n3", Timeout: 1500 * time.Millisecond}, slog.New(slog.DiscardHandler))
	got = strings.Join(steps, "\n")
	if err == nil || !strings.Contains(err.Error(), "did not become a synchronous standby") || strings.Contains(got, "--move") || !strings.Contains(got, "--delete") {
		t.Errorf("never synchronous: %v\nsteps:\n%s", err, got)
	}
}

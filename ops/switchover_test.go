package ops

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestCheckSwitchover(t *testing.T) {
	if err := CheckSwitchover(Assemble(healthy()), "n2"); err != nil {
		t.Fatalf("to the sync standby of a healthy cluster: %v", err)
	}
	tests := []struct {
		name   string
		change func(o *Observed)
		target string
		want   string
	}{
		{"unknown node", nil, "n9", `"n9" is not a node of the cluster (nodes: n1, n2, n3)`},
		{"the primary itself", nil, "n1", "n1 is the primary already"},
		{"async standby", nil, "n3", "n3 is not a synchronous standby (state async): only a synchronous standby is known to have every acknowledged commit; choose one of n2"},
		{"unhealthy cluster", func(o *Observed) { o.Attrs["rampart-pgsql-state"]["n3"] = "disconnected" }, "n2", "the cluster is not healthy"},
		{"no primary", func(o *Observed) { o.Cluster.Resources[0].Role = "Unpromoted" }, "n2", "there is no primary"},
		{"no pacemaker", func(o *Observed) { o.Cluster = nil }, "n2", "no Pacemaker cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy()
			if tt.change != nil {
				tt.change(&o)
			}
			err := CheckSwitchover(Assemble(o), tt.target)
			var r *Refusal
			if !errors.As(err, &r) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want a refusal saying %q", err, tt.want)
			}
		})
	}
}

func TestSwitchoverDone(t *testing.T) {
	o := healthy()
	if done, _ := SwitchoverDone(Assemble(o), "n2", "n1"); done {
		t.Error("done before anything moved")
	}
	// n2 promoted, n1 demoted but not streaming yet.
	o.Cluster.Resources[0].Role, o.Cluster.Resources[1].Role = "Unpromoted", "Promoted"
	o.Attrs["rampart-pgsql-state"] = map[string]string{"n2": "primary", "n1": "disconnected", "n3": "async"}
	if done, state := SwitchoverDone(Assemble(o), "n2", "n1"); done || !strings.Contains(state, "n1 is standby/disconnected") {
		t.Errorf("done=%v %q; want waiting for n1 to stream", done, state)
	}
	o.Attrs["rampart-pgsql-state"]["n1"] = "sync"
	if done, state := SwitchoverDone(Assemble(o), "n2", "n1"); !done {
		t.Errorf("not done: %s", state)
	}
}

// asynchronous is healthy() with sync_count=0: every standby async; n2
// (0/3000148) is ahead of n3 (0/3000060).
func asynchronous() Observed {
	o := healthy()
	o.Params["pgsql"]["sync_count"] = "0"
	o.Attrs["rampart-pgsql-state"]["n2"] = "async"
	return o
}

// Without synchronous standbys (sync_count=0) none has every acknowledged
// commit: a switchover goes to the most advanced standby that streams on
// the primary's timeline, as the agent's own promotion check wants.
func TestCheckSwitchoverAsynchronous(t *testing.T) {
	if err := CheckSwitchover(Assemble(asynchronous()), "n2"); err != nil {
		t.Errorf("to the most advanced standby: %v", err)
	}
	tests := []struct {
		name   string
		change func(o *Observed)
		target string
		want   string // "" for allowed
	}{
		{"as advanced as the other", func(o *Observed) {
			o.Attrs["rampart-pgsql-position"]["n3"] = o.Attrs["rampart-pgsql-position"]["n2"]
		}, "n3", ""},
		{"behind another", nil, "n3", "n2 is ahead of n3"},
		{"does not stream", func(o *Observed) {
			o.Attrs["rampart-pgsql-state"]["n2"] = "catchup"
		}, "n2", "the cluster is not healthy"},
		{"the primary itself", nil, "n1", "n1 is the primary already"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := asynchronous()
			if tt.change != nil {
				tt.change(&o)
			}
			err := CheckSwitchover(Assemble(o), tt.target)
			if tt.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want a refusal saying %q", err, tt.want)
			}
		})
	}
}

// An invalid parameter is a problem: no switchover until it is fixed; an
// absent one is the agent's default (sync_count=1, durability).
func TestCheckSwitchoverParameters(t *testing.T) {
	o := healthy()
	delete(o.Params["pgsql"], "sync_count")
	if err := CheckSwitchover(Assemble(o), "n2"); err != nil {
		t.Errorf("sync_count absent, to the sync standby: %v", err)
	}
	if err := CheckSwitchover(Assemble(o), "n3"); err == nil || !strings.Contains(err.Error(), "not a synchronous standby") {
		t.Errorf("sync_count absent, to an async standby: %v; want a refusal", err)
	}
	o.Params["pgsql"]["sync_count"] = "two"
	if err := CheckSwitchover(Assemble(o), "n2"); err == nil || !strings.Contains(err.Error(), `sync_count="two"`) {
		t.Errorf("sync_count invalid: %v; want a refusal naming it", err)
	}
}

// A standby that follows a new primary reports the new timeline only at
// its next monitor: right after a promotion the switchover looks again
// instead of refusing on that report, and refuses only if it stays.
func TestSwitchoverWaitsForASettlingReport(t *testing.T) {
	stale := healthy()
	stale.Attrs["rampart-pgsql-position"]["n2"] = strings.Replace(stale.Attrs["rampart-pgsql-position"]["n2"], "2:", "1:", 1)
	if err := CheckSwitchover(Assemble(stale), "n2"); err == nil || !strings.Contains(err.Error(), "n2 is on timeline 1, the primary n1 on 2") {
		t.Fatalf("stale report: %v; want a timeline refusal", err)
	}
	if r := (*Refusal)(nil); !errors.As(CheckSwitchover(Assemble(stale), "n2"), &r) || !r.Settling {
		t.Fatalf("stale report of a streaming standby: %#v; want a settling refusal", r)
	}
	moved := healthy()
	moved.Cluster.Resources[0].Role, moved.Cluster.Resources[1].Role = "Unpromoted", "Promoted"
	moved.Attrs["rampart-pgsql-state"] = map[string]string{"n2": "primary", "n1": "sync", "n3": "async"}

	var ran []string
	run := func(_ context.Context, argv ...string) (string, error) {
		ran = append(ran, strings.Join(argv, " "))
		return "", nil
	}
	looks := 0
	look := func(context.Context) View {
		looks++
		switch {
		case looks <= 2:
			return Assemble(stale)
		case len(ran) == 0:
			return Assemble(healthy())
		}
		return Assemble(moved)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := Switchover(context.Background(), SwitchoverSeams{Run: run, Look: look}, SwitchoverOptions{Target: "n2", Timeout: 10 * time.Second}, log); err != nil {
		t.Fatalf("switchover after the report settled: %v (looks %d, ran %q)", err, looks, ran)
	}
	if len(ran) != 2 || !strings.Contains(ran[0], "--move --promoted --node n2") || !strings.Contains(ran[1], "--clear") {
		t.Errorf("ran %q; want the move, then the clear", ran)
	}

	// A report that stays: refused, nothing moved.
	ran = nil
	_, err := Switchover(context.Background(), SwitchoverSeams{Run: run, Look: func(context.Context) View { return Assemble(stale) }},
		SwitchoverOptions{Target: "n2", Timeout: time.Second}, log)
	if err == nil || !strings.Contains(err.Error(), "n2 is on timeline 1") || len(ran) != 0 {
		t.Errorf("report that stays: err %v, ran %q; want the timeline refusal and nothing run", err, ran)
	}
	// A standby on a newer timeline than the primary is no settling report: refused at once.
	stale.Attrs["rampart-pgsql-position"]["n2"] = strings.Replace(healthy().Attrs["rampart-pgsql-position"]["n2"], "2:", "3:", 1)
	looks = 0
	_, err = Switchover(context.Background(), SwitchoverSeams{Run: run, Look: func(context.Context) View { looks++; return Assemble(stale) }},
		SwitchoverOptions{Target: "n2", Timeout: time.Minute}, log)
	if err == nil || looks != 1 || len(ran) != 0 {
		t.Errorf("standby ahead of the primary's timeline: err %v after %d looks, ran %q; want one look and a refusal", err, looks, ran)
	}
}

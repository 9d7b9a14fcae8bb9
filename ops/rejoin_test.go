package ops

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// afterFailover is healthy() after n1 crashed and n2 was promoted: n1 is
// back online with its PostgreSQL stopped, on the old timeline.
func afterFailover() Observed {
	o := healthy()
	o.Cluster.Resources[0].Role, o.Cluster.Resources[0].Active, o.Cluster.Resources[0].Nodes = "Stopped", false, nil
	o.Cluster.Resources[1].Role = "Promoted"
	o.Attrs["rampart-pgsql-state"] = map[string]string{"n2": "primary", "n3": "sync"}
	return o
}

func TestCheckRejoin(t *testing.T) {
	if err := CheckRejoin(Assemble(afterFailover()), "n1"); err != nil {
		t.Fatalf("the stopped old primary: %v", err)
	}
	tests := []struct {
		name   string
		change func(o *Observed)
		node   string
		want   string
	}{
		{"the primary", nil, "n2", "this host (n2) is the current primary"},
		{"streams already", nil, "n3", "n3 streams from n2 already (standby/sync)"},
		{"unknown node", nil, "n9", "this host (n9) is not a node of the cluster"},
		{"no primary", func(o *Observed) { o.Cluster.Resources[1].Role = "Unpromoted" }, "n1", "no node is primary now"},
		// Just back: the probe found the crashed primary, and Pacemaker
		// shows it promoted and failed until it has stopped it.
		{"crashed primary still being recovered", func(o *Observed) {
			o.Cluster.Resources[0] = healthy().Cluster.Resources[0]
			o.Cluster.Resources[0].Failed = true
		}, "n1", "Pacemaker is still recovering the failed primary on n1"},
		{"no pacemaker", func(o *Observed) { o.Cluster = nil }, "n1", "no Pacemaker cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := afterFailover()
			if tt.change != nil {
				tt.change(&o)
			}
			err := CheckRejoin(Assemble(o), tt.node)
			var r *Refusal
			if !errors.As(err, &r) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want a refusal saying %q", err, tt.want)
			}
		})
	}
}

// While n1 shows as a failed primary, n2 is still the primary clients
// reach: one primary, not two.
func TestAssembleFailedPrimaryIsNotThePrimary(t *testing.T) {
	o := afterFailover()
	o.Cluster.Resources[0] = healthy().Cluster.Resources[0]
	o.Cluster.Resources[0].Failed = true
	v := Assemble(o)
	if v.Primary != "n2" || v.Nodes[0].Role != "failed-primary" {
		t.Errorf("primary %q, n1 %q; want n2 and failed-primary", v.Primary, v.Nodes[0].Role)
	}
	if strings.Contains(strings.Join(v.Problems, "\n"), "more than one primary") {
		t.Errorf("problems %q", v.Problems)
	}
}

// While rejoin waits for its node to stream, a start Pacemaker ran and
// that failed is in the progress line, with the agent's reason.
func TestRejoinStreamsSaysWhyAStartFailed(t *testing.T) {
	o := healthy()
	o.Cluster.Resources = o.Cluster.Resources[:2]
	o.Attrs["rampart-pgsql-state"]["n3"] = "stopped"
	o.Cluster.Failures = []pacemaker.Failure{{OpKey: "pgsql_start_0", Node: "n3", ExitCode: 1, ExitReason: "start n3: it may have diverged"}}
	ok, state := rejoinStreams(Assemble(o), "n3")
	if ok || !strings.Contains(state, "failed pgsql_start_0 (exit 1): start n3: it may have diverged") {
		t.Errorf("rejoinStreams = %v %q; want the start's failure in it", ok, state)
	}
}

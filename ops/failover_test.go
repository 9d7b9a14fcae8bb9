package ops

import (
	"strings"
	"testing"
)

// noPrimary is the double fault's aftermath: n1 (primary) and n2 (its
// synchronous standby) gone, n3 running as a standby, off the record.
func noPrimary() Observed {
	o := healthy()
	o.Options = map[string]string{"rampart-pgsql-synced": "timeline=2 primary=n1 standbys=n2"}
	o.Cluster.Nodes[0].Online = false
	o.Cluster.Resources[0].Active, o.Cluster.Resources[0].Nodes = false, nil
	o.Cluster.Resources[1].Active, o.Cluster.Resources[1].Nodes = false, nil
	return o
}

func TestCheckFailover(t *testing.T) {
	tests := []struct {
		name   string
		o      func() Observed
		target string
		accept bool
		want   string // "" allowed
	}{
		{"allowed with the loss accepted", noPrimary, "n3", true, ""},
		{"refused without --accept-data-loss, naming the holders", noPrimary, "n3", false, "only n1 and n2 (timeline 2) hold every acknowledged commit"},
		{"a primary runs: switchover instead", healthy, "n3", true, "n1 is the primary: for a planned change use rampart switchover --to n3"},
		{"a holder runs: the agent promotes it", func() Observed {
			o := noPrimary()
			o.Cluster.Resources[1].Active, o.Cluster.Resources[1].Nodes = true, []string{"n2"}
			return o
		}, "n3", true, "n2 runs and holds every acknowledged commit"},
		{"the target is a holder already", func() Observed {
			o := noPrimary()
			o.Options["rampart-pgsql-synced"] = "timeline=2 primary=n1 standbys=n3"
			return o
		}, "n3", true, "holds every acknowledged commit by the agent's record"},
		{"the target does not run", func() Observed {
			o := noPrimary()
			o.Cluster.Resources[2].Active, o.Cluster.Resources[2].Nodes = false, nil
			return o
		}, "n3", true, "does not run as a standby"},
		{"no quorum", func() Observed { o := noPrimary(); o.Cluster.Quorate = false; return o }, "n3", true, "no quorum"},
		{"no record", func() Observed { o := noPrimary(); o.Options = nil; return o }, "n3", true, "no record"},
		{"asynchronous replication", func() Observed {
			o := noPrimary()
			o.Params["pgsql"]["sync_count"] = "0"
			return o
		}, "n3", true, "sync_count=0"},
		{"unknown node", noPrimary, "n9", true, "not a node of the cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFailover(Assemble(tt.o()), tt.target, tt.accept)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

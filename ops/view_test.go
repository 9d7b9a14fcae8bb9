package ops

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// healthy is three nodes, n1 primary, n2 sync, n3 async, a VIP on n1.
func healthy() Observed {
	at := now.Add(-2 * time.Second).UnixMilli()
	return Observed{
		Now: now,
		Cluster: &pacemaker.ClusterStatus{
			DC: "n2", Quorate: true, Resolved: true, Version: "2.1.5",
			Nodes: []pacemaker.Node{{Name: "n1", Online: true}, {Name: "n2", Online: true}, {Name: "n3", Online: true}},
			Resources: []pacemaker.Resource{
				{ID: "pgsql", Agent: "ocf:rampart:pgsql", Clone: "pgsql-clone", Role: "Promoted", Active: true, Nodes: []string{"n1"}},
				{ID: "pgsql", Agent: "ocf:rampart:pgsql", Clone: "pgsql-clone", Role: "Unpromoted", Active: true, Nodes: []string{"n2"}},
				{ID: "pgsql", Agent: "ocf:rampart:pgsql", Clone: "pgsql-clone", Role: "Unpromoted", Active: true, Nodes: []string{"n3"}},
				{ID: "vip", Agent: "ocf:rampart:vip", Role: "Started", Active: true, Nodes: []string{"n1"}},
			},
		},
		Params: map[string]map[string]string{"pgsql": {"sync_count": "1"}, "vip": {"ip": "192.168.77.100"}},
		Attrs: map[string]map[string]string{
			"rampart-pgsql-state": {"n1": "primary", "n2": "sync", "n3": "async"},
			"rampart-pgsql-position": {
				"n1": fmt.Sprintf("2:0/3000148:0:%d", at),
				"n2": fmt.Sprintf("2:0/3000148:1:%d", at),
				"n3": fmt.Sprintf("2:0/3000060:0:%d", at),
			},
		},
	}
}

func TestAssembleHealthy(t *testing.T) {
	v := Assemble(healthy())
	if !v.Healthy || len(v.Problems) != 0 {
		t.Fatalf("problems in a healthy cluster: %v", v.Problems)
	}
	if v.Resource != "pgsql" || v.Primary != "n1" || v.SyncCount != 1 || v.Policy != "durability" {
		t.Errorf("view %+v", v)
	}
	roles := ""
	for _, n := range v.Nodes {
		lag := "-"
		if n.LagBytes != nil {
			lag = fmt.Sprint(*n.LagBytes)
		}
		roles += fmt.Sprintf("%s=%s/%s/tl%d/lag%s ", n.Name, n.Role, n.State, n.Timeline, lag)
	}
	if want := "n1=primary/primary/tl2/lag- n2=standby/sync/tl2/lag0 n3=standby/async/tl2/lag232 "; roles != want {
		t.Errorf("nodes %q, want %q", roles, want)
	}
	var b strings.Builder
	if err := v.Format(&b); err != nil || !strings.Contains(b.String(), "No problems found.") || !strings.Contains(b.String(), "232 B") {
		t.Errorf("format (%v):\n%s", err, b.String())
	}
}

func TestAssembleSaysWhatIsWrong(t *testing.T) {
	tests := []struct {
		name   string
		change func(o *Observed)
		want   string
	}{
		{"no quorum", func(o *Observed) { o.Cluster.Quorate = false }, "no quorum"},
		{"node offline", func(o *Observed) {
			o.Cluster.Nodes[2].Online = false
			o.Cluster.Resources[2].Active, o.Cluster.Resources[2].Nodes = false, nil
		}, "n3 is offline"},
		{"node unclean", func(o *Observed) { o.Cluster.Nodes[2].Unclean = true }, "n3 is unclean"},
		{"stopped on an online node", func(o *Observed) { o.Cluster.Resources[2].Active, o.Cluster.Resources[2].Nodes = false, nil },
			"n3 is online but its PostgreSQL does not run"},
		{"writes blocked", func(o *Observed) { o.Attrs["rampart-pgsql-state"]["n1"] = "primary-writes-blocked" }, "n1 blocks writes"},
		{"standby not streaming", func(o *Observed) { o.Attrs["rampart-pgsql-state"]["n3"] = "disconnected" }, "n3 runs as a standby but does not stream"},
		{"no primary", func(o *Observed) { o.Cluster.Resources[0].Role = "Unpromoted" }, "no PostgreSQL primary"},
		{"two primaries", func(o *Observed) { o.Cluster.Resources[1].Role = "Promoted" }, "more than one primary: n1, n2"},
		{"crashed primary being recovered", func(o *Observed) {
			o.Cluster.Resources[0].Failed = true
			o.Cluster.Resources[1].Role = "Promoted"
		}, "n1: Pacemaker shows a failed primary there and is recovering it"},
		{"lagging", func(o *Observed) {
			o.Attrs["rampart-pgsql-position"]["n3"] = fmt.Sprintf("2:0/10:0:%d", now.UnixMilli())
			o.Attrs["rampart-pgsql-position"]["n1"] = fmt.Sprintf("2:1/10:0:%d", now.UnixMilli())
		}, "n3 trails the primary by 4.0 GiB"},
		{"old timeline", func(o *Observed) {
			o.Attrs["rampart-pgsql-position"]["n3"] = fmt.Sprintf("1:0/3000000:0:%d", now.UnixMilli())
			o.Attrs["rampart-pgsql-state"]["n3"] = "disconnected"
		}, "n3 is on timeline 1, the primary on 2, and does not stream: rejoin it"},
		{"stale report", func(o *Observed) {
			o.Attrs["rampart-pgsql-position"]["n2"] = fmt.Sprintf("2:0/3000148:1:%d", now.Add(-time.Minute).UnixMilli())
		}, "n2 last reported its position 60 s ago"},
		{"failed action", func(o *Observed) {
			o.Cluster.Failures = []pacemaker.Failure{{OpKey: "pgsql_monitor_3000", Node: "n2", ExitCode: 7, ExitReason: "not running"}}
		}, "failed action pgsql_monitor_3000 on n2 (exit 7: not running)"},
		{"VIP elsewhere", func(o *Observed) { o.Cluster.Resources[3].Nodes = []string{"n2"} }, "address vip is on n2, the primary is n1"},
		{"VIP nowhere", func(o *Observed) { o.Cluster.Resources[3].Nodes = nil }, "address vip (192.168.77.100) is not held anywhere"},
		{"no pacemaker", func(o *Observed) { o.Cluster, o.PacemakerError = nil, "crm_mon: not found" }, "could not read crm_mon: not found"},
		{"a source failed", func(o *Observed) { o.Errors = []string{"attrd_updater: timed out"} }, "could not read attrd_updater: timed out"},
		{"pooler disagrees", func(o *Observed) {
			o.Poolers = []PoolerView{{URL: "http://p1:9187", Primary: "n2", Member: "p1", Leader: true}}
		}, "pooler http://p1:9187 sends writes to n2"},
		{"pooler host, a node down", func(o *Observed) {
			o.Cluster, o.Poolers = nil, []PoolerView{{URL: "http://127.0.0.1:9187", Primary: "n1", Member: "p1", LeaderID: "p2",
				Nodes: []PoolerNode{{Name: "n1", Role: "primary", Up: true}, {Name: "n2", Role: "standby", Up: false}}}}
		}, "n2 does not answer the pooler's health checks"},
		{"pooler pair leaderless", func(o *Observed) {
			o.Poolers = []PoolerView{{URL: "http://p1:9187", Primary: "n1", Member: "p1"}, {URL: "http://p2:9187", Primary: "n1", Member: "p2"}}
		}, "no pooler leads the pair"},
		{"two pooler leaders", func(o *Observed) {
			o.Poolers = []PoolerView{{URL: "http://p1:9187", Primary: "n1", Member: "p1", Leader: true}, {URL: "http://p2:9187", Primary: "n1", Member: "p2", Leader: true}}
		}, "more than one pooler claims to lead"},
		{"pooler silent", func(o *Observed) { o.Poolers = []PoolerView{{URL: "http://p1:9187", Error: "connection refused"}} }, "pooler http://p1:9187 does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy()
			tt.change(&o)
			v := Assemble(o)
			if v.Healthy || !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Errorf("problems %q; want one saying %q", v.Problems, tt.want)
			}
		})
	}
}

// On a pooler host (no Pacemaker) the nodes are as the pooler sees them,
// and a follower that knows the leader is no problem.
func TestAssemblePoolerHost(t *testing.T) {
	v := Assemble(Observed{Now: now, Poolers: []PoolerView{{URL: "http://127.0.0.1:9187", Primary: "n1", Member: "p1", LeaderID: "p2",
		Nodes: []PoolerNode{{Name: "n1", Role: "primary", Up: true}, {Name: "n2", Role: "standby", Up: true, LagBytes: 40}}}}})
	if !v.Healthy || v.Primary != "n1" || len(v.Nodes) != 2 || *v.Nodes[1].LagBytes != 40 || !strings.HasPrefix(v.Source, "pooler") {
		t.Errorf("view %+v; problems %v", v, v.Problems)
	}
}

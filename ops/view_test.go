package ops

import (
	"encoding/json"
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
		Params: map[string]map[string]string{"pgsql": {"pgdata": "/var/lib/postgresql/15/main", "sync_count": "1"}, "vip": {"ip": "192.168.77.100"}},
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
	o := healthy()
	o.Options = map[string]string{"rampart-pgsql-synced": "timeline=2 primary=n1 standbys=n2", "rampart-pgsql-sync-preferred": "n2"}
	v := Assemble(o)
	if !v.Healthy || len(v.Problems) != 0 {
		t.Fatalf("problems in a healthy cluster: %v", v.Problems)
	}
	if v.Resource != "pgsql" || v.Primary != "n1" || v.SyncCount == nil || *v.SyncCount != 1 || v.Policy != "durability" {
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
	if err := v.Format(&b); err != nil || !strings.Contains(b.String(), "No problems found.") || !strings.Contains(b.String(), "232 B") ||
		!strings.Contains(b.String(), "every acknowledged commit is on n1 (primary), n2 (timeline 2)") ||
		!strings.Contains(b.String(), "Preferred   n2 is asked for as the synchronous standby") {
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
		{"no primary and only a survivor off the record runs", func(o *Observed) {
			o.Options = map[string]string{"rampart-pgsql-synced": "timeline=2 primary=n1 standbys=n2"}
			o.Cluster.Nodes[0].Online = false
			o.Cluster.Resources[0].Active, o.Cluster.Resources[0].Nodes = false, nil
			o.Cluster.Resources[1].Active, o.Cluster.Resources[1].Nodes = false, nil
		}, "none of the nodes that hold every acknowledged commit runs: n1 or n2 must come back (boot its host, or fix it and crm resource cleanup pgsql-clone --node NODE); " +
			"the agent promotes no other node; to promote n3 anyway, losing the commits only they have: rampart failover --to n3 --accept-data-loss"},
		{"no primary and a node on a later timeline than the record's", func(o *Observed) {
			o.Options = map[string]string{"rampart-pgsql-synced": "timeline=1 primary=n1 standbys=n2"}
			o.Cluster.Resources[0].Role = "Unpromoted"
		}, "n1 is on timeline 2, later than the durable record's 1: the record is stale"},
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

// The resource's parameters are read with the agent's own table: defaults
// from it, sync_count=0 as asynchronous replication, and an invalid value
// as the problem it is for the agent (which refuses every action with it).
func TestAssembleReadsTheAgentsParameters(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		change func(o *Observed)
		format string   // in the text view
		json   string   // in the JSON view
		says   []string // problems ("" none)
		never  string   // a problem that must not be there
	}{
		{name: "absent: the agent's defaults", params: map[string]string{},
			format: "sync_count=1 sync_policy=durability", json: `"sync_count":1,"sync_policy":"durability"`},
		{name: "explicit sync_count=0", params: map[string]string{"sync_count": "0"},
			format: "asynchronous replication (sync_count=0)", json: `"sync_count":0`},
		{name: "sync_count=0 and a stale writes-blocked state", params: map[string]string{"sync_count": "0"},
			change: func(o *Observed) { o.Attrs["rampart-pgsql-state"]["n1"] = "primary-writes-blocked" },
			format: "asynchronous replication (sync_count=0)", never: "blocks writes"},
		{name: "max_lag=0 is no limit", params: map[string]string{"max_lag": "0"},
			change: func(o *Observed) {
				o.Attrs["rampart-pgsql-position"]["n3"] = fmt.Sprintf("2:0/10:0:%d", now.UnixMilli())
				o.Attrs["rampart-pgsql-position"]["n1"] = fmt.Sprintf("2:1/10:0:%d", now.UnixMilli())
			},
			format: "sync_count=1 sync_policy=durability", never: "trails the primary"},
		{name: "invalid sync_count", params: map[string]string{"sync_count": "two"},
			format: "sync_count invalid", says: []string{`parameter sync_count="two": not an integer`}},
		{name: "sync_count out of range", params: map[string]string{"sync_count": "-1"},
			says: []string{`parameter sync_count="-1": out of range 0 to 16`}},
		{name: "invalid sync_policy", params: map[string]string{"sync_policy": "fast"},
			format: "sync_policy invalid", says: []string{`parameter sync_policy="fast": use one of durability, availability`}},
		{name: "invalid pgport", params: map[string]string{"pgport": "postgres"},
			says: []string{`parameter pgport="postgres": not an integer`}},
		{name: "two invalid values", params: map[string]string{"sync_count": "two", "max_lag": "lots"},
			says: []string{`parameter sync_count="two"`, `parameter max_lag="lots"`}},
		{name: "an unknown parameter", params: map[string]string{"sync_cuont": "2"},
			says: []string{"unknown parameter sync_cuont"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy()
			o.Params["pgsql"] = map[string]string{"pgdata": "/var/lib/postgresql/15/main"}
			for k, val := range tt.params {
				o.Params["pgsql"][k] = val
			}
			if tt.change != nil {
				tt.change(&o)
			}
			v := Assemble(o)
			problems := strings.Join(v.Problems, "\n")
			if len(tt.says) == 0 && tt.never == "" && !v.Healthy {
				t.Errorf("problems %q; want none", v.Problems)
			}
			for _, want := range tt.says {
				if v.Healthy || !strings.Contains(problems, want) {
					t.Errorf("problems %q; want one saying %q", v.Problems, want)
				}
			}
			if tt.never != "" && strings.Contains(problems, tt.never) {
				t.Errorf("problems %q; want none saying %q", v.Problems, tt.never)
			}
			var b strings.Builder
			if err := v.Format(&b); err != nil || !strings.Contains(b.String(), tt.format) {
				t.Errorf("format (%v):\n%s\nwant it to say %q", err, b.String(), tt.format)
			}
			js, err := json.Marshal(v)
			if err != nil || !strings.Contains(string(js), tt.json) {
				t.Errorf("JSON (%v):\n%s\nwant it to hold %s", err, js, tt.json)
			}
		})
	}
}

// Positions a node reported for an election go stale once it is over;
// the monitor's own report (seen) keeps status current, and only a seen
// report that stops coming says the monitor does not run (issue 19's
// campaign: status never came back to exit 0 after a failover).
func TestSeenPositionsKeepStatusFresh(t *testing.T) {
	o := healthy()
	old := now.Add(-10 * time.Minute).UnixMilli()
	for _, n := range []string{"n1", "n2", "n3"} {
		o.Attrs["rampart-pgsql-position"][n] = fmt.Sprintf("2:0/3000148:0:%d", old)
	}
	o.Attrs["rampart-pgsql-seen"] = map[string]string{
		"n1": fmt.Sprintf("2:0/5000000:0:%d", now.Add(-3*time.Second).UnixMilli()),
		"n2": fmt.Sprintf("2:0/5000000:0:%d", now.Add(-2*time.Second).UnixMilli()),
		"n3": fmt.Sprintf("2:0/4000000:0:%d", now.Add(-4*time.Second).UnixMilli()),
	}
	o.Options = map[string]string{"rampart-pgsql-synced": "timeline=2 primary=n1 standbys=n2"}
	v := Assemble(o)
	if !v.Healthy {
		t.Errorf("stale election reports, fresh monitor reports: problems %v", v.Problems)
	}
	for _, n := range v.Nodes {
		if n.Name == "n3" && (n.LagBytes == nil || *n.LagBytes != 0x1000000) {
			t.Errorf("n3's lag %v, want 16 MiB from the monitors' reports", n.LagBytes)
		}
	}
	o.Attrs["rampart-pgsql-seen"]["n3"] = fmt.Sprintf("2:0/4000000:0:%d", now.Add(-2*time.Minute).UnixMilli())
	if v := Assemble(o); v.Healthy || !strings.Contains(strings.Join(v.Problems, "\n"), "n3 last reported its position 120 s ago") {
		t.Errorf("n3's monitor silent for 2 minutes: problems %v", v.Problems)
	}
}

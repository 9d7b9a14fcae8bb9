package pacemaker

import (
	"os"
	"slices"
	"testing"
)

func TestParseCrmMon(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		dc      string
		quorate bool
		online  []string
	}{
		{"three nodes online and quorate", "crm_mon-3-online.xml", "n1", true, []string{"n1", "n2", "n3"}},
		{"a node whose link is cut is offline, the rest keep quorum", "crm_mon-n3-offline.xml", "n1", true, []string{"n1", "n2"}},
		{"a node alone is its own DC without quorum", "crm_mon-alone-no-quorum.xml", "n3", false, []string{"n3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseCrmMon(b)
			if err != nil {
				t.Fatal(err)
			}
			if s.DC != tt.dc || s.Quorate != tt.quorate || !slices.Equal(s.Online(), tt.online) {
				t.Errorf("got dc=%q quorate=%v online=%v, want dc=%q quorate=%v online=%v",
					s.DC, s.Quorate, s.Online(), tt.dc, tt.quorate, tt.online)
			}
			if s.Stack != "corosync" || len(s.Nodes) != 3 {
				t.Errorf("got stack %q with %d nodes, want corosync with 3", s.Stack, len(s.Nodes))
			}
		})
	}
}

func TestParseCrmMonFailures(t *testing.T) {
	b, err := os.ReadFile("testdata/crm_mon-watcher-failure.xml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseCrmMon(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{{OpKey: "pgsql_asyncmon_0", Task: "asyncmon", Node: "n1", ExitCode: 1, ExitReason: "Simulated failure"}}
	if !slices.Equal(s.Failures, want) {
		t.Errorf("failures: got %+v, want %+v", s.Failures, want)
	}
	if got := s.Promoted("pgsql"); !slices.Equal(got, []string{"n3"}) {
		t.Errorf("promoted: got %v, want [n3]", got)
	}
	if b, _ := os.ReadFile("testdata/crm_mon-3-online.xml"); len(b) > 0 {
		if s, _ := ParseCrmMon(b); len(s.Failures) != 0 {
			t.Errorf("a clean cluster: got failures %+v", s.Failures)
		}
	}
}

func TestParseCrmMonRejectsGarbageAndErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not XML":        "crm_mon: Error: cluster is not available on this node",
		"error status":   `<pacemaker-result api-version="2.25"><status code="102" message="Not connected"/></pacemaker-result>`,
		"truncated XML":  `<pacemaker-result api-version="2.25"><summary>`,
		"another result": `<other/>`,
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := ParseCrmMon([]byte(in)); err == nil {
				t.Errorf("got %+v and no error", s)
			}
		})
	}
}

func TestParseCrmConfig(t *testing.T) {
	b, err := os.ReadFile("testdata/crm_config.xml")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ParseCrmConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"stonith-enabled": "false", "no-quorum-policy": "stop", "cluster-name": "rampart-fx"} {
		if opts[k] != want {
			t.Errorf("%s = %q, want %q", k, opts[k], want)
		}
	}
}

func FuzzParseCrmMon(f *testing.F) {
	for _, file := range []string{"crm_mon-3-online.xml", "crm_mon-n3-offline.xml"} {
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCrmMon(b)
		if err != nil {
			return
		}
		// An online node is always one of the nodes.
		if len(s.Online()) > len(s.Nodes) {
			t.Errorf("%d online of %d nodes", len(s.Online()), len(s.Nodes))
		}
	})
}

func TestParseAttrdQuery(t *testing.T) {
	out := `name="master-pgsql" host="n3" value=""
name="master-pgsql" host="n1" value="-INFINITY"
name="master-pgsql" host="n2" value="100"
name="rampart-pgsql-memo" host="n4" value="{"joined":{"n3":"0/4E41178"}}"
garbage`
	got := ParseAttrdQuery(out)
	want := map[string]string{"n1": "-INFINITY", "n2": "100", "n4": `{"joined":{"n3":"0/4E41178"}}`}
	if len(got) != 3 || got["n1"] != want["n1"] || got["n2"] != want["n2"] || got["n4"] != want["n4"] {
		t.Errorf("got %v, want %v (a deleted attribute has an empty value; values may hold quotes)", got, want)
	}
}

func TestParseResourceParams(t *testing.T) {
	got, err := ParseResourceParams([]byte(`<resources>
  <clone id="pgsql-clone">
    <primitive id="pgsql" class="ocf" provider="rampart" type="pgsql">
      <instance_attributes id="pgsql-instance_attributes">
        <nvpair id="a" name="pgdata" value="/var/lib/postgresql/lab/data"/>
        <nvpair id="b" name="sync_count" value="1"/>
      </instance_attributes>
    </primitive>
    <meta_attributes id="m"><nvpair id="c" name="promotable" value="true"/></meta_attributes>
  </clone>
  <primitive id="vip" class="ocf" provider="rampart" type="vip">
    <instance_attributes id="vip-ia"><nvpair id="d" name="ip" value="192.168.77.100"/></instance_attributes>
  </primitive>
</resources>`))
	if err != nil {
		t.Fatal(err)
	}
	if got["pgsql"]["pgdata"] != "/var/lib/postgresql/lab/data" || got["pgsql"]["sync_count"] != "1" || got["vip"]["ip"] != "192.168.77.100" {
		t.Errorf("got %v", got)
	}
	if _, meta := got["pgsql"]["promotable"]; meta {
		t.Error("clone meta attributes read as parameters")
	}
	if _, err := ParseResourceParams([]byte("<resources")); err == nil {
		t.Error("broken XML: want an error")
	}
}

// Pacemaker 3.0's crm_mon escapes an exit reason twice.
func TestExitReasonEscapedTwice(t *testing.T) {
	for in, want := range map[string]string{
		`walreceiver: &quot;&quot;; stream_timeout=30s`: `walreceiver: ""; stream_timeout=30s`,
		`plain reason`:     `plain reason`,
		`a &lt; b &amp; c`: `a < b & c`,
	} {
		if got := exitReason(in); got != want {
			t.Errorf("exitReason(%q) = %q; want %q", in, got, want)
		}
	}
}

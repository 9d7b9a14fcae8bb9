package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra"
)

func runApp(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).RunContext(context.Background(), append([]string{"rampart"}, args...))
	code := exitCode(err, &errOut)
	return out.String() + errOut.String(), code
}

func TestHelpAnswersForEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"version"},
		{"lab", "--help"},
		{"agents", "--help"},
		{"status", "--help"},
		{"switchover", "--help"},
		{"backup", "--help"},
		{"rejoin", "--help"},
		{"lab", "up", "--help"},
		{"lab", "seed", "--help"},
		{"lab", "chaos", "--help"},
		{"lab", "down", "--help"},
		{"lab", "status", "--help"},
		{"lab", "exec", "--help"},
		{"lab", "demo", "--help"},
		{"lab", "fault", "--help"},
		{"lab", "fault", "partition", "--help"},
	} {
		out, code := runApp(t, args...)
		if code != 0 || len(out) < 20 {
			t.Errorf("rampart %s: exit %d, output %q", strings.Join(args, " "), code, out)
		}
	}
}

func TestBadLabInputIsRefusedWithUsageExitCode(t *testing.T) {
	for _, args := range [][]string{
		{"lab", "up", "--id", "Not-Valid"},
		{"lab", "up", "--db-hosts", "0"},
		{"lab", "up", "--subnet", "300.1.1.0/24"},
		{"lab", "up", "--subnet", "fd00::/64"},
		{"lab", "chaos", "--kinds", "freeze,meteor"},
		{"lab", "chaos", "--faults", "0"},
	} {
		out, code := runApp(t, args...)
		if code != 2 {
			t.Errorf("rampart %s: exit %d (%q), want 2", strings.Join(args, " "), code, out)
		}
	}
}

func TestExitCode(t *testing.T) {
	var b bytes.Buffer
	if c := exitCode(nil, &b); c != 0 || b.Len() != 0 {
		t.Errorf("nil error: exit %d, output %q", c, b.String())
	}
	if c := exitCode(errors.New("boom"), &b); c != 1 || !strings.Contains(b.String(), "rampart: boom") {
		t.Errorf("plain error: exit %d, output %q", c, b.String())
	}
}

func TestParseGroups(t *testing.T) {
	tests := []struct {
		args []string
		want [][]string
	}{
		{[]string{"n1"}, [][]string{{"n1"}}},
		{[]string{"n1", "/", "n2,n3"}, [][]string{{"n1"}, {"n2", "n3"}}},
		{[]string{"n1/n2", "client"}, [][]string{{"n1"}, {"n2", "client"}}},
		{[]string{"n1,", "n2", "/"}, [][]string{{"n1", "n2"}}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := parseGroups(tt.args); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseGroups(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// The binary runs exactly the agents ra.Agents names (the list the lab and
// the packages link).
func TestAgentDispatchMatchesTheList(t *testing.T) {
	if len(agentMains) != len(ra.Agents) {
		t.Errorf("dispatch has %d agents, ra.Agents %d", len(agentMains), len(ra.Agents))
	}
	for _, name := range ra.Agents {
		if _, ok := agentMains[name]; !ok {
			t.Errorf("agent %q listed but not dispatched", name)
		}
	}
}

// The packages' links come from `rampart agents --nfpm` alone: the nfpm
// file holds none of its own, and every entry printed is a link to the
// binary named by the dispatch table. (test/packages checks the built
// packages hold exactly these.)
func TestPackageLinksComeFromTheDispatchTable(t *testing.T) {
	nfpm, err := os.ReadFile("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(nfpm), "type: symlink") {
		t.Error("packaging/nfpm.yaml lists links of its own: they are appended from `rampart agents --nfpm`")
	}
	if !strings.HasSuffix(strings.TrimSpace(string(nfpm)), "# Agent links (from `rampart agents --nfpm`):") {
		t.Error("packaging/nfpm.yaml must end inside `contents:`, where the links are appended")
	}
	out, code := runApp(t, "agents", "--nfpm")
	if code != 0 {
		t.Fatalf("agents --nfpm: exit %d: %s", code, out)
	}
	var got []string
	entries := strings.Split(strings.TrimPrefix(out, "  - "), "\n  - ")
	for _, e := range entries {
		var src, dst string
		for _, line := range strings.Split(strings.TrimSpace(e), "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
			switch k {
			case "src":
				src = v
			case "dst":
				dst = v
			}
		}
		if path.Join(path.Dir(dst), src) != "/usr/bin/rampart" {
			t.Errorf("link %s → %s does not lead to /usr/bin/rampart", dst, src)
		}
		name := path.Base(dst)
		_, ocf := agentMains[name]
		_, fence := fenceAgents[name]
		switch {
		case ocf && dst != "/usr/lib/ocf/resource.d/rampart/"+name, fence && dst != "/usr/sbin/"+name, !ocf && !fence:
			t.Errorf("link %s: the binary does not run %s from there", dst, name)
		}
		got = append(got, dst)
	}
	if len(got) != len(agentMains)+len(fenceAgents) {
		t.Errorf("links %v; want one per agent of the dispatch table (%d OCF, %d fence)", got, len(agentMains), len(fenceAgents))
	}
}

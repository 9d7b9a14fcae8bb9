package deps

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rampart-ha/rampart"

// rule: packages matching From must not depend (directly or not) on any
// package matching one of Not. A pattern ending in "/..." matches the folder
// and everything below it. Leaves are rampart packages that know nothing
// of rampart themselves (a rule below keeps them so): any package may use them.
type rule struct {
	from string
	not  []string
	why  string
}

var leaves = []string{"internal/manpage"}

var rules = []rule{
	{"internal/manpage", []string{"..."}, "a formatting library: it knows nothing of rampart"},
	{"ra/ocf", []string{"..."}, "the OCF contract knows nothing of rampart"},
	{"fence", []string{"..."}, "the fence-agents API knows nothing of rampart"},
	{"ra/pg", []string{"ra/ocf", "ra/pacemaker", "pooler/...", "vip/..."}, "PostgreSQL control is shared by agent, pooler and CLI"},
	{"ra/pgsql", []string{"pooler/...", "vip/..."}, "the agent does not know the pooler or the VIP"},
	{"vip/...", []string{"ra/...", "pooler/...", "fence/..."}, "address takeover knows no OCF, agent or pooler"},
	{"pooler/...", []string{"ra/ocf", "ra/pacemaker", "ra/pgsql"}, "the pooler never acts as a cluster agent"},
	{"pooler/route", []string{"std:net", "std:os/exec", "ra/..."}, "routing decisions are pure"},
	{"pooler/pool", []string{"std:net", "std:os/exec", "..."}, "the pool is generic: how connections are made, checked and closed is passed in"},
	{"pooler/watchdog/election", []string{"std:net", "std:os/exec", "..."}, "the election is pure: messages and time in, decisions out"},
	{"ops", []string{"pooler/...", "vip/...", "fence/..."}, "operations act through Pacemaker and PostgreSQL, and read poolers over HTTP"},
	{"ra/pacemaker", []string{"ra/pg", "ra/pgsql", "pooler/...", "vip/..."}, "Pacemaker tools know nothing of PostgreSQL"},
}

// Product packages must not link package testing or the test tree; the one
// exception is the CLI, whose `rampart lab` is built on test/lab.
var testTreeAllowed = map[string]bool{module + "/cmd/rampart": true}

func match(pattern, pkg string) bool {
	if strings.HasPrefix(pattern, "std:") {
		return pkg == strings.TrimPrefix(pattern, "std:")
	}
	if pattern == "..." {
		return strings.HasPrefix(pkg, module+"/")
	}
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == module+"/"+p || strings.HasPrefix(pkg, module+"/"+p+"/")
	}
	return pkg == module+"/"+pattern
}

func TestDependencyRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, deps := f[0], f[1:]
		checked++
		for _, r := range rules {
			if !match(r.from, pkg) {
				continue
			}
			for _, d := range deps {
				for _, not := range r.not {
					if d != pkg && match(not, d) && !slices.ContainsFunc(leaves, func(l string) bool { return match(l, d) }) {
						t.Errorf("%s imports %s: %s (the package map: README, Layout)", pkg, d, r.why)
					}
				}
			}
		}
		if strings.HasPrefix(pkg, module+"/test/") {
			// The lab is a library too (the CLI uses it): it must not link testing.
			for _, d := range deps {
				if d == "testing" {
					t.Errorf("%s links package testing; keep test helpers in _test.go files", pkg)
				}
			}
			continue
		}
		// Test helper packages (…test, as net/http/httptest) link testing;
		// a product package importing one is caught here by its own deps.
		helper := strings.HasSuffix(pkg, "test")
		for _, d := range deps {
			if (d == "testing" && !helper) || (match("test/...", d) && !testTreeAllowed[pkg]) {
				t.Errorf("product package %s depends on %s", pkg, d)
			}
		}
	}
	if checked < 3 {
		t.Fatalf("go list reported %d packages: %s", checked, out)
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"pooler/...", module + "/pooler", true},
		{"pooler/...", module + "/pooler/route", true},
		{"pooler/...", module + "/poolerx", false},
		{"ra/pg", module + "/ra/pgsql", false},
		{"...", module + "/vip", true},
		{"...", "github.com/jackc/pgx/v5", false},
		{"std:net", "net", true},
		{"std:net", "net/netip", false},
	} {
		if got := match(tt.pattern, tt.pkg); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.pkg, got, tt.want)
		}
	}
}

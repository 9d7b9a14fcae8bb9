package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// resource-agents' ocf-tester runs every action of the agent against a real
// PostgreSQL instance (n3's, stopped first) and checks the OCF contract:
// exit codes, idempotent start/stop/promote/demote, meta-data.
func TestOCFTester(t *testing.T) {
	if _, err := exec.LookPath("ocf-tester"); err != nil {
		t.Skip("needs ocf-tester (resource-agents; make deps)")
	}
	c := lab.DefaultConfig()
	c.ID = "e2eocft"
	l := startLab(t, c)
	ctx := deadline(t, 4*time.Minute)
	if err := l.StopPostgres(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	// In a cluster with stonith-enabled=false the agent refuses to promote
	// without the override, saying why.
	setStonith := func(v string) {
		t.Helper()
		cmd, err := l.Exec(ctx, "n1", "crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", v)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("stonith-enabled=%s: %v\n%s", v, err, out)
		}
	}
	setStonith("false")
	cmd, err := l.Exec(ctx, "n3", "/usr/lib/ocf/resource.d/rampart/pgsql", "promote")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE="+lab.PgsqlResource, "OCF_RESKEY_pgdata="+lab.PGData)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "stonith-enabled=false") {
		t.Errorf("promote without fencing: %v\n%s\nwant exit 1 naming stonith-enabled=false", err, out)
	}
	if pg := l.Postgres(ctx, "n3"); pg.Up {
		t.Errorf("the refused promote started PostgreSQL (%s)", pg.Role())
	}
	// With the lab's fencing back on, every action passes as configured.
	setStonith("true")
	cmd, err = l.Exec(ctx, "n3", "ocf-tester", "-n", lab.PgsqlResource, "-o", "pgdata="+lab.PGData,
		"/usr/lib/ocf/resource.d/rampart/pgsql")
	if err != nil {
		t.Fatal(err)
	}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "passed all tests") {
		t.Errorf("ocf-tester: %v\n%s", err, out)
	}
}

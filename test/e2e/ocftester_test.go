package e2e

import (
	"context"
	"log/slog"
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
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	if _, err := exec.LookPath("ocf-tester"); err != nil {
		t.Skip("needs ocf-tester (resource-agents; make deps)")
	}
	c := lab.DefaultConfig()
	c.ID, c.Agent = "e2eocft", agentBinary
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("e2e needs %s", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx := deadline(t, 4*time.Minute)
	_ = lab.Destroy(ctx, c.Root, c.ID, log)
	l, err := lab.Up(ctx, c, log)
	t.Cleanup(func() {
		if err := lab.Destroy(context.Background(), c.Root, c.ID, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StopPostgres(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	cmd, err := l.Exec(ctx, "n3", "ocf-tester", "-n", lab.PgsqlResource, "-o", "pgdata="+lab.PGData,
		"/usr/lib/ocf/resource.d/rampart/pgsql")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "passed all tests") {
		t.Errorf("ocf-tester: %v\n%s", err, out)
	}
}

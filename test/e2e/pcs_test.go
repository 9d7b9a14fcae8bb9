package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// pcs (and crm, which the other tests use to configure the clone) must take
// the agent as users write it: pcs reads the meta-data, shows it, creates
// the promotable clone, and refuses a parameter the agent does not have.
func TestPcsAcceptsAgent(t *testing.T) {
	if _, err := exec.LookPath("pcs"); err != nil {
		t.Skip("needs pcs (make deps)")
	}
	c := lab.DefaultConfig()
	c.ID = "e2epcs"
	c.DBHosts = 1
	l := startLab(t, c)
	ctx := deadline(t, 3*time.Minute)
	pcs := func(args ...string) (string, error) {
		cmd, err := l.Exec(ctx, "n1", append([]string{"pcs"}, args...)...)
		if err != nil {
			return "", err
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := pcs("resource", "describe", "ocf:rampart:pgsql")
	if err != nil || !strings.Contains(out, "pgdata") || !strings.Contains(out, "sync_policy") {
		t.Fatalf("pcs resource describe: %v\n%s", err, out)
	}
	out, err = pcs("resource", "create", "pg", "ocf:rampart:pgsql", "pgdata="+lab.PGData, "sync_count=1",
		"promotable", "notify=true", "--disabled")
	if err != nil {
		t.Fatalf("pcs resource create … promotable: %v\n%s", err, out)
	}
	out, err = pcs("resource", "config", "pg-clone")
	if err != nil || !strings.Contains(out, "promotable=true") {
		t.Errorf("pcs resource config pg-clone: %v\n%s", err, out)
	}
	out, err = pcs("resource", "create", "bad", "ocf:rampart:pgsql", "pgdata="+lab.PGData, "sync_cuont=2", "--disabled")
	if err == nil || !strings.Contains(out, "sync_cuont") {
		t.Errorf("pcs took a parameter the agent does not have: %v\n%s", err, out)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/test/lab"
)

// rampart runs the binary in host and returns its output and exit code.
func rampart(t *testing.T, ctx context.Context, l *lab.Lab, host string, args ...string) (string, int) {
	t.Helper()
	cmd, err := l.Exec(ctx, host, append([]string{agentBinary}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("rampart %v on %s: %v", args, host, err)
	}
	return string(out), 0
}

// requireRefused runs a command that must be refused: exit 1 and the words.
func requireRefused(t *testing.T, ctx context.Context, l *lab.Lab, host, want string, args ...string) {
	t.Helper()
	out, code := rampart(t, ctx, l, host, args...)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("rampart %s on %s: exit %d\n%s\nwant exit 1 saying %q", strings.Join(args, " "), host, code, out, want)
	}
}

func statusJSON(t *testing.T, ctx context.Context, l *lab.Lab, host string, args ...string) (ops.View, int) {
	t.Helper()
	out, code := rampart(t, ctx, l, host, append([]string{"status", "--json"}, args...)...)
	var v ops.View
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &v); err != nil {
		t.Fatalf("rampart status --json on %s: %v\n%s", host, err, out)
	}
	return v, code
}

// The operator's commands on one lab under a write load: status, backup
// (from a standby, refused from the primary), switchover (refused to an
// async standby or the primary, done to the sync one), rejoin of an old
// primary the agent refused to start (refused on the primary). No
// acknowledged commit is lost.
func TestOperatorCommands(t *testing.T) {
	s := startScenario(t, "e2eops", lab.PgsqlOptions{"rewind_user": lab.RewindUser})
	l := s.l
	ctx := deadline(t, 6*time.Minute)

	// status: healthy, from any database node, as text and JSON.
	var v ops.View
	if err := lab.WaitFor(ctx, "status healthy", 500*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		var code int
		v, code = statusJSON(t, ctx, l, s.db[1])
		return code == 0 && v.Healthy, strings.Join(v.Problems, "; "), nil
	}); err != nil {
		t.Fatal(err)
	}
	if v.Primary != s.primary || len(v.Nodes) != 3 || len(v.VIPs) != 1 || v.VIPs[0].Nodes[0] != s.primary {
		t.Errorf("status: primary %s, %d nodes, VIPs %+v; want %s, 3, the VIP on it", v.Primary, len(v.Nodes), v.VIPs, s.primary)
	}
	var syncNode, asyncNode string
	for _, n := range v.Nodes {
		switch n.State {
		case "sync":
			syncNode = n.Name
		case "async", "potential": // FIRST 1 (a, b): the other is potential
			asyncNode = n.Name
		}
		if n.Timeline == 0 || n.LSN == "" {
			t.Errorf("status: node %+v lacks its position", n)
		}
	}
	if syncNode == "" || asyncNode == "" {
		t.Fatalf("status: nodes %+v; want one sync and one other standby", v.Nodes)
	}
	if out, code := rampart(t, ctx, l, s.primary, "status"); code != 0 || !strings.Contains(out, "No problems found.") {
		t.Errorf("rampart status: exit %d\n%s", code, out)
	}

	// backup: refused from the primary, taken from a standby and verified.
	root, err := os.MkdirTemp("/var/lib/rampart", "e2e-backup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	refusedDir := filepath.Join(root, "refused")
	requireRefused(t, ctx, l, "client", "is a primary", "backup", "--host", s.addr(s.primary), "--dir", refusedDir)
	if _, err := os.Stat(refusedDir); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s (%v)", refusedDir, err)
	}
	// On a database node it picks the asynchronous standby by itself.
	dir := filepath.Join(root, "auto")
	out, code := rampart(t, ctx, l, s.primary, "backup", "--dir", dir)
	if code != 0 || !strings.Contains(out, "verified with pg_verifybackup") || !strings.Contains(out, "(a standby)") ||
		!strings.Contains(out, "node="+asyncNode) {
		t.Errorf("rampart backup: exit %d\n%s\nwant a verified backup from %s", code, out, asyncNode)
	}
	if _, err := os.Stat(filepath.Join(dir, "backup_manifest")); err != nil {
		t.Errorf("backup: %v", err)
	}
	requireRefused(t, ctx, l, "client", "is not empty", "backup", "--host", s.addr(syncNode), "--dir", dir)

	// switchover: refusals change nothing; then to the sync standby.
	requireRefused(t, ctx, l, s.primary, "is the primary already", "switchover", "--to", s.primary)
	requireRefused(t, ctx, l, s.primary, "--ignore "+s.primary+": it is the primary", "switchover", "--to", syncNode, "--ignore", s.primary)
	requireRefused(t, ctx, l, s.primary, `"n9" is not a node of the cluster`, "switchover", "--to", "n9")
	if p, _ := promoted(ctx, l, s.primary); len(p) != 1 || p[0] != s.primary {
		t.Fatalf("after refused switchovers promoted %v; want %s still", p, s.primary)
	}
	start := time.Now()
	out, code = rampart(t, ctx, l, asyncNode, "switchover", "--to", syncNode)
	if code != 0 || !strings.Contains(out, "switchover to "+syncNode+" done") {
		t.Fatalf("rampart switchover --to %s: exit %d\n%s", syncNode, code, out)
	}
	t.Logf("switchover %s → %s: %s; longest write stall %s", s.primary, syncNode, lastLine(out),
		s.w.LongestStall(start, time.Now()).Round(10*time.Millisecond))
	s.primary = syncNode
	if out, _ := l.Output(ctx, syncNode, "cibadmin", "--query", "--scope", "constraints"); strings.Contains(out, "cli-prefer") || strings.Contains(out, "cli-ban") {
		t.Errorf("switchover left its move constraint:\n%s", out)
	}

	// status after a primary change: healthy, and still healthy once every
	// report an election or the promotion made is older than the 30 s after
	// which status calls a position stale (the chaos campaign found status
	// stuck at "its monitor is not running": positions were published only
	// for elections).
	switched := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 90*time.Second)
	defer fcancel()
	if err := lab.WaitFor(fctx, "rampart status exit 0 more than 40 s after the switchover", time.Second, func(ctx context.Context) (bool, string, error) {
		out, code := rampart(t, ctx, l, syncNode, "status")
		return code == 0 && time.Since(switched) > 40*time.Second, fmt.Sprintf("exit %d after %s: %s", code, time.Since(switched).Round(time.Second), out), nil
	}); err != nil {
		t.Fatal(err)
	}

	// rejoin: refused on the primary; after the primary's postmaster is
	// killed, Pacemaker keeps the old primary stopped (migration-threshold=1;
	// the agent would refuse to start it, auto_rejoin being off) and status
	// says so; rejoin makes it a standby again.
	requireRefused(t, ctx, l, s.primary, "is the current primary", "rejoin")
	if _, err := l.KillPostmaster(ctx, s.primary); err != nil {
		t.Fatal(err)
	}
	failed := s.primary
	newPrimary := s.waitNewPrimary(t, ctx, failed)
	s.primary = newPrimary
	if err := lab.WaitFor(ctx, "status to name the failed node", 500*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		v, code := statusJSON(t, ctx, l, newPrimary)
		joined := strings.Join(v.Problems, "; ")
		return code == 2 && strings.Contains(joined, failed), joined, nil
	}); err != nil {
		t.Error(err)
	}
	out, code = rampart(t, ctx, l, failed, "rejoin")
	if code != 0 || !strings.Contains(out, "rejoined in") {
		t.Fatalf("rampart rejoin on %s: exit %d\n%s", failed, code, out)
	}
	t.Logf("rejoin of %s: %s", failed, lastLine(out))
	if !strings.Contains(out, "rewound with pg_rewind") && !strings.Contains(l.AgentLog(failed), "rewound with pg_rewind") {
		t.Logf("rejoin did not use pg_rewind:\n%s", out)
	}
	var standbys []string
	for _, h := range s.db {
		if h != newPrimary {
			standbys = append(standbys, h)
		}
	}
	if err := l.WaitStreaming(ctx, newPrimary, standbys); err != nil {
		t.Error(err)
	}
	if err := lab.WaitFor(ctx, "status healthy again", 500*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		v, code := statusJSON(t, ctx, l, newPrimary)
		return code == 0 && v.Primary == newPrimary, strings.Join(v.Problems, "; "), nil
	}); err != nil {
		t.Error(err)
	}
	if p, _ := promoted(ctx, l, newPrimary); slices.Contains(p, failed) {
		t.Errorf("rejoined %s promoted", failed)
	}
	s.requireNoLoss(t, ctx)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// rampart rejoin without a rewind_user copies the new primary with
// pg_basebackup; Pacemaker's start must take that copy as a standby,
// although its pg_control, the primary's as it ran, says "in production"
// (CI's seed run waited ten minutes on exactly this after a pg_rewind
// failed and rejoin fell back to a copy).
func TestRejoinRecloned(t *testing.T) {
	s := startScenario(t, "e2erecl", nil)
	l := s.l
	ctx := deadline(t, 4*time.Minute)
	if _, err := l.KillPostmaster(ctx, s.primary); err != nil {
		t.Fatal(err)
	}
	failed := s.primary
	newPrimary := s.waitNewPrimary(t, ctx, failed)
	out, code := rampart(t, ctx, l, failed, "rejoin", "--timeout", "90s")
	if code != 0 || !strings.Contains(out, "rejoined in") || !strings.Contains(out, "re-cloned with pg_basebackup") {
		t.Fatalf("rampart rejoin on %s without a rewind_user: exit %d\n%s\nwant a copy that streams", failed, code, out)
	}
	t.Logf("rejoin of %s by a fresh copy: %s", failed, lastLine(out))
	if !strings.Contains(l.AgentLog(failed), "base backup that no server has started") {
		t.Errorf("the start did not say it took a base backup:\n%s", tailLines(l.AgentLog(failed), 20))
	}
	if err := l.WaitStreaming(ctx, newPrimary, []string{failed}); err != nil {
		t.Error(err)
	}
	s.requireNoLoss(t, ctx)
}

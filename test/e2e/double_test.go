package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// The double fault: the asynchronous standby falls behind (it receives no
// WAL), the synchronous standby's PostgreSQL dies and stays down, so the
// primary blocks writes (sync_policy=durability) with every acknowledged
// commit on itself and on the dead synchronous standby; then the primary's
// host crashes. The survivor restarts (its host reboots: its -INFINITY
// promotion score is gone with every transient attribute). It misses
// acknowledged commits, so it must not be promoted: it waits, and `rampart
// status` says which node must come back. When the old primary's host is
// booted, it is promoted (it has every acknowledged commit); nothing is lost.
func TestSurvivorRestartWaitsForTheSynchronousSet(t *testing.T) {
	s := startScenario(t, "e2edouble", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 6*time.Minute)
	sync, async := s.standbys(t, ctx, old)

	if err := l.HoldWAL(ctx, async); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	s.waitWrites(t, ctx, s.w, held, "", 30) // acknowledged by old and sync alone
	if _, err := l.KillPostmaster(ctx, sync); err != nil {
		t.Fatal(err)
	}
	ban(t, ctx, l, old, sync) // it stays down, whatever the failure handling
	if err := lab.WaitFor(ctx, "writes blocked on "+old, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		state, err := l.NodeAttr(ctx, old, "rampart-"+lab.PgsqlResource+"-state")
		return state == "primary-writes-blocked", fmt.Sprintf("state %q %v", state, err), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Crash(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	fenced := func(ctx context.Context) (bool, string, error) {
		hist, err := l.FenceHistory(ctx, sync, old)
		return strings.Contains(hist, "of "+old+" successful"), fmt.Sprintf("%q %v", hist, err), nil
	}
	if err := lab.WaitFor(ctx, old+" fenced", 200*time.Millisecond, fenced); err != nil {
		t.Fatal(err)
	}
	// The survivor reboots: its transient attributes are gone.
	if err := l.Crash(ctx, async); err != nil {
		t.Fatal(err)
	}
	if err := l.Boot(ctx, async); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitClusterOnline(ctx, []string{sync, async}); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, async+" running as a standby again", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st := l.Postgres(ctx, async)
		return st.Role() == "standby", st.Error, nil
	}); err != nil {
		t.Fatal(err)
	}
	// Several election rounds (the standby monitor runs every 4 s): never
	// promoted, and it says whom it waits for.
	watchUntil := time.Now().Add(20 * time.Second)
	if err := lab.WaitFor(ctx, "20 s without a promotion, and the agent saying it waits", 250*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		if p, err := promoted(ctx, l, async); err == nil && len(p) > 0 {
			return false, "", fmt.Errorf("promoted %v: %s misses commits only %s and %s have", p, async, old, sync)
		}
		if st := l.Postgres(ctx, async); st.Role() == "primary" {
			return false, "", fmt.Errorf("%s runs as a primary", async)
		}
		waits := strings.Contains(l.AgentLog(async), "has every acknowledged commit")
		return time.Now().After(watchUntil) && waits, fmt.Sprintf("agent says it waits: %v", waits), nil
	}); err != nil {
		t.Fatal(err)
	}
	out, code := rampart(t, ctx, l, sync, "status")
	if code != 2 || !strings.Contains(out, old) || !strings.Contains(out, "must come back") {
		t.Errorf("rampart status on %s: exit %d\n%s\nwant exit 2 saying %s must come back", sync, code, out, old)
	}
	// The old primary comes back: it has every acknowledged commit.
	if err := l.Boot(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, old+" promoted again", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		p, err := promoted(ctx, l, async)
		return err == nil && len(p) == 1 && p[0] == old, fmt.Sprintf("promoted %v %v", p, err), nil
	}); err != nil {
		t.Fatal(err)
	}
	first := s.waitWrites(t, ctx, s.w, fault, "", 20)
	t.Logf("%s and %s lost, %s restarted and waited; %s back and promoted; first write %s after the crash", old, sync, async, old,
		first.Sub(fault).Round(100*time.Millisecond))
	unban(t, ctx, l, old, sync)
	if err := l.WaitStreaming(ctx, old, []string{sync, async}); err != nil {
		t.Error(err)
	}
	s.requireNoLoss(t, ctx)
}

// ban keeps host's instance of the clone stopped (an operator's ban).
func ban(t *testing.T, ctx context.Context, l *lab.Lab, from, host string) {
	t.Helper()
	crmResource(t, ctx, l, from, "--ban", "--resource", lab.PgsqlResource+"-clone", "--node", host)
}

func unban(t *testing.T, ctx context.Context, l *lab.Lab, from, host string) {
	t.Helper()
	crmResource(t, ctx, l, from, "--clear", "--resource", lab.PgsqlResource+"-clone", "--node", host)
}

func crmResource(t *testing.T, ctx context.Context, l *lab.Lab, from string, args ...string) {
	t.Helper()
	cmd, err := l.Exec(ctx, from, append([]string{"crm_resource"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crm_resource %v on %s: %v\n%s", args, from, err, out)
	}
}

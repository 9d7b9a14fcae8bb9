package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// Compound faults: two things go wrong at once, in the orders the agent's
// review found dangerous.

// standbys returns the synchronous standby (as the primary's
// pg_stat_replication says) and the other one, once there is one of each.
func (s *scenario) standbys(t *testing.T, ctx context.Context, primary string) (sync, async string) {
	t.Helper()
	if err := lab.WaitFor(ctx, "a synchronous and an asynchronous standby", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		sync, async = "", ""
		for _, r := range s.l.Postgres(ctx, primary).Replication {
			switch {
			case r.State != "streaming":
			case r.SyncState == "sync":
				sync = r.Name
			case r.SyncState == "async" || r.SyncState == "potential":
				async = r.Name
			}
		}
		return sync != "" && async != "", "sync " + sync + ", async " + async, nil
	}); err != nil {
		t.Fatal(err)
	}
	return sync, async
}

// The fork: the synchronous standby receives no WAL for a moment while the
// asynchronous one receives the WAL of commits still waiting for it; then
// the primary's host freezes. The synchronous standby is promoted (it has
// every acknowledged commit); the asynchronous one holds WAL past the new
// timeline's fork point, which PostgreSQL refuses to follow ("forked off
// ... before current recovery point"). The agent sees the fork, Pacemaker
// restarts that standby and its start rewinds or re-clones it: it streams
// and is synchronous again, and writes, which wait for a synchronous
// standby under sync_policy=durability, resume. Nothing acknowledged is
// lost: what lay past the fork was never acknowledged.
func TestForkedStandbyRepaired(t *testing.T) {
	s := startScenario(t, "e2efork", nil)
	l, old := s.l, s.primary
	ctx := deadline(t, 4*time.Minute)
	sync, async := s.standbys(t, ctx, old)

	if err := l.HoldWAL(ctx, sync); err != nil {
		t.Fatal(err)
	}
	held := l.Postgres(ctx, sync).LSN
	if err := lab.WaitFor(ctx, async+" to replay WAL that "+sync+" has not received", 20*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		a := l.Postgres(ctx, async).LSN
		return lsnAfter(a, held), fmt.Sprintf("%s at %s, %s held at %s", async, a, sync, held), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Freeze(ctx, old); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	newPrimary := s.waitNewPrimary(t, ctx, old)
	if newPrimary != sync {
		t.Fatalf("%s promoted, want the synchronous standby %s", newPrimary, sync)
	}
	// The frozen host's kernel retransmits what the walsender sent: release
	// the hold only once fencing has powered it off.
	if err := lab.WaitFor(ctx, old+" powered off by its fencing", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return l.Crashed(old), "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.ReleaseWAL(ctx, sync); err != nil {
		t.Fatal(err)
	}
	first := s.waitWrites(t, ctx, s.w, fault, "", 20)
	if err := l.WaitStreaming(ctx, newPrimary, []string{async}); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(ctx, async+" synchronous again", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st := l.Postgres(ctx, newPrimary)
		return slices.ContainsFunc(st.Replication, func(r lab.Replica) bool { return r.Name == async && r.SyncState == "sync" }), fmt.Sprintf("%+v", st.Replication), nil
	}); err != nil {
		t.Error(err)
	}
	log := l.AgentLog(async)
	if !strings.Contains(log, "forked") || !strings.Contains(log, "discard") {
		t.Errorf("%s's agent log does not say it found the fork and what it discarded:\n%s", async, tailLines(log, 30))
	}
	t.Logf("%s froze; %s promoted; %s had forked and was repaired; first write after %s", old, newPrimary, async,
		first.Sub(fault).Round(10*time.Millisecond))
	s.requireNoLoss(t, ctx)
}

// lsnAfter says whether LSN text a is past b ("" is never past).
func lsnAfter(a, b string) bool {
	var ah, al, bh, bl uint64
	if _, err := fmt.Sscanf(a, "%X/%X", &ah, &al); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%X/%X", &bh, &bl); err != nil {
		return true
	}
	return ah<<32|al > bh<<32|bl
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

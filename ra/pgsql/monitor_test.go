package pgsql

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pg"
)

// How long a standby has not streamed, across monitors a few seconds
// apart; a gap longer than a monitor's starts a new episode.
func TestStreamWatch(t *testing.T) {
	const s = int64(1000)
	next, off := StreamWatch("", 100*s)
	if next != "100000:100000" || off != 0 {
		t.Errorf("first look: %q, %s", next, off)
	}
	next, off = StreamWatch(next, 104*s)
	if next != "100000:104000" || off != 4*time.Second {
		t.Errorf("next monitor: %q, %s", next, off)
	}
	next, off = StreamWatch(next, 134*s)
	if next != "134000:134000" || off != 0 {
		t.Errorf("a gap of 30 s (it streamed meanwhile): %q, %s; want a new episode", next, off)
	}
	for _, bad := range []string{"x:y", "5:4", "200000:300000", "1"} {
		if _, off := StreamWatch(bad, 134*s); off != 0 {
			t.Errorf("StreamWatch(%q): %s, want a new episode", bad, off)
		}
	}
}

// rampart rejoin and Pacemaker's start take the same lock: the second
// waits while the first holds it, and gives up, saying why, when its own
// time is up.
func TestLockDataDir(t *testing.T) {
	c := &call{node: "n1", log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		cfg: config{inst: pg.Instance{DataDir: filepath.Join(t.TempDir(), "main")}}}
	unlock, err := c.lockDataDir(context.Background(), "rejoin")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.lockDataDir(ctx, "start"); err == nil || !strings.Contains(err.Error(), "another action holds") {
		t.Fatalf("second lock while the first is held: %v, want a refusal naming the other action", err)
	}
	got := make(chan error, 1)
	go func() {
		unlock2, err := c.lockDataDir(context.Background(), "start")
		if err == nil {
			unlock2()
		}
		got <- err
	}()
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("after the first unlocked: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting start never got the lock")
	}
}

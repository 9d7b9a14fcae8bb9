package chaos

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/chaos/history"
	"github.com/rampart-ha/rampart/test/lab"
)

// A short seeded campaign on a fresh lab, as `rampart lab chaos` runs it:
// six faults, every one followed by convergence, and the history clean
// (ARCHITECTURE.md invariants 1 and 2: one writable primary, no acknowledged
// commit lost).
func TestChaosShort(t *testing.T) {
	l, bin, log := campaignLab(t, "chaos", false)
	// The kinds of the day seed 19 was chosen: a new kind changes the plan.
	kinds := []Kind{PostmasterKill, HostCrash, Freeze, LinkCut, Partition, PoolerFreeze, Overlap}
	o := Options{Seed: 19, Faults: 6, Kinds: kinds, Duration: 15 * time.Minute, ConvergeTimeout: time.Minute,
		Bin: bin, Progress: testWriter{t}, Now: time.Now, ClientsPerPath: 2, Pace: 50 * time.Millisecond}
	res := runCampaign(t, l, o, log)
	for _, v := range res.Report.Violations {
		t.Errorf("%s (replay: %s)", v, Replay(o))
	}
	for _, m := range res.Misses {
		t.Errorf("not converged after %s:\n%s", m.After, m.Status)
	}
}

// The checker can fail: the same campaign on a cluster that acknowledges
// commits before its synchronous standby has them (lab.Config.EarlyAck)
// loses the commits its isolated primary acknowledged while the rest
// fenced it and promoted the standby, and the checker says so.
func TestChaosCatchesEarlyAcks(t *testing.T) {
	l, bin, log := campaignLab(t, "chaosack", true)
	// Seed 2 holds the partition 11.4 s: long past fencing (about 4 s).
	o := Options{Seed: 2, Faults: 1, Kinds: []Kind{PartitionClient}, Duration: 5 * time.Minute, ConvergeTimeout: time.Minute,
		Bin: bin, Progress: testWriter{t}, Now: time.Now, ClientsPerPath: 2, Pace: 50 * time.Millisecond, EarlyAck: true}
	res := runCampaign(t, l, o, log)
	lost := 0
	for _, v := range res.Report.Violations {
		if v.Kind == history.LostWrite {
			lost++
		}
	}
	if lost == 0 {
		t.Errorf("a primary that acknowledged commits on its own was cut off with its clients, yet the checker found no lost write (%d violations)", len(res.Report.Violations))
	}
	t.Logf("caught: %d lost writes, %d violations in all", lost, len(res.Report.Violations))
}

// campaignLab builds a fresh campaign lab id (EarlyAck: broken on
// purpose) with the tree's rampart, and removes it when the test ends.
func campaignLab(t *testing.T, id string, earlyAck bool) (*lab.Lab, string, *slog.Logger) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("chaos: needs root (network namespaces)")
	}
	dir := "/var/lib/rampart/" + id + "-bin"
	bin, err := lab.BuildAgent("../..", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := LabConfig(lab.DefaultConfig())
	c.ID, c.Agent, c.EarlyAck = id, bin, earlyAck
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("chaos needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Up(ctx, c, log)
	t.Cleanup(func() { lab.Destroy(context.Background(), c.Root, c.ID, log) })
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(ctx, l); err != nil {
		t.Fatal(err)
	}
	return l, bin, log
}

// runCampaign runs o on l and logs its report.
func runCampaign(t *testing.T, l *lab.Lab, o Options, log *slog.Logger) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration+10*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, l, o, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(t.TempDir(), res, o, time.Since(start)); err != nil {
		t.Fatal(err)
	}
	t.Log(Markdown(res, o, time.Since(start)))
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

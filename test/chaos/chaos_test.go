package chaos

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// A short seeded campaign on a fresh lab, as `rampart lab chaos` runs it:
// six faults, every one followed by convergence, and the history clean
// (ARCHITECTURE.md invariants 1 and 2: one writable primary, no acknowledged
// commit lost).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("chaos: needs root (network namespaces)")
	}
	bin, err := lab.BuildAgent("../..", "/var/lib/rampart/chaos-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll("/var/lib/rampart/chaos-bin") })
	c := LabConfig(lab.DefaultConfig())
	c.ID, c.Agent = "chaos", bin
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("chaos needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
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
	o := Options{Seed: 19, Faults: 6, Kinds: Kinds(), Duration: 15 * time.Minute, ConvergeTimeout: time.Minute,
		Bin: bin, Progress: testWriter{t}, Now: time.Now, ClientsPerPath: 2, Pace: 50 * time.Millisecond}
	start := time.Now()
	res, err := Run(ctx, l, o, log)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := Write(out, res, o, time.Since(start)); err != nil {
		t.Fatal(err)
	}
	t.Log(Markdown(res, o, time.Since(start)))
	for _, v := range res.Report.Violations {
		t.Errorf("%s (replay: %s)", v, Replay(o.Seed, o.Faults, o.Kinds))
	}
	for _, m := range res.Misses {
		t.Errorf("not converged after %s:\n%s", m.After, m.Status)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

package seed

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// The seed's experiments on a fresh lab, as `rampart lab seed` runs them:
// within 15 minutes all in, every experiment runs and finishes, no commit
// is lost, and the report and plots say what the issue asks.
func TestSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("seed: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("seed: needs root (network namespaces)")
	}
	start := time.Now()
	bin, err := lab.BuildAgent("../..", "/var/lib/rampart/seed-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll("/var/lib/rampart/seed-bin") })
	c := LabConfig(lab.DefaultConfig())
	c.ID, c.Agent = "seedtest", bin
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("seed needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Up(ctx, c, log)
	t.Cleanup(func() {
		if t.Failed() && l != nil {
			dumpLab(t, l)
		}
		lab.Destroy(context.Background(), c.Root, c.ID, log)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(ctx, l); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	results, err := RunAll(ctx, l, Options{Bin: bin, Out: out, Pace: 10 * time.Millisecond, Writers: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	report := Markdown("seed", results, nil)
	t.Logf("all in %s:\n%s", took.Round(time.Second), report)
	if took > 15*time.Minute {
		t.Errorf("the seed took %s; want under 15 minutes", took)
	}
	answer := func(r Result, label string) string {
		for _, a := range r.Answers {
			if strings.HasPrefix(a.Label, label) {
				return a.Value
			}
		}
		t.Errorf("experiment %s: no answer %q", r.N, label)
		return ""
	}
	for _, r := range results {
		if r.Skipped != "" {
			t.Errorf("experiment %s did not run: %s", r.N, r.Skipped)
			continue
		}
		if r.Err != "" {
			t.Errorf("experiment %s did not finish: %s", r.N, r.Err)
			continue
		}
		if r.Figures["lost"] != 0 || r.Figures["acknowledged"] < 100 {
			t.Errorf("experiment %s: %v lost of %v acknowledged (%s)", r.N, r.Figures["lost"], r.Figures["acknowledged"], answer(r, "lost commits"))
		}
		// The plot exists and draws the load: a point per bucket.
		svg, err := os.ReadFile(filepath.Join(out, r.Plot))
		if err != nil {
			t.Errorf("experiment %s: %v", r.N, err)
		} else if n := strings.Count(string(svg), ","); n < 2*int(20*time.Second/Bucket) || !strings.Contains(string(svg), "stroke-dasharray") {
			t.Errorf("experiment %s: the plot has %d points and no marks?", r.N, n)
		}
		f := r.Figures
		switch r.N {
		case "1":
			if f["first_write_s"] <= 0 || f["full_write_s"] < f["first_write_s"] {
				t.Errorf("experiment 1: first write %vs, full throughput %vs", f["first_write_s"], f["full_write_s"])
			}
		case "2":
			if _, ok := f["write_stall_s"]; !ok {
				t.Errorf("experiment 2: no write stall figure")
			}
		case "3":
			if f["errors"] != 0 || f["split_brain"] != 0 || f["rejoin_s"] <= 0 {
				t.Errorf("experiment 3: %v client errors during the failback, split brain %v, rejoined after %vs; want 0, 0, > 0", f["errors"], f["split_brain"], f["rejoin_s"])
			}
		case "3b":
			if f["errors"] != 0 || f["switchover_s"] <= 0 {
				t.Errorf("experiment 3b: %v client errors failing back through the holding poolers, done after %vs; want 0, > 0", f["errors"], f["switchover_s"])
			}
		case "4":
			// Latency-bound reads: each standby adds its pool's worth.
			if f["linear_2"] < 0.75 || f["linear_3"] < 0.7 {
				t.Errorf("experiment 4: %v, %v, %v TPS on 1–3 standbys: %.0f %% and %.0f %% of linear; want ≥ 75 %% and 70 %%",
					f["tps_1"], f["tps_2"], f["tps_3"], 100*f["linear_2"], 100*f["linear_3"])
			}
		case "5":
			if f["errors"] != 0 {
				t.Errorf("experiment 5: %v client errors removing a standby; want 0", f["errors"])
			}
		case "6":
			if f["takeover_s"] <= 0 || f["takeover_s"] > 5 {
				t.Errorf("experiment 6: the other pooler took the address after %vs", f["takeover_s"])
			}
		case "7":
			if !(f["primary_cpu_backup_from_standby"] < f["primary_cpu_backup_from_primary"]) {
				t.Errorf("experiment 7: the primary's CPU was not lower with the backup from a standby: %v", f)
			}
		}
	}
}

// dumpLab logs what a failed run needs to be understood: crm_mon, then
// the last lines of each database host's fencer, PostgreSQL start-up and
// agent logs (the end of the output is what a CI summary keeps).
func dumpLab(t *testing.T, l *lab.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, h := range l.DBHosts() {
		if cmd, err := l.Exec(ctx, h, "crm_mon", "-1A", "--inactive"); err == nil {
			out, _ := cmd.CombinedOutput()
			t.Logf("--- crm_mon -1A --inactive on %s\n%s", h, out)
			break
		}
	}
	tail := func(s string, n int) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return strings.Join(lines[max(0, len(lines)-n):], "\n")
	}
	for _, h := range l.DBHosts() {
		t.Logf("--- fencer log of %s\n%s", h, tail(l.FenceLog(h), 10))
		t.Logf("--- postgres start-up log of %s\n%s", h, l.PostgresLog(h, 20))
		t.Logf("--- agent log of %s (last 40 lines)\n%s", h, tail(l.AgentLog(h), 40))
	}
}

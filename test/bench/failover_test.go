package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

var agentBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if os.Getenv("RAMPART_BENCH") == "" || os.Geteuid() != 0 {
			return m.Run()
		}
		dir := "/var/lib/rampart/bench-bin"
		defer os.RemoveAll(dir)
		bin, err := lab.BuildAgent("../..", dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		agentBinary = bin
		return m.Run()
	}()
	os.Exit(code)
}

type run struct {
	firstWrite time.Duration // fault → first acknowledged write
	lost       int
	acked      int
}

type agent struct {
	name   string
	manage func(ctx context.Context, l *lab.Lab) error
}

var agents = []agent{
	{"ocf:rampart:pgsql", func(ctx context.Context, l *lab.Lab) error {
		if err := l.ManagePostgres(ctx, nil); err != nil {
			return err
		}
		return l.AddVIP(ctx, lab.PgsqlResource+"-clone")
	}},
	{"ocf:heartbeat:pgsql (ClusterLabs, rep_mode=sync)", func(ctx context.Context, l *lab.Lab) error { return l.ManageClusterLabsPgsql(ctx) }},
}

// TestFailoverBench kills the primary's postmaster under a write load
// through the VIP, for each agent in turn with the same lab, monitors
// (3 s promoted, 4 s unpromoted), VIP and load, and prints the time from
// the kill to the first acknowledged write and the acknowledged commits
// lost.
func TestFailoverBench(t *testing.T) {
	if os.Getenv("RAMPART_BENCH") == "" {
		t.Skip("benchmark: run it with `make bench` (RAMPART_BENCH=1)")
	}
	runs := 3
	if n, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	c := lab.DefaultConfig()
	c.ID, c.Agent = "bench", agentBinary
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("benchmark needs %s", strings.Join(missing, ", "))
	}
	results := map[string][]run{}
	for i := 0; i < runs; i++ {
		for _, a := range agents { // interleaved, so drift hits both alike
			if only := os.Getenv("RAMPART_BENCH_ONLY"); only != "" && !strings.Contains(a.name, only) {
				continue
			}
			r, err := killPrimary(t, c, a)
			if err != nil {
				t.Fatalf("%s, run %d: %v", a.name, i+1, err)
			}
			t.Logf("%s, run %d: first write after %s, %d of %d acknowledged commits lost", a.name, i+1, r.firstWrite.Round(10*time.Millisecond), r.lost, r.acked)
			results[a.name] = append(results[a.name], r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nfailover: primary postmaster killed, writes through the VIP (%d runs each, interleaved)\n", runs)
	fmt.Fprintf(&b, "%-50s %-30s %s\n", "agent", "kill → first write: median (runs)", "lost commits")
	medians := map[string]time.Duration{}
	for _, a := range agents {
		if len(results[a.name]) == 0 {
			continue
		}
		var ds []time.Duration
		lost := 0
		for _, r := range results[a.name] {
			ds = append(ds, r.firstWrite)
			lost += r.lost
		}
		slices.Sort(ds)
		med := ds[len(ds)/2]
		medians[a.name] = med
		var each []string
		for _, d := range ds {
			each = append(each, d.Round(10*time.Millisecond).String())
		}
		fmt.Fprintf(&b, "%-50s %-30s %d\n", a.name, med.Round(10*time.Millisecond).String()+" ("+strings.Join(each, " ")+")", lost)
	}
	if ours, theirs := medians[agents[0].name], medians[agents[1].name]; ours > 0 && theirs > 0 {
		fmt.Fprintf(&b, "ratio rampart / ClusterLabs (medians): %.2f\n", float64(ours)/float64(theirs))
	}
	t.Log(b.String())
	fmt.Println(b.String())
}

func killPrimary(t *testing.T, c lab.Config, a agent) (r run, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		return run{}, err
	}
	defer func() {
		// RAMPART_BENCH_KEEP=1 leaves a failed run's lab for a look (rampart lab status --id bench).
		if err == nil || os.Getenv("RAMPART_BENCH_KEEP") == "" {
			lab.Destroy(context.Background(), c.Root, c.ID, log)
		}
	}()
	l, err := lab.Up(ctx, c, log)
	if err != nil {
		return run{}, err
	}
	if err := a.manage(ctx, l); err != nil {
		return run{}, err
	}
	w, err := l.NewWriter("client", "host="+l.Config().VIP().String(), 10*time.Millisecond)
	if err != nil {
		return run{}, err
	}
	if err := w.Start(ctx); err != nil {
		return run{}, err
	}
	defer w.Stop()
	if err := lab.WaitFor(ctx, "100 acknowledged writes", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(time.Time{}, "")
		return n >= 100, fmt.Sprint(n), nil
	}); err != nil {
		return run{}, err
	}
	s, err := l.Cluster(ctx, l.DBHosts()[0])
	if err != nil {
		return run{}, err
	}
	p := s.Promoted(lab.PgsqlResource)
	if len(p) != 1 {
		return run{}, fmt.Errorf("promoted %v", p)
	}
	if _, err := l.KillPostmaster(ctx, p[0]); err != nil {
		return run{}, err
	}
	fault := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := lab.WaitFor(wctx, "20 writes acknowledged after the kill", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(fault, "")
		return n >= 20, fmt.Sprintf("%d, %d errors", n, w.Errors()), nil
	}); err != nil {
		return run{}, err
	}
	_, first := w.AckedSince(fault, "")
	w.Stop()
	lost, err := w.Missing(ctx)
	if err != nil {
		return run{}, err
	}
	return run{firstWrite: first.Sub(fault), lost: len(lost), acked: len(w.IDs())}, nil
}

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
	"sync"
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

type agent struct {
	name   string
	manage func(ctx context.Context, l *lab.Lab) error
}

var agents = []agent{
	{"ocf:rampart:pgsql + ocf:rampart:vip", func(ctx context.Context, l *lab.Lab) error {
		if err := l.ManagePostgres(ctx, nil); err != nil {
			return err
		}
		return l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP)
	}},
	{"ocf:heartbeat:pgsql (rep_mode=sync) + IPaddr2", func(ctx context.Context, l *lab.Lab) error { return l.ManageClusterLabsPgsql(ctx) }},
}

// outcome is one run of a scenario: its durations (named by the
// scenario's metrics, in order) and its commit counts.
type outcome struct {
	durations []time.Duration
	lost      int // acknowledged commits missing afterwards
	asyncAcks int // commits a primary acknowledged with synchronous_standby_names empty
	acked     int
}

type scenario struct {
	name    string
	runs    int // per agent, unless RAMPART_BENCH_RUNS says otherwise
	metrics []string
	// within counts, for the metric of that index, the runs that took at
	// most that long (a promise made of a share of runs, not a median).
	within map[int]time.Duration
	run    func(ctx context.Context, b *bed) (outcome, error)
}

// probed names the prober's figure: lab.NewProber's fresh connection every
// 100 ms, 500 ms to connect and commit.
const probed = "(100 ms prober: a new connection each time, 500 ms timeout)"

var scenarios = []scenario{
	{"primary postmaster killed", 20, []string{
		"kill → first write through the VIP " + probed,
		"kill → first write through the VIP (write load: one connection, 3 s timeout)",
		"kill → first write, libpq multi-host (target_session_attrs=read-write)",
		"kill → new primary has a sync standby",
		"new primary writable with no sync standby named"}, map[int]time.Duration{0: 1500 * time.Millisecond}, killPrimary},
	{"sync standby postmaster killed", 3, []string{"longest write stall", "kill → another standby is sync"}, nil, killSyncStandby},
	// The lab fences through each host's simulated BMC (fence_rampart_ipmi,
	// stonith-action=off) for both agents alike.
	{"primary host frozen (SIGSTOP of every process; fenced)", 5, []string{
		"freeze → first write through the VIP " + probed,
		"freeze → a standby writable (sampled every 100 ms)",
		"freeze → first write through the VIP (write load)",
		"freeze → first write, libpq multi-host (target_session_attrs=read-write)"}, map[int]time.Duration{0: 5 * time.Second}, freezePrimary},
	{"primary host crashed (every process killed, link down; fenced)", 5, []string{
		"crash → first write through the VIP " + probed,
		"crash → a standby writable (sampled every 100 ms)",
		"crash → first write through the VIP (write load)",
		"crash → first write, libpq multi-host (target_session_attrs=read-write)"}, map[int]time.Duration{0: 5 * time.Second}, crashPrimary},
}

// TestFailoverBench runs each scenario under a write load through the VIP,
// for each agent in turn (interleaved, so drift hits both alike) with the
// same lab, monitors (3 s promoted, 4 s unpromoted), VIP and load, and
// prints medians, ranges and ratios.
func TestFailoverBench(t *testing.T) {
	if os.Getenv("RAMPART_BENCH") == "" {
		t.Skip("benchmark: run it with `make bench` (RAMPART_BENCH=1)")
	}
	c := lab.DefaultConfig()
	c.ID, c.Agent = "bench", agentBinary
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("benchmark needs %s", strings.Join(missing, ", "))
	}
	var report strings.Builder
	for _, sc := range scenarios {
		only := os.Getenv("RAMPART_BENCH_SCENARIO")
		if only != "" && !strings.Contains(sc.name, only) {
			continue
		}
		results := map[string][]outcome{}
		runs := sc.runs
		if n, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_RUNS")); err == nil && n > 0 {
			runs = n
		}
		for i := 0; i < runs; i++ {
			for _, a := range agents {
				if only := os.Getenv("RAMPART_BENCH_ONLY"); only != "" && !strings.Contains(a.name, only) {
					continue
				}
				o, err := runOnce(c, a, sc)
				if err != nil {
					t.Fatalf("%s, %s, run %d: %v", sc.name, a.name, i+1, err)
				}
				var parts []string
				for k, d := range o.durations {
					parts = append(parts, fmt.Sprintf("%s %s", sc.metrics[k], d.Round(10*time.Millisecond)))
				}
				t.Logf("%s, %s, run %d: %s; %d of %d acknowledged commits lost, %d acknowledged with no sync standby named",
					sc.name, a.name, i+1, strings.Join(parts, ", "), o.lost, o.acked, o.asyncAcks)
				results[a.name] = append(results[a.name], o)
			}
		}
		writeReport(&report, sc, runs, results)
	}
	t.Log(report.String())
	fmt.Println(report.String())
}

func writeReport(b *strings.Builder, sc scenario, runs int, results map[string][]outcome) {
	fmt.Fprintf(b, "\nfailover: %s, writes through the VIP (%d runs per agent, interleaved)\n", sc.name, runs)
	medians := map[string][]time.Duration{}
	for k, m := range sc.metrics {
		fmt.Fprintf(b, "  %s\n", m)
		for _, a := range agents {
			rs := results[a.name]
			if len(rs) == 0 {
				continue
			}
			var ds []time.Duration
			for _, r := range rs {
				ds = append(ds, r.durations[k])
			}
			slices.Sort(ds)
			med := ds[len(ds)/2]
			medians[a.name] = append(medians[a.name], med)
			var each []string
			for _, d := range ds {
				each = append(each, d.Round(10*time.Millisecond).String())
			}
			fmt.Fprintf(b, "    %-50s median %-8s (%s)\n", a.name, med.Round(10*time.Millisecond), strings.Join(each, " "))
			if limit, ok := sc.within[k]; ok {
				n := 0
				for _, d := range ds {
					if d <= limit {
						n++
					}
				}
				fmt.Fprintf(b, "    %-50s within %s in %d of %d runs\n", "", limit, n, len(ds))
			}
		}
		ours, theirs := medians[agents[0].name], medians[agents[1].name]
		switch {
		case len(ours) <= k || len(theirs) <= k:
		case theirs[k] > 0:
			fmt.Fprintf(b, "    ratio rampart / ClusterLabs (medians): %.2f\n", float64(ours[k])/float64(theirs[k]))
		case ours[k] == 0:
			fmt.Fprintf(b, "    both zero\n")
		}
	}
	fmt.Fprintf(b, "  acknowledged commits: lost / acknowledged with no sync standby named (all runs)\n")
	for _, a := range agents {
		lost, async, acked := 0, 0, 0
		for _, r := range results[a.name] {
			lost, async, acked = lost+r.lost, async+r.asyncAcks, acked+r.acked
		}
		if len(results[a.name]) > 0 {
			fmt.Fprintf(b, "    %-50s %d lost, %d async, of %d\n", a.name, lost, async, acked)
		}
	}
}

// bed is a lab with one agent managing PostgreSQL, a VIP on the primary,
// and two write loads from the client: through the VIP, and straight to
// the database hosts with libpq's multi-host failover.
type bed struct {
	l       *lab.Lab
	w       *lab.Writer // through the VIP
	probe   *lab.Writer // lab.NewProber through the VIP
	direct  *lab.Writer // host=n1,n2,n3 target_session_attrs=read-write
	primary string
}

func runOnce(c lab.Config, a agent, sc scenario) (o outcome, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		return o, err
	}
	defer func() {
		// RAMPART_BENCH_KEEP=1 leaves a failed run's lab for a look (rampart lab status --id bench).
		if err == nil || os.Getenv("RAMPART_BENCH_KEEP") == "" {
			lab.Destroy(context.Background(), c.Root, c.ID, log)
		}
	}()
	l, err := lab.Up(ctx, c, log)
	if err != nil {
		return o, err
	}
	if err := a.manage(ctx, l); err != nil {
		return o, err
	}
	w, err := l.NewWriter("client", "host="+l.Config().VIP().String(), 10*time.Millisecond)
	if err != nil {
		return o, err
	}
	var hosts []string
	for _, h := range l.Hosts() {
		if h.Role == lab.RoleDatabase {
			hosts = append(hosts, h.Addr.String())
		}
	}
	direct, err := l.NewWriter("client", "host="+strings.Join(hosts, ",")+" target_session_attrs=read-write", 10*time.Millisecond)
	if err != nil {
		return o, err
	}
	direct.Table = "acked_direct"
	probe, err := l.NewProber("client", "host="+l.Config().VIP().String(), "probe")
	if err != nil {
		return o, err
	}
	for _, w := range []*lab.Writer{w, direct, probe} {
		if err := w.Start(ctx); err != nil {
			return o, err
		}
		defer w.Stop()
	}
	if err := lab.WaitFor(ctx, "100 acknowledged writes in each load", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(time.Time{}, "")
		m, _ := direct.AckedSince(time.Time{}, "")
		return n >= 100 && m >= 100, fmt.Sprint(n, m), nil
	}); err != nil {
		return o, err
	}
	s, err := l.Cluster(ctx, l.DBHosts()[0])
	if err != nil {
		return o, err
	}
	p := s.Promoted(lab.PgsqlResource)
	if len(p) != 1 {
		return o, fmt.Errorf("promoted %v", p)
	}
	b := &bed{l: l, w: w, probe: probe, direct: direct, primary: p[0]}
	// Faults start from a settled cluster: a standby streaming as sync.
	if _, err := b.syncStandby(ctx, p[0], ""); err != nil {
		return o, err
	}
	o, err = sc.run(ctx, b)
	if err != nil {
		return o, err
	}
	for _, w := range []*lab.Writer{w, direct, probe} {
		w.Stop()
		lost, err := w.Missing(ctx)
		if err != nil {
			return o, err
		}
		o.lost, o.acked = o.lost+len(lost), o.acked+len(w.IDs())
	}
	return o, nil
}

// others are the database hosts other than the primary.
func (b *bed) others() []string {
	var hosts []string
	for _, h := range b.l.DBHosts() {
		if h != b.primary {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// syncStandby waits until primary streams to a synchronous standby other
// than not, and returns it.
func (b *bed) syncStandby(ctx context.Context, primary, not string) (string, error) {
	var sync string
	err := lab.WaitFor(ctx, primary+" streaming to a sync standby", 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		st := b.l.Postgres(ctx, primary)
		for _, r := range st.Replication {
			if r.State == "streaming" && (r.SyncState == "sync" || r.SyncState == "quorum") && r.Name != not {
				sync = r.Name
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%+v", st.Replication), nil
	})
	return sync, err
}

// killPrimary kills the primary's postmaster and measures the time to the
// first write acknowledged after it, the time until the new primary
// streams to a sync standby, and how long (and for how many commits) a new
// primary was writable with an empty synchronous_standby_names.
func killPrimary(ctx context.Context, b *bed) (outcome, error) {
	samples := sample(ctx, b.l, b.others(), 100*time.Millisecond)
	if _, err := b.l.KillPostmaster(ctx, b.primary); err != nil {
		samples.stop()
		return outcome{}, err
	}
	fault := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	firsts, err := b.writesResumed(wctx, "kill", fault, b.l.Addr(b.primary))
	if err != nil {
		samples.stop()
		return outcome{}, err
	}
	var syncAt time.Time
	err = lab.WaitFor(wctx, "the new primary streaming to a sync standby", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		syncAt = samples.firstSync()
		return !syncAt.IsZero(), "", nil
	})
	samples.stop()
	if err != nil {
		return outcome{}, err
	}
	window, acks := samples.asyncWindow(b)
	return outcome{durations: append(firsts, syncAt.Sub(fault), window), asyncAcks: acks}, nil
}

// freezePrimary stops every process of the primary's host (its kernel
// still answers ARP and TCP handshakes) and measures the time to the first
// write after it in each load; the cluster must have fenced the host.
func freezePrimary(ctx context.Context, b *bed) (outcome, error) {
	return lostPrimary(ctx, b, "freeze", b.l.Freeze)
}

// crashPrimary kills every process of the primary's host and takes its
// link down (a power loss) and measures as freezePrimary does; the cluster
// must have fenced the host before promoting another.
func crashPrimary(ctx context.Context, b *bed) (outcome, error) {
	return lostPrimary(ctx, b, "crash", b.l.Crash)
}

// lostPrimary is a host failure of the primary: fault, then the prober's,
// the samples' and the loads' figures in the order of the scenarios'
// metrics. The host must have been fenced.
func lostPrimary(ctx context.Context, b *bed, what string, fault func(context.Context, string) error) (outcome, error) {
	samples := sample(ctx, b.l, b.others(), 100*time.Millisecond)
	defer samples.stop()
	if err := fault(ctx, b.primary); err != nil {
		return outcome{}, err
	}
	at := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	firsts, err := b.writesResumed(wctx, what, at, "")
	if err != nil {
		return outcome{}, err
	}
	if err := lab.WaitFor(wctx, b.primary+" fenced", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		return b.l.FenceConfirmed(ctx, b.primary)
	}); err != nil {
		return outcome{}, fmt.Errorf("writes resumed but the lost primary %s was not fenced: %w", b.primary, err)
	}
	return outcome{durations: []time.Duration{firsts[0], samples.firstWritable().Sub(at), firsts[1], firsts[2]}}, nil
}

// writesResumed waits until every load (the prober, the VIP's write load,
// the multi-host one) has acknowledged writes after the fault and returns
// fault → first acknowledged write of each, in that order. The multi-host
// load's acknowledgements from oldPrimary's address ("" for none) do not
// count: a backend of a killed postmaster may still commit a moment after
// the kill (through the VIP every server has the VIP's address; a prober's
// new connection cannot reach an orphaned backend).
func (b *bed) writesResumed(ctx context.Context, what string, fault time.Time, oldPrimary string) ([]time.Duration, error) {
	loads := []*lab.Writer{b.probe, b.w, b.direct}
	notFrom := func(w *lab.Writer) string {
		if w == b.direct {
			return oldPrimary
		}
		return ""
	}
	err := lab.WaitFor(ctx, "20 writes acknowledged after the "+what+" in each load", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		var seen []string
		done := true
		for _, w := range loads {
			n, _ := w.AckedSince(fault, notFrom(w))
			done = done && n >= 20
			seen = append(seen, fmt.Sprintf("%s %d (%d errors)", w.Table, n, w.Errors()))
		}
		return done, strings.Join(seen, ", "), nil
	})
	if err != nil {
		return nil, err
	}
	var firsts []time.Duration
	for _, w := range loads {
		_, first := w.AckedSince(fault, notFrom(w))
		firsts = append(firsts, first.Sub(fault))
	}
	return firsts, nil
}

// killSyncStandby kills the synchronous standby's postmaster and measures
// the longest write stall in the 8 s after, and the time until another
// standby is synchronous.
func killSyncStandby(ctx context.Context, b *bed) (outcome, error) {
	victim, err := b.syncStandby(ctx, b.primary, "")
	if err != nil {
		return outcome{}, err
	}
	if _, err := b.l.KillPostmaster(ctx, victim); err != nil {
		return outcome{}, err
	}
	fault := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, err := b.syncStandby(wctx, b.primary, victim); err != nil {
		return outcome{}, err
	}
	replaced := time.Since(fault)
	if err := lab.WaitFor(wctx, "8 s of load after the kill", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := b.w.AckedSince(fault.Add(8*time.Second), "")
		m, _ := b.direct.AckedSince(fault.Add(8*time.Second), "")
		return n > 0 && m > 0, "", nil
	}); err != nil {
		return outcome{}, err
	}
	stall := max(b.w.LongestStall(fault, fault.Add(8*time.Second)), b.direct.LongestStall(fault, fault.Add(8*time.Second)))
	return outcome{durations: []time.Duration{stall, replaced}}, nil
}

// samples records what the database hosts report, every interval, until
// stopped.
type samples struct {
	mu   sync.Mutex
	seen []observed
	done chan struct{}
	quit chan struct{}
}

type observed struct {
	at   time.Time
	host string
	pg   lab.PGState
}

func sample(ctx context.Context, l *lab.Lab, hosts []string, every time.Duration) *samples {
	s := &samples{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for _, h := range hosts {
				st := l.Postgres(ctx, h)
				s.mu.Lock()
				s.seen = append(s.seen, observed{time.Now(), h, st})
				s.mu.Unlock()
			}
			select {
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *samples) stop() {
	close(s.quit)
	<-s.done
}

// firstWritable is when a host was first seen writable (zero if not yet).
func (s *samples) firstWritable() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.seen {
		if o.pg.Role() == "primary" {
			return o.at
		}
	}
	return time.Time{}
}

// firstSync is when a writable host was first seen streaming to a sync
// standby (zero if not yet).
func (s *samples) firstSync() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.seen {
		if o.pg.Role() != "primary" {
			continue
		}
		for _, r := range o.pg.Replication {
			if r.State == "streaming" && (r.SyncState == "sync" || r.SyncState == "quorum") {
				return o.at
			}
		}
	}
	return time.Time{}
}

// asyncWindow sums the sampled time during which a host was writable with
// synchronous_standby_names empty, and counts the commits it acknowledged
// then.
func (s *samples) asyncWindow(b *bed) (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total time.Duration
	acks := 0
	last := map[string]observed{}
	for _, o := range s.seen {
		if prev, ok := last[o.host]; ok && prev.pg.Role() == "primary" && strings.TrimSpace(prev.pg.SyncNames) == "" {
			total += o.at.Sub(prev.at)
			// Through the VIP every server has the VIP's address; only
			// this host was writable then.
			acks += b.w.AckedBy("", prev.at, o.at) + b.direct.AckedBy("", prev.at, o.at)
		}
		last[o.host] = o
	}
	return total, acks
}

package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// Experiment is one of the seed's questions, and how the lab answers it.
type Experiment struct {
	N, Title, Question, Seed string
	// viaPooler: the load goes through the pooler pair's address (the lab
	// must have the pair).
	viaPooler bool
	// patience is how long a load client waits for one statement before
	// it counts an error (0: 3 s).
	patience time.Duration
	run      func(ctx context.Context, e *env) (Result, error)
}

// env is what an experiment works with.
type env struct {
	l    *lab.Lab
	bin  string // the rampart binary the hosts run
	log  *slog.Logger
	rec  *Recorder
	load *Load
	// probe writes through the load's write address every 100 ms on a new
	// connection (lab.NewProber): fault → first success to about 100 ms.
	probe *lab.Writer
	res   *Result
	// shared carries what an experiment leaves for a later one: 3 names
	// the old primary it rejoined ("rejoined"), which 3b fails back to.
	shared map[string]string
}

// Experiments are the seed's seven, in its order.
func Experiments() []Experiment {
	return []Experiment{
		{N: "1", Title: "Primary host hangs",
			Question: "Does service continue when the primary's host hangs? How long until the first write, and until full write throughput? Client errors? Lost commits?",
			Seed:     "full write service back after about 1 minute; failover scripts ran on every pgpool-II; standbys restarted",
			run:      primaryHang},
		{N: "2", Title: "Synchronous standby hangs",
			Question: "Do writes continue when the synchronous standby's host hangs, and how long do they stall?",
			Seed:     "reads continued; writes blocked about 1 minute until PostgreSQL made the async standby sync; pgpool-II does not manage sync/async",
			run:      func(ctx context.Context, e *env) (Result, error) { return standbyHang(ctx, e, true) }},
		{N: "2b", Title: "Asynchronous standby hangs",
			Question: "Do writes notice when an asynchronous standby's host hangs? How fast do reads recover?",
			Seed:     "detached; throughput recovered in about 40 s",
			run:      func(ctx context.Context, e *env) (Result, error) { return standbyHang(ctx, e, false) }},
		{N: "3", Title: "Failback of the old primary under load",
			Question:  "When only the primary's postmaster dies, does the old primary stay out (no split brain), and can it come back as a standby under load without client errors?",
			Seed:      "manual wipe, pg_basebackup and pcp_attach_node; worked under load; the scripts could restart it as a primary (split brain)",
			viaPooler: true, run: failback},
		{N: "3b", Title: "Failing back to the old primary under load",
			Question: "After its rejoin, can the old primary become the primary again, in one command, without client errors or lost commits?",
			Seed:     "not tried in 2013: pgpool-II's online recovery and a restart of the pool; no control of which standby is synchronous",
			// Clients wait as long as the poolers may hold (the default
			// --hold-timeout): a pause is not an error.
			viaPooler: true, patience: 10 * time.Second, run: failbackSwitchover},
		{N: "4", Title: "Read scale-out with 1, 2 and 3 standbys",
			Question:  "How close to linear do reads scale over the standbys?",
			Seed:      "5099, 10331, 13726, 17132, 19264 TPS on 1–5 servers (×3.78 on 5: 76 % of linear)",
			viaPooler: true, run: readScale},
		{N: "5", Title: "Removing a standby under load",
			Question:  "Can a standby be removed under load without client errors?",
			Seed:      "pcp_detach_node restarted pgpool-II's backends: clients got errors",
			viaPooler: true, run: removeStandby},
		{N: "6", Title: "Pooler leader lost",
			Question:  "When the active pooler's host fails, how fast does the other take over, and does the failover run once?",
			Seed:      "the failover script ran on every pgpool-II; only active/standby pgpool-II was recommended",
			viaPooler: true, run: poolerLeaderHang},
		{N: "7", Title: "Backup from the primary vs from a standby",
			Question: "What does a base backup cost the primary, taken from it and taken from a standby?",
			Seed:     "pg_basebackup from the primary ate its CPU and cut service throughput; from a standby (9.2) it did not hurt",
			run:      backupCost},
	}
}

// Options say what the seed run does.
type Options struct {
	Bin     string        // the rampart binary the hosts run
	Out     string        // folder for report.md and the plots
	Only    []string      // experiment numbers to run (nil: all)
	Pace    time.Duration // each load client's pace
	Writers int
}

// RunAll runs the experiments on lab l (Pacemaker managing PostgreSQL with
// ocf:rampart:pgsql, a VIP on the primary) and writes the report.
func RunAll(ctx context.Context, l *lab.Lab, o Options, log *slog.Logger) ([]Result, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var results []Result
	shared := map[string]string{}
	for _, x := range Experiments() {
		r := Result{N: x.N, Title: x.Title, Question: x.Question, Seed: x.Seed}
		switch {
		case o.Only != nil && !slices.Contains(o.Only, x.N):
			r.Skipped = "not asked for (--only)"
		case x.viaPooler && l.Config().Poolers < 2:
			r.Skipped = "needs the pooler pair in the lab (rampart lab seed builds it; lab up --poolers 2 --witness)"
		default:
			log.Info("experiment", "n", x.N, "title", x.Title)
			start := time.Now()
			e := &env{l: l, bin: o.Bin, log: log.With("experiment", x.N), res: &r, shared: shared}
			if err := e.startLoad(ctx, o, x.viaPooler, x.patience); err != nil {
				r.Err = err.Error()
				break
			}
			// A stuck step fails its experiment, not the whole run.
			xctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			got, err := x.run(xctx, e)
			cancel()
			e.load.Stop()
			e.probe.Stop()
			r = got
			if errs := e.load.Errors(); len(errs) > 0 {
				r.Answers = append(r.Answers, Answer{"what the clients were told", strings.Join(errs[:min(len(errs), 4)], "; ")})
			}
			r.N, r.Title, r.Question, r.Seed = x.N, x.Title, x.Question, x.Seed
			if err != nil {
				r.Err = err.Error()
				log.Error("experiment did not finish", "n", x.N, "err", err)
			}
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			lost, acked, lerr := e.load.Lost(lctx)
			cancel()
			switch {
			case lerr != nil:
				r.Answers = append(r.Answers, Answer{"lost commits", "could not check: " + lerr.Error()})
			case len(lost) > 0:
				r.Answers = append(r.Answers, Answer{"lost commits", fmt.Sprintf("**%d of %d**: %s", len(lost), acked, describeIDs(lost))})
				r.Verdict += fmt.Sprintf("; %d commits LOST", len(lost))
			default:
				r.Answers = append(r.Answers, Answer{"lost commits", fmt.Sprintf("0 of %d acknowledged", acked)})
			}
			if r.Figures == nil {
				r.Figures = map[string]float64{}
			}
			r.Figures["acknowledged"], r.Figures["lost"] = float64(acked), float64(len(lost))
			if lerr != nil {
				r.Figures["lost"] = -1
			}
			r.Series = e.rec.Snapshot()
			r.Plot = "experiment-" + x.N + ".svg"
			if err := os.WriteFile(filepath.Join(o.Out, r.Plot), []byte(SVG(x.N+". "+x.Title, r.Series)), 0o644); err != nil {
				return results, err
			}
			r.Took = time.Since(start)
		}
		results = append(results, r)
		if err := ctx.Err(); err != nil {
			return results, err
		}
	}
	return results, nil
}

func (e *env) startLoad(ctx context.Context, o Options, viaPooler bool, patience time.Duration) error {
	e.rec = NewRecorder(time.Now)
	var standbys []string
	primary, err := e.l.Primary(ctx)
	if err != nil {
		return err
	}
	for _, h := range e.l.Hosts() {
		if h.Role == lab.RoleDatabase && h.Name != primary {
			standbys = append(standbys, h.Addr.String())
		}
	}
	// Writes through the database VIP; reader i prefers standby i, then
	// the others (a standby first). Through the pooler pair's address
	// instead when the experiment is about the pooler.
	write := "host=" + e.l.Config().VIP().String() + " target_session_attrs=read-write"
	var reads []string
	for i := range standbys {
		hosts := append(append([]string{}, standbys[i:]...), standbys[:i]...)
		reads = append(reads, "host="+strings.Join(hosts, ",")+" target_session_attrs=prefer-standby")
	}
	if viaPooler {
		pooler := fmt.Sprintf("host=%s port=%d sslmode=disable", e.l.Config().PoolerVIP(), lab.PoolerPort)
		write, reads = pooler, slices.Repeat([]string{pooler}, len(standbys))
	}
	ld, err := NewLoad(e.l, e.rec, write, reads, o.Writers, o.Pace)
	if err != nil {
		return err
	}
	if patience > 0 {
		ld.patience = patience
	}
	if err := ld.Setup(ctx); err != nil {
		return err
	}
	probe, err := e.l.NewProber("client", write, probeTable)
	if err != nil {
		return err
	}
	if err := probe.Exec(ctx, "DROP TABLE IF EXISTS "+probeTable); err != nil {
		return fmt.Errorf("prober: %w", err)
	}
	if err := probe.Start(ctx); err != nil {
		return fmt.Errorf("prober: %w", err)
	}
	e.load, e.probe = ld, probe
	ld.Start()
	return nil
}

// probeTable is where the prober writes.
const probeTable = "seed_probe"

// probed is the prober's fault → first write, as an answer and in seconds
// (-1 when it never wrote again).
func (e *env) probed(fault time.Duration) (Answer, float64) {
	at := e.rec.Snapshot().Start.Add(fault)
	if n, first := e.probe.AckedSince(at, ""); n > 0 {
		d := first.Sub(at)
		return Answer{"fault → first write " + probeWords, Seconds(d)}, d.Seconds()
	}
	return Answer{"fault → first write " + probeWords, "none"}, -1
}

const probeWords = "(a new connection every 100 ms, 500 ms timeout)"

// standbys are the primary's streaming standbys: the synchronous one and
// the others (asynchronous or potential), by name.
func (e *env) standbys(ctx context.Context, primary string) (sync string, others []string) {
	for _, r := range e.l.Postgres(ctx, primary).Replication {
		switch {
		case r.State != "streaming":
		case r.SyncState == "sync":
			sync = r.Name
		default:
			others = append(others, r.Name)
		}
	}
	slices.Sort(others)
	return sync, others
}

// settle lets the load run until d since its start.
func (e *env) settle(ctx context.Context, d time.Duration) error {
	return lab.WaitFor(ctx, fmt.Sprintf("%s of load", d), 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return e.rec.Since() >= d, "", nil
	})
}

// begin lets the load run d since its start, then names the primary: how
// an experiment opens.
func (e *env) begin(ctx context.Context, d time.Duration) (string, error) {
	if err := e.settle(ctx, d); err != nil {
		return "", err
	}
	return e.l.Primary(ctx)
}

// after lets the load run for d more.
func (e *env) after(ctx context.Context, d time.Duration) error {
	return e.settle(ctx, e.rec.Since()+d)
}

// back brings a fenced (powered off) or frozen host back and waits until
// its PostgreSQL streams again; rejoin runs `rampart rejoin` there first
// (an old primary).
func (e *env) back(ctx context.Context, host string, rejoin bool) error {
	// A frozen host is fenced (powered off) once the others notice: thawing
	// it before would race the fencer.
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	lab.WaitFor(fctx, host+" fenced", 200*time.Millisecond, func(context.Context) (bool, string, error) {
		return e.l.Crashed(host), "", nil
	})
	cancel()
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.l.Crashed(host) {
		// Powered off is not fenced yet: the fence agent still checks the
		// power state, and a host back on meanwhile is powered off again.
		// Boot it once the cluster has the fencing confirmed (the node
		// offline, no longer unclean), as an operator would.
		if err := lab.WaitFor(ctx, host+" fencing confirmed", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			return e.l.FenceConfirmed(ctx, host)
		}); err != nil {
			return err
		}
		if err := e.l.Boot(ctx, host); err != nil {
			return err
		}
	} else if err := e.l.Thaw(host); err != nil {
		return err
	}
	if err := e.l.WaitClusterOnline(ctx, e.l.DBHosts()); err != nil {
		return err
	}
	e.rec.Mark(host + " back")
	if rejoin {
		// Output's error holds what the command printed.
		if _, err := e.l.Output(ctx, host, e.bin, "rejoin"); err != nil {
			return err
		}
	} else {
		// Pacemaker counted the lost monitor: let it start it again.
		if _, err := e.l.Output(ctx, host, "crm_resource", "--cleanup", "--resource", lab.PgsqlResource+"-clone", "--node", host); err != nil {
			return err
		}
	}
	primary, err := e.l.Primary(ctx)
	if err != nil {
		return err
	}
	if err := e.l.WaitStreaming(ctx, primary, []string{host}); err != nil {
		return err
	}
	e.rec.Mark(host + " streams")
	return nil
}

// failover is how a failover went: the node promoted, when, and when
// writes were back to full throughput (90 % of baseline, their rate in
// the 6 s before the fault).
type failover struct {
	primary        string
	promoted, full time.Duration
	baseline       float64
}

// failedOver waits until Pacemaker promotes a node other than old, then
// for full write throughput, marking both, and lets the load run 3 s more.
func (e *env) failedOver(ctx context.Context, old string, fault time.Duration) (failover, error) {
	var fo failover
	err := lab.WaitFor(ctx, "a new primary", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		p, err := e.l.Primary(ctx)
		fo.primary = p
		return err == nil && p != old, fmt.Sprint(err), nil
	})
	if err != nil {
		return fo, err
	}
	fo.promoted = e.rec.Mark(fo.primary + " promoted")
	if fo.baseline, fo.full, err = e.waitFullWrites(ctx, fault, fo.promoted); err != nil {
		return fo, err
	}
	return fo, e.after(ctx, 3*time.Second)
}

// waitFullWrites waits until writes run at 90 % of their rate in the 6 s
// before fault again, counting from from, and marks it; it returns that
// rate and the moment.
func (e *env) waitFullWrites(ctx context.Context, fault, from time.Duration) (float64, time.Duration, error) {
	s := e.rec.Snapshot()
	baseline := s.Rate(Write, fault-6*time.Second, fault)
	var full time.Duration
	err := lab.WaitFor(ctx, "full write throughput", 200*time.Millisecond, func(context.Context) (bool, string, error) {
		s = e.rec.Snapshot()
		f, ok := s.FullAfter(Write, from, baseline, 0.9)
		full = f
		return ok, fmt.Sprintf("baseline %.0f/s", baseline), nil
	})
	if err == nil {
		e.rec.Mark("full write throughput")
	}
	return baseline, full, err
}

// primaryHang: experiment 1.
func primaryHang(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	old, err := e.begin(ctx, 8*time.Second)
	if err != nil {
		return r, err
	}
	fault := e.rec.Mark(old + " frozen")
	if err := e.l.Freeze(ctx, old); err != nil {
		return r, err
	}
	fo, err := e.failedOver(ctx, old, fault)
	if err != nil {
		return r, err
	}
	promoted, baseline, full := fo.promoted, fo.baseline, fo.full
	s := e.rec.Snapshot()
	// Writes in flight when the host froze may still land in the fault's
	// bucket: the first write that counts is the new primary's.
	first, _ := s.FirstAfter(Write, promoted)
	readsDuring := s.Total(Read, fault, first)
	errs := s.Total(Error, fault, full)
	probe, probeFirst := e.probed(fault)
	// The old primary was fenced (powered off): boot it, rejoin it.
	if err := e.back(ctx, old, true); err != nil {
		return r, err
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	r.Answers = []Answer{
		{"write throughput before", fmt.Sprintf("%.0f commits/s", baseline)},
		{"fault → promotion", Seconds(promoted-fault) + " (Corosync notices the hang, Pacemaker fences it through its BMC, then promotes the synchronous standby once)"},
		{"fault → first write", Seconds(first - fault)},
		probe,
		{"fault → full write throughput (90 % of before)", Seconds(full - fault)},
		{"reads answered by the standbys while writes waited", fmt.Sprint(readsDuring)},
		{"client errors from the fault to full throughput", fmt.Sprintf("%d (connections to the frozen primary cut; each client reconnects)", errs)},
		{"old primary", "fenced, booted, rejoined with rampart rejoin, streaming again (marks on the plot)"},
	}
	r.Figures = map[string]float64{"first_write_s": (first - fault).Seconds(), "full_write_s": (full - fault).Seconds(),
		"promoted_s": (promoted - fault).Seconds(), "errors": float64(errs), "probe_first_write_s": probeFirst}
	r.Verdict = fmt.Sprintf("service continued: reads throughout, first write after %s, full write throughput after %s (2013: about 1 min)",
		Seconds(first-fault), Seconds(full-fault))
	return r, nil
}

// failback: experiment 3. Only the primary's postmaster dies (the case in
// which 2013's scripts restarted the old primary as a primary); a standby
// is promoted, the old primary stays down, then comes back as a standby
// with `rampart rejoin` while the load goes on through the pooler pair.
func failback(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	old, err := e.begin(ctx, 8*time.Second)
	if err != nil {
		return r, err
	}
	fault := e.rec.Mark(old + "'s postmaster killed")
	if _, err := e.l.KillPostmaster(ctx, old); err != nil {
		return r, err
	}
	// Watch the old primary from now on: it must never accept writes
	// again (its orphaned backends die within the second).
	writable := make(chan string, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		defer close(writable)
		for wait := time.Second; ; wait = 250 * time.Millisecond {
			select {
			case <-wctx.Done():
				return
			case <-time.After(wait):
			}
			if st := e.l.Postgres(wctx, old); st.Up && !st.InRecovery {
				writable <- fmt.Sprintf("%s accepted writes again, on timeline %d", old, st.Timeline)
				return
			}
		}
	}()
	fo, err := e.failedOver(ctx, old, fault)
	if err != nil {
		return r, err
	}
	newPrimary, promoted, full := fo.primary, fo.promoted, fo.full
	s := e.rec.Snapshot()
	failErrs := s.Total(Error, fault, full)
	probe, probeFirst := e.probed(fault)
	back := e.rec.Mark("rampart rejoin on " + old)
	if _, err := e.l.Output(ctx, old, e.bin, "rejoin"); err != nil {
		return r, err
	}
	if err := e.l.WaitStreaming(ctx, newPrimary, []string{old}); err != nil {
		return r, err
	}
	streams := e.rec.Mark(old + " streams")
	e.shared["rejoined"] = old
	// The pooler takes it back for reads by itself (its health check).
	if err := lab.WaitFor(ctx, "the pooler reading from "+old, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		role, up := e.poolerSees(ctx, old)
		return up && role == "standby", fmt.Sprintf("%s up=%v", role, up), nil
	}); err != nil {
		return r, err
	}
	reads := e.rec.Mark("pooler reads from " + old)
	if err := e.after(ctx, 6*time.Second); err != nil {
		return r, err
	}
	stopWatch()
	splitBrain := <-writable
	s = e.rec.Snapshot()
	backErrs := s.Total(Error, back, s.End())
	r.Answers = []Answer{
		{"fault → " + newPrimary + " promoted", Seconds(promoted - fault)},
		probe,
		{"fault → full write throughput", Seconds(full - fault)},
		{"client errors from the fault to full throughput", fmt.Sprintf("%d (the pooler holds writes while no primary answers, and logs new clients in on a standby; only a transaction running on the dead primary fails)", failErrs)},
		{old + " after its postmaster died", "stayed down: the agent never starts an old primary whose data may have diverged, and never as a primary"},
		{"rampart rejoin → " + old + " streams (pg_rewind)", Seconds(streams - back)},
		{"rampart rejoin → the pooler reads from it", Seconds(reads - back)},
		{"client errors from the rejoin to the end", fmt.Sprint(backErrs)},
	}
	r.Figures = map[string]float64{"promoted_s": (promoted - fault).Seconds(), "rejoin_s": (streams - back).Seconds(),
		"failover_errors": float64(failErrs), "errors": float64(backErrs), "split_brain": 0, "probe_first_write_s": probeFirst}
	r.Verdict = fmt.Sprintf("%s stayed down, rejoined as a standby in %s under load: %d client errors (2013: manual; could come back as a primary)",
		old, Seconds(streams-back), backErrs)
	if splitBrain != "" {
		r.Figures["split_brain"] = 1
		r.Verdict = "SPLIT BRAIN: " + splitBrain
		return r, errors.New(splitBrain)
	}
	return r, nil
}

// failbackSwitchover: experiment 3b. The old primary experiment 3
// rejoined (else a standby that streams asynchronously) becomes the
// primary again with one `rampart switchover --to`, the pooler pair
// holding, under the load through the pair.
func failbackSwitchover(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	primary, err := e.begin(ctx, 8*time.Second)
	if err != nil {
		return r, err
	}
	sync, others := e.standbys(ctx, primary)
	target := e.shared["rejoined"]
	if target == "" || target == primary {
		if len(others) == 0 {
			return r, fmt.Errorf("no asynchronous standby to fail back to (synchronous: %q)", sync)
		}
		target = others[0]
	}
	was := "asynchronous"
	if target == sync {
		was = "synchronous"
	}
	args := []string{e.bin, "switchover", "--to", target}
	for _, u := range e.l.PoolerConsoles() {
		args = append(args, "--pooler", u)
	}
	start := e.rec.Mark("rampart switchover --to " + target)
	out, err := e.l.Output(ctx, primary, args...)
	if err != nil {
		return r, err
	}
	done := e.rec.Mark(target + " primary, " + primary + " streams from it")
	if err := e.after(ctx, 10*time.Second); err != nil {
		return r, err
	}
	s := e.rec.Snapshot()
	errs := s.Total(Error, start, s.End())
	stall := s.LongestGap(Write, start, done)
	readStall := s.LongestGap(Read, start, done)
	paused := "-"
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "paused="); i >= 0 && strings.Contains(line, "poolers resumed") {
			paused = strings.Fields(line[i+len("paused="):])[0]
		}
	}
	before := was + " standby of " + primary
	if e.shared["rejoined"] == target {
		before += " (rampart rejoin left it so in experiment 3)"
	}
	madeSync := "no need"
	if was == "asynchronous" {
		madeSync = "yes: the primary was asked to prefer it, and switchover waited until it was synchronous"
	}
	r.Answers = []Answer{
		{target + " before", before},
		{"the command", "rampart switchover --to " + target + " --pooler … --pooler … (run on " + primary + "; the clients wait up to 10 s for a statement, the default --hold-timeout)"},
		{"made the synchronous standby first", madeSync},
		{"the poolers held clients for", paused + " (running transactions finished, new ones waited, then went to " + target + ")"},
		{"longest write stall / read stall", Seconds(stall) + " / " + Seconds(readStall)},
		{"command → done (" + primary + " streams from " + target + ")", Seconds(done - start)},
		{"client errors from the command to the end", fmt.Sprint(errs)},
	}
	r.Figures = map[string]float64{"errors": float64(errs), "write_stall_s": stall.Seconds(), "read_stall_s": readStall.Seconds(), "switchover_s": (done - start).Seconds()}
	r.Verdict = fmt.Sprintf("%s is the primary again after one command: writes paused %s, %d client errors (2013: not possible without cutting clients)",
		target, Seconds(stall), errs)
	return r, nil
}

// Experiment 4's read: latency-bound, so that on this 2-core machine the
// figure measures how the pooler spreads reads, not the CPU; readClients
// exceed what three standbys' pools (20 connections each) take at once.
const (
	readSQL     = "SELECT pg_sleep(0.02);\n"
	readClients = 80
	readSeconds = 6
)

// readScale: experiment 4. The same read load through the pooler pair
// with 1, 2 and 3 standbys in its rotation (the others detached, then
// attached one by one), next to the steady load.
func readScale(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	primary, err := e.begin(ctx, 5*time.Second)
	if err != nil {
		return r, err
	}
	standbys := slices.DeleteFunc(e.l.DBHosts(), func(h string) bool { return h == primary })
	if len(standbys) < 3 {
		return r, fmt.Errorf("needs 3 standbys (4 database hosts), the lab has %d", len(standbys))
	}
	standbys = standbys[:3]
	pool := func(verb, node string) error {
		_, err := e.l.Output(ctx, "client", e.bin, "pool", verb, "--host", e.l.Config().PoolerVIP().String(), "--user", lab.AppUser, node)
		return err
	}
	dir, err := os.MkdirTemp("/var/lib/rampart", "seed-reads-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "read.sql")
	if err := os.WriteFile(script, []byte(readSQL), 0o644); err != nil {
		return r, err
	}
	for _, n := range standbys[1:] {
		if err := pool("detach", n); err != nil {
			return r, err
		}
	}
	// Whatever happens, every standby is back in rotation afterwards.
	defer func() {
		for _, n := range standbys[1:] {
			pool("attach", n)
		}
	}()
	var tps []float64
	for k := 1; k <= 3; k++ {
		if k > 1 {
			if err := pool("attach", standbys[k-1]); err != nil {
				return r, err
			}
		}
		e.rec.Mark(fmt.Sprintf("reads on %s", strings.Join(standbys[:k], ", ")))
		logs := filepath.Join(dir, fmt.Sprintf("step%d", k))
		out, err := e.l.Output(ctx, "client", "pgbench", "-n", "-f", script, "-M", "prepared", "-c", strconv.Itoa(readClients), "-j", "2",
			"-T", strconv.Itoa(readSeconds), "-l", "--log-prefix", logs,
			"-h", e.l.Config().PoolerVIP().String(), "-p", strconv.Itoa(lab.PoolerPort), "-U", lab.AppUser, lab.AppDatabase)
		if err != nil {
			return r, err
		}
		v, failed, err := pgbenchTPS(out)
		if err != nil {
			return r, err
		}
		if failed != 0 {
			return r, fmt.Errorf("pgbench with %d standby(s): %d failed transactions\n%s", k, failed, out)
		}
		// Its reads go on the plot with the steady load's.
		if err := countLogged(e.rec, Read, logs); err != nil {
			return r, err
		}
		tps = append(tps, v)
	}
	e.rec.Mark("all standbys back")
	if err := e.after(ctx, 2*time.Second); err != nil {
		return r, err
	}
	r.Figures = map[string]float64{}
	var row []string
	for i, v := range tps {
		k := i + 1
		r.Figures[fmt.Sprintf("tps_%d", k)] = v
		r.Figures[fmt.Sprintf("linear_%d", k)] = v / (float64(k) * tps[0])
		row = append(row, fmt.Sprintf("%.0f", v))
		r.Answers = append(r.Answers, Answer{fmt.Sprintf("%d standby(s): %s", k, strings.Join(standbys[:k], ", ")),
			fmt.Sprintf("%.0f TPS, ×%.2f, %.0f %% of linear", v, v/tps[0], 100*v/(float64(k)*tps[0]))})
	}
	r.Answers = append(r.Answers, Answer{"load", fmt.Sprintf("pgbench, %d clients, %s, %d s per step, through the pooler pair's address (on the plot with the steady load's reads, which wait their turn in the same pools); the pool holds 20 connections per standby; the primary takes no reads",
		readClients, strings.TrimSpace(readSQL), readSeconds)})
	r.Verdict = fmt.Sprintf("%s TPS on 1–3 standbys (×%.2f on 3: %.0f %% of linear; 2013 on 3 servers: ×2.69, 90 %%)",
		strings.Join(row, ", "), tps[2]/tps[0], 100*r.Figures["linear_3"])
	return r, nil
}

// countLogged records the transactions of pgbench's per-transaction logs
// (prefix.PID[.thread]; the fifth and sixth fields are when each ended).
func countLogged(rec *Recorder, kind Kind, prefix string) error {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no pgbench logs at %s.*", prefix)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			var client, n, script, sec, usec int64
			var lat float64
			if _, err := fmt.Sscanf(line, "%d %d %f %d %d %d", &client, &n, &lat, &script, &sec, &usec); err == nil {
				rec.CountAt(kind, time.Unix(sec, usec*1000))
			}
		}
	}
	return nil
}

// pgbenchTPS reads pgbench's summary: transactions per second and the
// number of failed transactions.
func pgbenchTPS(out string) (tps float64, failed int, err error) {
	found := false
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(line, "tps = %f", &tps); err == nil {
			found = true
		}
		fmt.Sscanf(line, "number of failed transactions: %d", &failed)
	}
	if !found {
		return 0, 0, fmt.Errorf("no tps in pgbench's output:\n%s", out)
	}
	return tps, failed, nil
}

// poolerSees is how the leading pooler sees node: its role and whether it
// answers the health checks.
func (e *env) poolerSees(ctx context.Context, node string) (role string, up bool) {
	pv, err := e.l.PoolerView(ctx)
	if err != nil {
		return err.Error(), false
	}
	for _, n := range pv.Nodes {
		if n.Name == node {
			return n.Role, n.Up
		}
	}
	return "unknown to the pooler", false
}

// standbyHang: experiments 2 (the synchronous standby) and 2b (the other).
func standbyHang(ctx context.Context, e *env, syncOne bool) (Result, error) {
	r := *e.res
	primary, err := e.begin(ctx, 8*time.Second)
	if err != nil {
		return r, err
	}
	var victim string
	if err := lab.WaitFor(ctx, "a synchronous and another standby", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		sync, others := e.standbys(ctx, primary)
		if len(others) == 0 {
			return false, fmt.Sprintf("sync %q others %v", sync, others), nil
		}
		victim = others[0]
		if syncOne {
			victim = sync
		}
		return victim != "", fmt.Sprintf("sync %q others %v", sync, others), nil
	}); err != nil {
		return r, err
	}
	fault := e.rec.Mark(victim + " frozen")
	if err := e.l.Freeze(ctx, victim); err != nil {
		return r, err
	}
	var replaced time.Duration
	var other string // the standby that takes the frozen one's place
	if syncOne {
		if err := lab.WaitFor(ctx, "another standby synchronous", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			sync, _ := e.standbys(ctx, primary)
			other = sync
			return sync != "" && sync != victim, "sync: " + sync, nil
		}); err != nil {
			return r, err
		}
		replaced = e.rec.Mark(other + " synchronous")
	}
	if err := e.after(ctx, 8*time.Second); err != nil {
		return r, err
	}
	s := e.rec.Snapshot()
	baseline := s.Rate(Write, fault-6*time.Second, fault)
	readBase := s.Rate(Read, fault-6*time.Second, fault)
	stall := s.LongestGap(Write, fault, s.End())
	readsFull, ok := s.FullAfter(Read, fault, readBase, 0.9)
	readsBack := "not within the run"
	if ok {
		readsBack = Seconds(readsFull - fault)
	}
	errs := s.Total(Error, fault, s.End())
	// Fencing powered the frozen host off: boot it; Pacemaker starts it.
	if err := e.back(ctx, victim, false); err != nil {
		return r, err
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	r.Answers = []Answer{
		{"write throughput before", fmt.Sprintf("%.0f commits/s", baseline)},
		{"longest write stall after the fault", Seconds(stall)},
		{"reads back to 90 % of before", readsBack + " (the readers of the frozen host reconnect to another standby)"},
		{"client errors", fmt.Sprint(errs)},
	}
	r.Figures = map[string]float64{"write_stall_s": stall.Seconds(), "errors": float64(errs)}
	if syncOne {
		r.Answers = append(r.Answers, Answer{"fault → " + other + " synchronous", Seconds(replaced - fault)})
		r.Verdict = fmt.Sprintf("writes stalled %s, then continued with %s as synchronous standby after %s (2013: about 1 min)",
			Seconds(stall), other, Seconds(replaced-fault))
	} else {
		r.Verdict = fmt.Sprintf("writes did not notice (longest stall %s); reads back to full after %s (2013: about 40 s)", Seconds(stall), readsBack)
	}
	return r, nil
}

// backupCost: experiment 7.
func backupCost(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	primary, err := e.l.Primary(ctx)
	if err != nil {
		return r, err
	}
	// Something to copy: about 250 MB, on every node. Vacuumed and
	// checkpointed now, so that no autovacuum or checkpoint of it runs on
	// the primary while its CPU is measured.
	e.rec.Mark("loading 250 MB to back up")
	for _, sql := range []string{
		"DROP TABLE IF EXISTS seed_bulk",
		"CREATE TABLE seed_bulk AS SELECT g AS id, repeat(md5(g::text), 6) AS v FROM generate_series(1, 1000000) g",
		"VACUUM (ANALYZE) seed_bulk",
		"CHECKPOINT",
	} {
		if out, err := e.l.PsqlDB(ctx, primary, lab.AppDatabase, sql); err != nil {
			return r, fmt.Errorf("load bulk data: %s: %w: %s", sql, err, out)
		}
	}
	// The streaming standbys replay it before anything is measured.
	sync, others := e.standbys(ctx, primary)
	streaming := others
	if sync != "" {
		streaming = append(streaming, sync)
	}
	if len(streaming) == 0 {
		return r, fmt.Errorf("no standby streams from %s: nothing to back up from", primary)
	}
	if err := e.l.WaitCaughtUp(ctx, primary, streaming); err != nil {
		return r, err
	}
	async := streaming[0] // an asynchronous one when there is one
	root, err := os.MkdirTemp("/var/lib/rampart", "seed-backup-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(root)
	cpu := func() time.Duration { d, _ := e.l.HostCPU(primary); return d }
	measure := func(label string, do func() error) (cpuShare float64, rate float64, took time.Duration, err error) {
		c0, t0 := cpu(), e.rec.Mark(label)
		start := time.Now()
		if err := do(); err != nil {
			return 0, 0, 0, err
		}
		took = time.Since(start)
		t1 := e.rec.Mark(label + ": done")
		c1 := cpu()
		s := e.rec.Snapshot()
		return (c1 - c0).Seconds() / took.Seconds(), s.Rate(Write, t0, t1), took, nil
	}
	addr := func(host string) string {
		if a := e.l.Addr(host); a != "" {
			return a
		}
		return host
	}
	backup := func(host string, extra ...string) func() error {
		return func() error {
			dir := filepath.Join(root, host)
			_, err := e.l.Output(ctx, "client", append([]string{e.bin, "backup", "--host", addr(host), "--dir", dir}, extra...)...)
			os.RemoveAll(dir)
			if err != nil {
				return fmt.Errorf("backup from %s: %w", host, err)
			}
			return nil
		}
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	idleCPU, idleRate, _, err := measure("load alone", func() error { return e.after(ctx, 6*time.Second) })
	if err != nil {
		return r, err
	}
	pCPU, pRate, pTook, err := measure("backup from the primary "+primary, backup(primary, "--allow-primary"))
	if err != nil {
		return r, err
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	sCPU, sRate, sTook, err := measure("backup from the standby "+async, backup(async))
	if err != nil {
		return r, err
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	pct := func(f float64) string { return fmt.Sprintf("%.0f %% of a core", 100*f) }
	r.Answers = []Answer{
		{"primary CPU, load alone", pct(idleCPU) + fmt.Sprintf(", %.0f commits/s", idleRate)},
		{"primary CPU, backup from the primary", pct(pCPU) + fmt.Sprintf(", %.0f commits/s, backup took %s", pRate, Seconds(pTook))},
		{"primary CPU, backup from the standby " + async, pct(sCPU) + fmt.Sprintf(", %.0f commits/s, backup took %s", sRate, Seconds(sTook))},
	}
	r.Figures = map[string]float64{"primary_cpu_load_alone": idleCPU, "primary_cpu_backup_from_primary": pCPU, "primary_cpu_backup_from_standby": sCPU}
	r.Verdict = fmt.Sprintf("primary CPU during the backup: %s from the primary, %s from a standby (load alone: %s)", pct(pCPU), pct(sCPU), pct(idleCPU))
	return r, nil
}

// removeStandby: experiment 5. A standby leaves the pooler's rotation
// under load (drain, then detach) and comes back (attach).
func removeStandby(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	primary, err := e.begin(ctx, 8*time.Second)
	if err != nil {
		return r, err
	}
	victim, others := e.standbys(ctx, primary)
	if len(others) > 0 {
		victim = others[0]
	}
	pool := func(verb string) error {
		if _, err := e.l.Output(ctx, "client", e.bin, "pool", verb, "--host", e.l.Config().PoolerVIP().String(), "--user", lab.AppUser, victim); err != nil {
			return err
		}
		return nil
	}
	drain := e.rec.Mark("drain " + victim)
	if err := pool("drain"); err != nil {
		return r, err
	}
	e.rec.Mark("detach " + victim)
	if err := pool("detach"); err != nil {
		return r, err
	}
	detached := e.rec.Mark(victim + " detached")
	if err := e.after(ctx, 8*time.Second); err != nil {
		return r, err
	}
	attach := e.rec.Mark("attach " + victim)
	if err := pool("attach"); err != nil {
		return r, err
	}
	if err := e.after(ctx, 6*time.Second); err != nil {
		return r, err
	}
	s := e.rec.Snapshot()
	before := s.Rate(Read, drain-6*time.Second, drain)
	during := s.Rate(Read, detached, attach)
	errs := s.Total(Error, drain, s.End())
	r.Answers = []Answer{
		{"reads/s before, with " + victim + " out, after it is back", fmt.Sprintf("%.0f, %.0f, %.0f", before, during, s.Rate(Read, attach+2*time.Second, s.End()))},
		{"writes/s before and with " + victim + " out", fmt.Sprintf("%.0f, %.0f", s.Rate(Write, drain-6*time.Second, drain), s.Rate(Write, detached, attach))},
		{"client errors from the drain to the end", fmt.Sprint(errs)},
		{"how", "rampart pool drain, detach, attach on the pair's address: running transactions finish, new ones go to the other servers"},
	}
	r.Figures = map[string]float64{"errors": float64(errs)}
	r.Verdict = fmt.Sprintf("%s removed and put back under load: %d client errors (2013: clients got errors)", victim, errs)
	return r, nil
}

// poolerLeaderHang: experiment 6. The host of the pooler that leads the
// pair hangs; the other takes the pair's address.
func poolerLeaderHang(ctx context.Context, e *env) (Result, error) {
	r := *e.res
	if err := e.settle(ctx, 8*time.Second); err != nil {
		return r, err
	}
	leader, _, err := e.l.PoolerLeader(ctx)
	if err != nil || leader == "" {
		return r, fmt.Errorf("no pooler leads the pair: %v", err)
	}
	fault := e.rec.Mark(leader + " frozen")
	if err := e.l.Freeze(ctx, leader); err != nil {
		return r, err
	}
	var other string
	if err := lab.WaitFor(ctx, "the other pooler leading", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		l, _, err := e.l.PoolerLeader(ctx)
		other = l
		return err == nil && l != "" && l != leader, "leader: " + l, nil
	}); err != nil {
		return r, err
	}
	took := e.rec.Mark(other + " leads, holds the address")
	baseline, full, err := e.waitFullWrites(ctx, fault, took)
	if err != nil {
		return r, err
	}
	if err := e.after(ctx, 3*time.Second); err != nil {
		return r, err
	}
	if err := e.l.Thaw(leader); err != nil {
		return r, err
	}
	e.rec.Mark(leader + " thawed")
	if err := e.after(ctx, 5*time.Second); err != nil {
		return r, err
	}
	now, _, _ := e.l.PoolerLeader(ctx)
	s := e.rec.Snapshot()
	first, _ := s.FirstAfter(Write, took-Bucket)
	errs := s.Total(Error, fault, full)
	probe, probeFirst := e.probed(fault)
	r.Answers = []Answer{
		{"write throughput before", fmt.Sprintf("%.0f commits/s", baseline)},
		{"fault → the other pooler holds the address", Seconds(took - fault)},
		{"fault → first write through it", Seconds(max(first-fault, took-fault))},
		probe,
		{"fault → full write throughput", Seconds(full - fault)},
		{"client errors from the fault to full throughput", fmt.Sprintf("%d (connections to the frozen pooler cut; each client reconnects)", errs)},
		{"leader after the thaw", now + " (the thawed pooler's lease had expired: it stays a follower)"},
		{"database failover", "none: a pooler's loss is not the database's; Pacemaker alone decides failovers, once"},
	}
	r.Figures = map[string]float64{"takeover_s": (took - fault).Seconds(), "full_write_s": (full - fault).Seconds(), "errors": float64(errs),
		"probe_first_write_s": probeFirst}
	r.Verdict = fmt.Sprintf("%s took the address after %s, full write throughput after %s; no failover script runs anywhere", other, Seconds(took-fault), Seconds(full-fault))
	return r, nil
}

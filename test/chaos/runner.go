package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/chaos/history"
	"github.com/rampart-ha/rampart/test/lab"
	"github.com/rampart-ha/rampart/test/seed"
)

// LabConfig is the campaign's lab shaped from base: the seed's.
//
// Its pooler pair runs with durable_reads; Options.PlainReads asks for a
// lab without (set DurableReads false).
func LabConfig(base lab.Config) lab.Config {
	c := seed.LabConfig(base)
	c.DurableReads = true
	return c
}

// Prepare puts the campaign's services on lab l: the seed's, with the
// agent's auto_rejoin on, so that every fault heals without an operator
// beyond the cleanup a failed resource needs.
func Prepare(ctx context.Context, l *lab.Lab) error {
	if err := l.ManagePostgres(ctx, lab.PgsqlOptions{"rewind_user": lab.RewindUser, "auto_rejoin": "true"}); err != nil {
		return err
	}
	if err := l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP); err != nil {
		return err
	}
	return l.StartPoolerPair(ctx)
}

// Options say what a campaign does.
type Options struct {
	Seed   uint64
	Faults int
	Kinds  []Kind
	// Duration caps the campaign: no fault starts after it.
	Duration time.Duration
	// ConvergeTimeout bounds each wait for the cluster to converge.
	ConvergeTimeout time.Duration
	Bin             string    // the rampart binary the hosts run
	Progress        io.Writer // one line per event
	Now             func() time.Time
	// ClientsPerPath run on the database VIP and on the pooler pair's
	// address each, one operation per Pace at most.
	ClientsPerPath int
	Pace           time.Duration
	// EarlyAck: the lab was built with lab.Config.EarlyAck (a broken
	// cluster that tests the checker); the report says so.
	EarlyAck bool
	// PlainReads: reads are plain statements, through a pooler pair
	// without durable_reads (lab.Config.DurableReads false) and on the VIP
	// without a barrier, so they may see commits a failover takes back
	// (PostgreSQL's own behaviour); the report says so.
	PlainReads bool
}

// Miss is a convergence the cluster did not reach in time.
type Miss struct {
	After  string `json:"after"`           // the step, or "the end"
	Kinds  []Kind `json:"kinds,omitempty"` // the faults it followed
	Status string `json:"status"`          // what rampart status said last
}

// Result is a campaign's outcome.
type Result struct {
	Steps   []Step
	History history.History
	Report  history.Report
	Misses  []Miss
	// Converged are the convergence times after each step, by kind.
	Converged map[Kind][]time.Duration
	// Skipped are the steps whose target did not exist when they ran.
	Skipped []string
	// Err says why the campaign stopped early ("" when it ran to the end).
	Err string
	// Halted says after which step the campaign stopped injecting: the
	// cluster missed a convergence, and faults on a cluster that has not
	// recovered would bury the finding under their own.
	Halted string `json:"halted,omitempty"`
}

// Failed: the campaign found something, or did not finish.
func (r Result) Failed() bool {
	return len(r.Report.Violations) > 0 || len(r.Misses) > 0 || r.Err != ""
}

// errHalt ends the injections after a convergence miss.
var errHalt = errors.New("convergence missed")

// campaign is one run's working state.
type campaign struct {
	l     *lab.Lab
	o     Options
	log   *slog.Logger
	w     *Workload
	marks *marker
	res   *Result
	// bmcBack are the hosts whose BMC a bmc-down fault took away and
	// brought back: their fence device's monitor may fail after the heal.
	bmcBack map[string]bool
}

// Run runs a campaign on lab l (built with LabConfig, prepared with
// Prepare). The error is for a campaign that could not run; what it found
// is in the Result.
func Run(ctx context.Context, l *lab.Lab, o Options, log *slog.Logger) (res Result, err error) {
	res = Result{Converged: map[Kind][]time.Duration{}}
	steps, err := Plan(o.Seed, o.Faults, o.Kinds)
	if err != nil {
		return res, err
	}
	res.Steps = steps
	c := &campaign{l: l, o: o, log: log, res: &res, bmcBack: map[string]bool{}}
	started := o.Now()
	res.History.Started = started
	// A campaign cut short still reports what its clients saw, its faults
	// healed at the end (history's rule) and why it stopped.
	defer func() {
		if err == nil {
			return
		}
		res.Err = err.Error()
		if c.w != nil {
			c.w.Stop()
			res.History.Ops = c.w.Ops()
			res.History.Marks = c.marks.stop()
		}
		end := o.Now().Sub(started)
		for i := range res.History.Faults {
			if f := &res.History.Faults[i]; f.Healed == f.Start {
				f.Healed = end
			}
		}
		res.Report = history.Check(res.History, history.Options{RegisterTimeout: time.Minute, ReadYourWritesWindow: 2 * time.Second})
	}()
	targets, nodes, err := c.targets()
	if err != nil {
		return res, err
	}
	if err := setup(ctx, targets[0].Config); err != nil {
		return res, err
	}
	c.w = NewWorkload(targets, nodes, o.Seed, o.Pace, started, o.Now, log)
	c.w.Start()
	defer c.w.Stop()
	c.marks = sampleMarks(ctx, c.l, started, o.Now)
	defer c.marks.stop()
	c.progress("seed %d: %d faults (%s); workload on the database VIP and the pooler pair", o.Seed, len(steps), FormatKinds(o.Kinds))
	if err := c.sleep(ctx, 5*time.Second); err != nil {
		return res, err
	}
	// inForce are the faults in force; healed the ones healed without a
	// convergence wait yet (Recovering), whose convergence the next wait
	// covers.
	var inForce, healed []active
	// settle heals the faults in force and waits for convergence.
	settle := func(what string) error {
		if len(inForce)+len(healed) == 0 {
			return nil
		}
		if err := c.heal(ctx, inForce); err != nil {
			return err
		}
		var hit []string
		var kinds []Kind
		for _, a := range append(healed, inForce...) {
			hit, kinds = append(hit, a.host), append(kinds, a.kind)
		}
		inForce, healed = nil, nil
		missed := len(c.res.Misses)
		c.converge(ctx, what, kinds, hit)
		c.progress("violations so far: %d", len(quickCheck(c.w.Ops())))
		if len(c.res.Misses) > missed {
			return errHalt
		}
		return nil
	}
	for i, s := range steps {
		if o.Now().Sub(started) > o.Duration {
			c.progress("duration %s reached: %d of %d faults run", o.Duration, i, len(steps))
			break
		}
		a, err := c.inject(ctx, s)
		if err != nil {
			return res, fmt.Errorf("fault %d of %d (%s): %w", i+1, len(steps), s.Kind, err)
		}
		if a.host == "" {
			res.Skipped = append(res.Skipped, fmt.Sprintf("fault %d: no %s for %s", i+1, s.Target, s.Kind))
			c.progress("fault %d of %d: %s skipped: no %s", i+1, len(steps), s.Kind, s.Target)
			// The fault it was to overlap heals now, as the pair would have.
			if err := settle(fmt.Sprintf("fault %d", i)); errors.Is(err, errHalt) {
				res.Halted = fmt.Sprintf("fault %d", i)
				break
			} else if err != nil {
				return res, err
			}
			continue
		}
		c.progress("fault %d of %d: %s %s (%s) for %.1fs%s", i+1, len(steps), s.Kind, a.host, s.Target, s.Hold.Seconds(),
			map[bool]string{true: ", overlapping the next"}[s.Overlap])
		inForce = append(inForce, a)
		hold := s.Hold
		if s.Kind == Switchover {
			// A switchover lasts as long as its command; the hold says how
			// soon an overlapping fault lands in it: within a second or so.
			hold /= 8
		}
		if err := c.sleep(ctx, hold); err != nil {
			return res, err
		}
		if s.Overlap && i+1 < len(steps) {
			continue
		}
		if s.Hurry > 0 && i+1 < len(steps) {
			// Heal, and the next fault while the cluster recovers; the
			// convergence wait comes after that one.
			if err := c.heal(ctx, inForce); err != nil {
				return res, err
			}
			healed, inForce = append(healed, inForce...), nil
			c.progress("next fault in %.1fs, while the cluster recovers", s.Hurry.Seconds())
			if err := c.sleep(ctx, s.Hurry); err != nil {
				return res, err
			}
			continue
		}
		if err := settle(fmt.Sprintf("fault %d (%s %s)", i+1, s.Kind, a.host)); errors.Is(err, errHalt) {
			res.Halted = fmt.Sprintf("fault %d", i+1)
			break
		} else if err != nil {
			return res, err
		}
	}
	if res.Halted != "" {
		c.progress("stopped injecting after %s: the cluster did not converge; the campaign ends here", res.Halted)
	}
	if err := c.heal(ctx, inForce); err != nil {
		return res, err
	}
	// Let the clients see the converged cluster, then stop them.
	if err := c.sleep(ctx, 3*time.Second); err != nil {
		return res, err
	}
	c.w.Stop()
	res.History.Marks = c.marks.stop()
	c.converge(ctx, "the end", nil, nil)
	res.History.Ops = c.w.Ops()
	res.History.Final, err = c.final(ctx)
	if err != nil {
		return res, err
	}
	res.Report = history.Check(res.History, history.Options{RegisterTimeout: time.Minute, ReadYourWritesWindow: 2 * time.Second})
	ok, failed, unknown := c.w.Counts()
	c.progress("done: %d ops (%d ok, %d failed, %d unknown), %d violations, %d convergence misses",
		ok+failed+unknown, ok, failed, unknown, len(res.Report.Violations), len(res.Misses))
	return res, nil
}

func (c *campaign) progress(format string, args ...any) {
	fmt.Fprintf(c.o.Progress, "%6.1fs  %s\n", c.o.Now().Sub(c.res.History.Started).Seconds(), fmt.Sprintf(format, args...))
}

// sleep lets the campaign run for d (the workload keeps going).
func (c *campaign) sleep(ctx context.Context, d time.Duration) error {
	until := c.o.Now().Add(d)
	return lab.WaitFor(ctx, d.String()+" of workload", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		return !c.o.Now().Before(until), "", nil
	})
}

// targets are the workload's two addresses, with the client host's dialer,
// and the database hosts by address.
func (c *campaign) targets() ([]Target, map[string]string, error) {
	dial, err := c.l.Dialer("client")
	if err != nil {
		return nil, nil, err
	}
	conf := func(addr string) (*pgx.ConnConfig, error) {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("%s user=%s password=%s dbname=%s connect_timeout=2 sslmode=disable",
			addr, lab.AppUser, c.l.Password(lab.AppUser), lab.AppDatabase))
		if err != nil {
			return nil, err
		}
		cfg.DialFunc = dial
		return cfg, nil
	}
	vip, err := conf(fmt.Sprintf("host=%s port=5432", c.l.Config().VIP()))
	if err != nil {
		return nil, nil, err
	}
	pooler, err := conf(fmt.Sprintf("host=%s port=%d", c.l.Config().PoolerVIP(), lab.PoolerPort))
	if err != nil {
		return nil, nil, err
	}
	nodes := map[string]string{}
	for _, h := range c.l.Hosts() {
		if h.Role == lab.RoleDatabase {
			nodes[h.Addr.String()] = h.Name
		}
	}
	n := max(c.o.ClientsPerPath, 1)
	// Durable reads: the pooler holds them itself (durable_reads); on
	// the VIP the clients end each read with a barrier.
	durable := !c.o.PlainReads
	return []Target{{history.ViaVIP, vip, n, durable}, {history.ViaPooler, pooler, n, false}}, nodes, nil
}

// setup creates the workload's tables on the primary.
func setup(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("workload setup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, Schema); err != nil {
		return fmt.Errorf("workload setup: %w", err)
	}
	return nil
}

// active is a fault in force: its mark and how to heal it.
type active struct {
	host  string
	kind  Kind
	fault int // index in History.Faults
	heal  func(context.Context) error
}

// inject resolves s's target and injects it; a zero active (no host)
// when the target does not exist now.
func (c *campaign) inject(ctx context.Context, s Step) (active, error) {
	host, err := c.resolve(ctx, s.Target)
	if err != nil || host == "" {
		c.log.Info("target not found", "role", s.Target, "err", err)
		return active{}, nil
	}
	l := c.l
	var heal func(context.Context) error
	switch s.Kind {
	case PostmasterKill:
		if _, err := l.KillPostmaster(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error { return c.cleanup(ctx, host) }
	case HostCrash:
		if err := l.Crash(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error { return c.bringBack(ctx, host) }
	case BMCDown:
		if err := l.BMCDown(ctx, host); err != nil {
			return active{}, err
		}
		if err := l.Crash(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if err := l.BMCUp(ctx, host); err != nil {
				return err
			}
			// The fence device's monitor failed while its BMC was away.
			c.bmcBack[host] = true
			c.cleanupResource(ctx, "fence-"+host, "")
			return c.bringBack(ctx, host)
		}
	case PacketLoss:
		if err := l.Lose(ctx, host, LossPercent); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if err := l.StopLoss(ctx, host); err != nil {
				return err
			}
			return c.bringBack(ctx, host)
		}
	case SlowLink:
		if err := l.Throttle(ctx, host, SlowKbit); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if err := l.Unthrottle(ctx, host); err != nil {
				return err
			}
			return c.bringBack(ctx, host)
		}
	case Switchover:
		to, err := c.resolve(ctx, SyncStandby)
		if err != nil || to == "" {
			c.log.Info("no synchronous standby to switch over to", "err", err)
			return active{}, nil
		}
		wait, err := c.startSwitchover(host, to)
		if err != nil {
			return active{}, err
		}
		heal = wait
	case PoolerKill:
		if err := l.KillPooler(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(context.Context) error { return l.StartPooler(host) }
	case Freeze, PoolerFreeze:
		if err := l.Freeze(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if !l.Crashed(host) { // not fenced meanwhile
				if err := l.Thaw(host); err != nil {
					return err
				}
			}
			return c.bringBack(ctx, host)
		}
	case LinkCut:
		if err := l.Cut(ctx, host); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if err := l.Restore(ctx, host); err != nil {
				return err
			}
			return c.bringBack(ctx, host)
		}
	case Partition, PartitionSync, PartitionClient:
		side := []string{host}
		switch s.Kind {
		case PartitionSync:
			sync, err := c.resolve(ctx, SyncStandby)
			if err != nil || sync == "" {
				c.log.Info("no synchronous standby to partition with the primary", "err", err)
				return active{}, nil
			}
			side = append(side, sync)
		case PartitionClient:
			side = append(side, "client")
		}
		if err := l.Partition(ctx, [][]string{side}); err != nil {
			return active{}, err
		}
		heal = func(ctx context.Context) error {
			if err := l.Heal(ctx); err != nil {
				return err
			}
			for _, h := range side {
				if err := c.bringBack(ctx, h); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		return active{}, fmt.Errorf("unknown fault kind %q", s.Kind)
	}
	now := c.o.Now().Sub(c.res.History.Started)
	c.res.History.Faults = append(c.res.History.Faults, history.Fault{Kind: string(s.Kind), Target: host + " (" + string(s.Target) + ")", Start: now, Healed: now})
	return active{host: host, kind: s.Kind, fault: len(c.res.History.Faults) - 1, heal: heal}, nil
}

// startSwitchover runs `rampart switchover --to to` on host (the primary,
// where an operator would), in the background; the returned wait waits for
// it to end and says how it did. A refusal or a failure is no finding of
// its own: convergence is the judge (a constraint left behind, a primary
// that did not move back to health).
func (c *campaign) startSwitchover(host, to string) (func(context.Context) error, error) {
	// With the pooler pair's consoles: the poolers hold while the role
	// moves, whatever other fault is in force.
	args := []string{c.o.Bin, "switchover", "--to", to, "--timeout", "90s"}
	for _, u := range c.l.PoolerConsoles() {
		args = append(args, "--pooler", u)
	}
	cmd, err := c.l.Exec(context.Background(), host, args...)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("switchover to %s on %s: %w", to, host, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func(ctx context.Context) error {
		select {
		case err := <-done:
			how := "exit 0"
			if err != nil {
				how = err.Error()
			}
			c.progress("switchover to %s: %s (%s)", to, lastLine(out.String()), how)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("switchover to %s: %w", to, ctx.Err())
		}
		return nil
	}, nil
}

// heal heals the faults in force, the last first, and marks them healed.
func (c *campaign) heal(ctx context.Context, as []active) error {
	for i := len(as) - 1; i >= 0; i-- {
		if err := as[i].heal(ctx); err != nil {
			return fmt.Errorf("heal %s: %w", as[i].host, err)
		}
		f := &c.res.History.Faults[as[i].fault]
		f.Healed = c.o.Now().Sub(c.res.History.Started)
		c.progress("healed %s on %s", f.Kind, as[i].host)
	}
	return nil
}

// bringBack boots a database host that is down (crashed or fenced), once
// the others have the fencing confirmed as the seed does, and lets
// Pacemaker start its resource again; other hosts need nothing.
func (c *campaign) bringBack(ctx context.Context, host string) error {
	if !slices.Contains(c.l.DBHosts(), host) {
		return nil
	}
	if c.l.Crashed(host) {
		// Powered off is not fenced yet: a host back on before the fencer
		// has confirmed is powered off again.
		wctx, cancel := context.WithTimeout(ctx, c.o.ConvergeTimeout)
		err := lab.WaitFor(wctx, host+" fencing confirmed", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			return c.l.FenceConfirmed(ctx, host)
		})
		cancel()
		if err != nil {
			return err
		}
		c.progress("boot %s: fencing confirmed", host)
		if err := c.l.Boot(ctx, host); err != nil {
			return err
		}
	}
	return c.cleanup(ctx, host)
}

// cleanup clears host's failed resource actions (migration-threshold=1
// bans a resource from a node where it failed until then), as an operator
// would after a postmaster died.
func (c *campaign) cleanup(ctx context.Context, host string) error {
	c.cleanupResource(ctx, lab.PgsqlResource+"-clone", host)
	return nil
}

// cleanupResource clears rsc's failed actions (on node; "" for every
// node). It asks the hosts other than node first (node may be on its way
// out: fenced, or not yet back in the cluster); when none can, it says so
// and leaves the verdict to the convergence wait.
func (c *campaign) cleanupResource(ctx context.Context, rsc, node string) {
	hosts := slices.DeleteFunc(c.l.DBHosts(), func(h string) bool { return h == node })
	if node != "" {
		hosts = append(hosts, node)
	}
	argv := []string{"crm_resource", "--cleanup", "--resource", rsc}
	if node != "" {
		argv = append(argv, "--node", node)
	}
	var errs []error
	for _, h := range hosts {
		if c.l.Crashed(h) {
			continue
		}
		_, err := c.l.Output(ctx, h, argv...)
		if err == nil {
			return
		}
		errs = append(errs, err)
	}
	c.progress("could not clean %s up on %s: %s", rsc, cmp.Or(node, "every node"), firstLine(fmt.Sprint(errors.Join(errs...))))
}

// resolve names the host that plays role now ("" for none).
func (c *campaign) resolve(ctx context.Context, role Role) (string, error) {
	switch role {
	case Witness:
		return "w", nil
	case PoolerLeader:
		leader, _, err := c.l.PoolerLeader(ctx)
		return leader, err
	}
	primary, err := c.l.Primary(ctx)
	if err != nil || role == Primary {
		return primary, err
	}
	var sync string
	var async []string
	for _, r := range c.l.Postgres(ctx, primary).Replication {
		switch {
		case r.State != "streaming":
		case r.SyncState == "sync":
			sync = r.Name
		default:
			async = append(async, r.Name)
		}
	}
	if role == SyncStandby {
		return sync, nil
	}
	slices.Sort(async)
	if len(async) == 0 {
		return "", nil
	}
	return async[0], nil
}

// converge waits until `rampart status` on a running database host (one
// not hit last, whose own view may lag) says no problem (one primary,
// every booted node streaming from it, the VIP on the primary, one pooler
// leader) for settle on end, booting hosts fenced meanwhile: a status
// taken the moment a fault heals may predate the cluster's reaction to
// it. A miss is recorded with what status said last.
func (c *campaign) converge(ctx context.Context, after string, kinds []Kind, hit []string) {
	const settle = 6 * time.Second // two Corosync tokens
	start := c.o.Now()
	last := "(no status yet)"
	var since time.Time // start of the current run of converged answers
	wctx, cancel := context.WithTimeout(ctx, c.o.ConvergeTimeout)
	defer cancel()
	err := lab.WaitFor(wctx, "convergence", time.Second, func(ctx context.Context) (bool, string, error) {
		for _, h := range c.l.DBHosts() {
			// Fenced after the heal (a thaw that raced the fencer).
			if c.l.Crashed(h) {
				if ok, seen, _ := c.l.FenceConfirmed(ctx, h); ok {
					c.progress("boot %s: fenced after the heal (%s)", h, seen)
					if err := c.l.Boot(ctx, h); err != nil {
						last = fmt.Sprintf("boot %s: %v", h, err)
						return false, last, nil
					}
				}
			}
		}
		code, out := c.status(ctx, hit)
		if ctx.Err() != nil {
			return false, "", nil // keep the last whole answer
		}
		last = out
		c.cleanFenceMonitors(ctx, Problems(out))
		ok, why := Converged(code, out)
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = c.o.Now()
		}
		return ok && c.o.Now().Sub(since) >= settle, why, nil
	})
	if err != nil {
		c.res.Misses = append(c.res.Misses, Miss{After: after, Kinds: kinds, Status: last})
		c.progress("NOT converged after %s in %.0fs: %s", after, c.o.ConvergeTimeout.Seconds(), firstProblem(last))
		return
	}
	took := since.Sub(start)
	for _, k := range kinds {
		c.res.Converged[k] = append(c.res.Converged[k], took)
	}
	c.progress("converged in %.1fs", took.Seconds())
}

// cleanFenceMonitors cleans up a fence device whose monitor failed while
// its host's BMC was down and is up again: a monitor in flight when the
// BMC came back fails after the heal's own cleanup (fault 18 of seed
// 2026, a 4.8 s bmc-down), and cleaning it up is the operator's part of
// bringing a BMC back, as the heal's first cleanup is.
func (c *campaign) cleanFenceMonitors(ctx context.Context, problems []string) {
	for _, p := range problems {
		for _, h := range c.l.DBHosts() {
			if c.bmcBack[h] && strings.HasPrefix(p, "failed action fence-"+h+"_monitor") && !c.l.BMCIsDown(h) {
				c.progress("clean up fence-%s: its monitor failed while the BMC was away (%s)", h, p)
				c.cleanupResource(ctx, "fence-"+h, "")
			}
		}
	}
}

// Converged judges a `rampart status` answer: exit 0 and nothing else.
// The reason is the first problem it lists, or its first line.
func Converged(code int, out string) (bool, string) {
	if code == 0 {
		return true, ""
	}
	if ps := Problems(out); code == exitProblems && len(ps) > 0 {
		return false, ps[0]
	}
	return false, firstLine(out)
}

// exitProblems is `rampart status`'s exit code when it lists problems.
const exitProblems = 2

// Problems are the lines of `rampart status`'s "Problems:" list.
func Problems(out string) []string {
	_, list, ok := strings.Cut(out, "Problems:")
	if !ok {
		return nil
	}
	var ps []string
	for line := range strings.Lines(list) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "- "); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// status runs `rampart status` on a running database host, one not in hit
// if it can, and returns its exit code (-1: it did not run) and output.
func (c *campaign) status(ctx context.Context, hit []string) (int, string) {
	hosts := slices.DeleteFunc(c.l.DBHosts(), func(h string) bool { return c.l.Crashed(h) })
	slices.SortStableFunc(hosts, func(a, b string) int { return b2i(slices.Contains(hit, a)) - b2i(slices.Contains(hit, b)) })
	if len(hosts) == 0 {
		return -1, "no database host runs"
	}
	h := hosts[0]
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd, err := c.l.Exec(sctx, h, c.o.Bin, "status")
	if err != nil {
		return -1, err.Error()
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, fmt.Sprintf("rampart status on %s:\n%s", h, out)
	case errors.As(err, &ee):
		return ee.ExitCode(), fmt.Sprintf("rampart status on %s:\n%s", h, out)
	}
	return -1, fmt.Sprintf("rampart status on %s: %v", h, err)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// final reads every running database node's lists.
func (c *campaign) final(ctx context.Context) ([]history.NodeState, error) {
	var states []history.NodeState
	for _, h := range c.l.DBHosts() {
		if c.l.Crashed(h) {
			continue
		}
		pg := c.l.Postgres(ctx, h)
		if !pg.Up {
			c.log.Warn("final state: node down", "node", h, "err", pg.Error)
			continue
		}
		out, err := c.l.PsqlDB(ctx, h, lab.AppDatabase, FinalSQL)
		if err != nil {
			return nil, fmt.Errorf("final lists on %s: %w", h, err)
		}
		lists, err := ParseFinal(out)
		if err != nil {
			return nil, fmt.Errorf("final lists on %s: %w", h, err)
		}
		states = append(states, history.NodeState{Node: h, Standby: pg.InRecovery, Lists: lists})
	}
	return states, nil
}

// quickCheck runs the checks that are cheap on a growing history: the
// register search and the final state wait for the end.
func quickCheck(ops []history.Op) []history.Violation {
	vs := history.SplitBrain(ops)
	vs = append(vs, history.ReadYourWrites(ops, 2*time.Second)...)
	vs = append(vs, history.GarbageReads(ops, nil)...)
	return append(vs, history.ListOrder(ops, nil)...)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// firstProblem is the first problem of a status answer that counts, or
// its first line.
func firstProblem(out string) string {
	if _, why := Converged(exitProblems, out); why != "" && why != "only stale positions" {
		return why
	}
	return firstLine(out)
}

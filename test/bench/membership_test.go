package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
	"github.com/rampart-ha/rampart/test/seed"
)

// TestMembershipBench is the other side of a short Corosync token: how
// often does it drop a healthy member? Two labs run the lab's Corosync
// settings at once for RAMPART_SOAK (30 min), each the other's noise on
// the machine's two cores: one idle, one under the seed's load (two
// writers through the VIP, a reader per standby) with base backups of
// 250 MB taken from the primary back to back, so that the primary is slow
// and busy the whole time. It counts, on every node, what Corosync must
// not do to a healthy cluster (form a new membership, lose the token,
// declare a link down) and what Pacemaker must not do to it (fence a host,
// move the primary). A false loss costs a fence of a healthy host and a
// failover; the goal is none.
func TestMembershipBench(t *testing.T) {
	if os.Getenv("RAMPART_BENCH") == "" {
		t.Skip("benchmark: run it with `make bench` (RAMPART_BENCH=1)")
	}
	soakFor := 30 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("RAMPART_SOAK")); err == nil && d > 0 {
		soakFor = d
	}
	base := lab.DefaultConfig()
	base.Agent = agentBinary
	if d, err := time.ParseDuration(os.Getenv("RAMPART_SOAK_TOKEN")); err == nil {
		base.Token = d
	}
	if missing := lab.Prerequisites(base); len(missing) > 0 {
		t.Skipf("benchmark needs %s", strings.Join(missing, ", "))
	}
	reports := make([]string, 2)
	t.Run("group", func(t *testing.T) {
		for i, loaded := range []bool{false, true} {
			name, id := "idle", "soakidle"
			if loaded {
				name, id = "loaded", "soakload"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := base
				c.ID = id
				reports[i] = soak(t, c, loaded, soakFor)
			})
		}
	})
	report := fmt.Sprintf("\nmembership soak: Corosync token %d ms, token_coefficient 0, consensus %d ms (1.2 × token), %s, two labs at once\n%s%s",
		base.Token.Milliseconds(), (base.Token * 6 / 5).Milliseconds(), soakFor, reports[0], reports[1])
	t.Log(report)
	fmt.Println(report)
}

// corosyncCounters are the counters soak compares, summed over the nodes.
type corosyncCounters struct {
	memberships, tokensLost, linksDown uint64
}

func readCounters(ctx context.Context, l *lab.Lab) (corosyncCounters, error) {
	var c corosyncCounters
	for _, h := range l.DBHosts() {
		st, err := l.CorosyncStats(ctx, h, "stats.")
		if err != nil {
			return c, err
		}
		c.memberships += st["stats.srp.operational_entered"]
		c.tokensLost += st["stats.srp.operational_token_lost"] + st["stats.srp.gather_token_lost"] +
			st["stats.srp.commit_token_lost"] + st["stats.srp.recovery_token_lost"]
		for k, v := range st {
			if strings.HasPrefix(k, "stats.knet.") && strings.HasSuffix(k, ".down_count") {
				c.linksDown += v
			}
		}
	}
	return c, nil
}

func (c corosyncCounters) minus(o corosyncCounters) corosyncCounters {
	return corosyncCounters{c.memberships - o.memberships, c.tokensLost - o.tokensLost, c.linksDown - o.linksDown}
}

// soak runs one lab for d and returns its report line; it fails t on a
// fence, a moved primary, a lost commit or a spurious membership.
func soak(t *testing.T, c lab.Config, loaded bool, d time.Duration) string {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Destroy(context.Background(), c.Root, c.ID, log) })
	l, err := lab.Up(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ManagePostgres(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP); err != nil {
		t.Fatal(err)
	}
	primary, err := l.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var standbys []string
	for _, h := range l.DBHosts() {
		if h != primary {
			standbys = append(standbys, h)
		}
	}
	if err := l.WaitStreaming(ctx, primary, standbys); err != nil {
		t.Fatal(err)
	}
	var (
		load    *seed.Load
		backups atomic.Int64
		stop    = make(chan struct{})
		done    = make(chan error, 1)
	)
	if loaded {
		var reads []string
		for _, h := range l.Hosts() {
			if h.Role == lab.RoleDatabase && h.Name != primary {
				reads = append(reads, "host="+h.Addr.String())
			}
		}
		load, err = seed.NewLoad(l, seed.NewRecorder(time.Now), "host="+c.VIP().String()+" target_session_attrs=read-write", reads, 2, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if err := load.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		for _, sql := range []string{
			"CREATE TABLE soak_bulk AS SELECT g AS id, repeat(md5(g::text), 6) AS v FROM generate_series(1, 1000000) g",
			"CHECKPOINT",
		} {
			if out, err := l.PsqlDB(ctx, primary, lab.AppDatabase, sql); err != nil {
				t.Fatalf("%s: %v: %s", sql, err, out)
			}
		}
		load.Start()
		defer load.Stop()
		addr := l.Addr(primary)
		root, err := os.MkdirTemp("/var/lib/rampart", "soak-backup-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				dir := filepath.Join(root, fmt.Sprint(i))
				out, err := l.Output(ctx, "client", agentBinary, "backup", "--host", addr, "--allow-primary", "--dir", dir)
				os.RemoveAll(dir)
				if err != nil {
					done <- fmt.Errorf("base backup %d from %s: %w: %s", i+1, primary, err, out)
					return
				}
				backups.Add(1)
			}
		}()
	} else {
		close(done)
	}
	before, err := readCounters(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var last corosyncCounters
	err = lab.WaitFor(ctx, fmt.Sprintf("%s of soak", d), 10*time.Second, func(ctx context.Context) (bool, string, error) {
		now, err := readCounters(ctx, l)
		if err == nil {
			last = now.minus(before)
		}
		state := fmt.Sprintf("%s: %+v, %d backups", time.Since(start).Round(time.Second), last, backups.Load())
		if time.Since(start) >= d {
			return true, state, nil
		}
		// A minute's progress line, so a long run shows it is alive.
		if int(time.Since(start).Seconds())%60 < 10 {
			t.Logf("%s: %s", c.ID, state)
		}
		return false, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	if loaded {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	after, err := readCounters(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	diff := after.minus(before)
	var fenced []string
	for _, h := range l.DBHosts() {
		if l.Crashed(h) {
			fenced = append(fenced, h)
		}
	}
	now, err := l.Primary(ctx)
	if err != nil {
		t.Error(err)
	}
	line := fmt.Sprintf("  %-7s %d new memberships, %d token losses, %d knet link downs (summed over 3 nodes); fenced %v; primary %s → %s",
		map[bool]string{false: "idle", true: "loaded"}[loaded], diff.memberships, diff.tokensLost, diff.linksDown, fenced, primary, now)
	if loaded {
		load.Stop()
		lost, acked, err := load.Lost(ctx)
		if err != nil {
			t.Error(err)
		}
		line += fmt.Sprintf("; %d base backups of the primary, %d acknowledged commits, %d lost", backups.Load(), acked, len(lost))
		if len(lost) > 0 {
			t.Errorf("%d acknowledged commits lost", len(lost))
		}
	}
	line += "\n"
	if diff.memberships > 0 || diff.tokensLost > 0 || len(fenced) > 0 || now != primary {
		t.Errorf("healthy cluster disturbed: %s", line)
	}
	return line
}

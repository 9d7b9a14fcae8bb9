package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// A fault below the host level, for the agent's compound cases: a standby
// that receives no WAL while the others do, so that the synchronous set and
// the asynchronous standbys hold different WAL when the primary fails.

// walTable is the nftables table HoldWAL adds in a host's namespace.
const walTable = "rampart_lab_wal"

// HoldWAL makes host receive no WAL: every TCP packet from a PostgreSQL
// server's port (5432) that reaches it is dropped, so its walreceiver
// stalls (and its connections to other servers hang), while its own server,
// Corosync and Pacemaker are untouched. The sender's kernel keeps the data
// and retransmits it: release the hold only once the sender is gone if
// what it sent must never arrive. A boot releases it (firewall rules do not
// survive a power cycle).
func (l *Lab) HoldWAL(ctx context.Context, host string) error {
	if err := l.needDB(host); err != nil {
		return err
	}
	ruleset := fmt.Sprintf("table inet %s {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp sport %s drop\n }\n}\n", walTable, pgPort)
	if err := l.nft(ctx, host, ruleset); err != nil {
		return fmt.Errorf("hold WAL of %s: %w", host, err)
	}
	return l.change(func(s *State) { s.WALHeld = setFlag(s.WALHeld, host, true) })
}

// ReleaseWAL undoes HoldWAL.
func (l *Lab) ReleaseWAL(ctx context.Context, host string) error {
	if err := l.needRunning(host); err != nil {
		return err
	}
	if err := l.releaseWAL(ctx, host); err != nil {
		return err
	}
	return l.change(func(s *State) { s.WALHeld = setFlag(s.WALHeld, host, false) })
}

func (l *Lab) releaseWAL(ctx context.Context, host string) error {
	if !l.current().WALHeld[host] {
		return nil
	}
	if err := l.nft(ctx, host, "delete table inet "+walTable+"\n"); err != nil {
		return fmt.Errorf("release WAL of %s: %w", host, err)
	}
	return nil
}

// nft loads ruleset into host's network namespace (which outlives a
// crash: no anchor needed).
func (l *Lab) nft(ctx context.Context, host, ruleset string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.cfg.hostNamespace(host), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f - (is nftables installed? make deps): %w: %s", err, tail(string(out), 300))
	}
	return nil
}

// lossTable is the nftables table Lose adds in a host's namespace.
const lossTable = "rampart_lab_loss"

// Lose makes host's database link (eth0) drop pct percent of the packets
// it sends and of those it receives, at random: a bad cable or a busy
// switch. (A fixed delay would need the kernel's netem, which this lab
// does not assume; Throttle delays by queueing.) The management link and its BMC are untouched. StopLoss undoes
// it; it outlasts a crash and a boot, as a link's fault would.
func (l *Lab) Lose(ctx context.Context, host string, pct int) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if pct < 1 || pct > 100 {
		return fmt.Errorf("packet loss on %s: %d %%: want 1 to 100", host, pct)
	}
	if l.current().Lossy[host] > 0 {
		return fmt.Errorf("packet loss on %s: in force already (%d %%): stop it first", host, l.current().Lossy[host])
	}
	ruleset := fmt.Sprintf("table inet %[1]s {\n chain input {\n  type filter hook input priority 0; policy accept;\n  iifname \"eth0\" numgen random mod 100 < %[2]d drop\n }\n"+
		" chain output {\n  type filter hook output priority 0; policy accept;\n  oifname \"eth0\" numgen random mod 100 < %[2]d drop\n }\n}\n", lossTable, pct)
	if err := l.nft(ctx, host, ruleset); err != nil {
		return fmt.Errorf("packet loss on %s: %w", host, err)
	}
	return l.change(func(s *State) {
		if s.Lossy == nil {
			s.Lossy = map[string]int{}
		}
		s.Lossy[host] = pct
	})
}

// StopLoss undoes Lose.
func (l *Lab) StopLoss(ctx context.Context, host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if l.current().Lossy[host] == 0 {
		return nil
	}
	if err := l.nft(ctx, host, "delete table inet "+lossTable+"\n"); err != nil {
		return fmt.Errorf("stop packet loss on %s: %w", host, err)
	}
	return l.change(func(s *State) { delete(s.Lossy, host) })
}

// Throttle makes host's database link carry at most kbit kilobits per
// second each way, with a token bucket (tc tbf) that queues up to a second
// of traffic and drops the rest: a congested or degraded link, where
// everything behind a burst (the WAL of a big write, a query's result)
// waits its turn and Corosync's token waits with it. It is the lab's delay
// fault: a fixed delay would need the kernel's netem, which the lab does
// not assume (tbf is in every kernel that has traffic control). The host's
// eth0 shapes what it sends, its bridge port what it receives; the
// management link and its BMC are untouched. Unthrottle undoes it; it
// outlasts a crash and a boot, as a link's fault would.
func (l *Lab) Throttle(ctx context.Context, host string, kbit int) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if kbit < 8 || kbit > 10_000_000 {
		return fmt.Errorf("throttle %s: %d kbit/s: want 8 to 10000000", host, kbit)
	}
	if l.current().Throttled[host] > 0 {
		return fmt.Errorf("throttle %s: in force already (%d kbit/s): undo it first", host, l.current().Throttled[host])
	}
	// burst: at least one full-size packet and a little more than rate/HZ.
	tbf := []string{"root", "tbf", "rate", fmt.Sprintf("%dkbit", kbit), "burst", "16kb", "latency", "1s"}
	for _, argv := range [][]string{
		append([]string{"tc", "-n", l.cfg.hostNamespace(host), "qdisc", "replace", "dev", "eth0"}, tbf...),
		append([]string{"tc", "-n", l.cfg.netNamespace(), "qdisc", "replace", "dev", bridgePort(host)}, tbf...),
	} {
		if _, err := run(ctx, argv...); err != nil {
			l.unthrottle(ctx, host)
			return fmt.Errorf("throttle %s: %w", host, err)
		}
	}
	return l.change(func(s *State) {
		if s.Throttled == nil {
			s.Throttled = map[string]int{}
		}
		s.Throttled[host] = kbit
	})
}

// Unthrottle undoes Throttle.
func (l *Lab) Unthrottle(ctx context.Context, host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if l.current().Throttled[host] == 0 {
		return nil
	}
	if err := l.unthrottle(ctx, host); err != nil {
		return fmt.Errorf("unthrottle %s: %w", host, err)
	}
	return l.change(func(s *State) { delete(s.Throttled, host) })
}

// unthrottle removes both ends' shapers; an end without one is no error.
func (l *Lab) unthrottle(ctx context.Context, host string) error {
	var first error
	for _, argv := range [][]string{
		{"tc", "-n", l.cfg.hostNamespace(host), "qdisc", "del", "dev", "eth0", "root"},
		{"tc", "-n", l.cfg.netNamespace(), "qdisc", "del", "dev", bridgePort(host), "root"},
	} {
		if _, err := run(ctx, argv...); err != nil && !strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero") && first == nil {
			first = err
		}
	}
	return first
}

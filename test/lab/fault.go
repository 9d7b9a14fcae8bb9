package lab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Faults. Each checks its arguments before it changes anything, records
// what it did in the lab state (shown by status), and returns once the fault
// is in place; observing its effect is the caller's business.

// KillPostmaster sends SIGKILL to host's postmaster and returns its PID.
func (l *Lab) KillPostmaster(ctx context.Context, host string) (int, error) {
	if err := l.needDB(host); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(l.pgHostPath(host, PGData+"/postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("kill postmaster of %s: %w (is PostgreSQL running there?)", host, err)
	}
	inner, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("kill postmaster of %s: postmaster.pid: %w", host, err)
	}
	// postmaster.pid holds the PID inside the host's PID namespace; a stale
	// file may name no process, or another one.
	pid, err := l.machinePID(host, inner, "postgres")
	if err != nil {
		return 0, fmt.Errorf("kill postmaster of %s: %w", host, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill postmaster of %s: %w", host, err)
	}
	return pid, WaitFor(ctx, fmt.Sprintf("postmaster %d of %s gone", pid, host), 10*time.Millisecond,
		func(context.Context) (bool, string, error) { return !alive(pid), "", nil })
}

// machinePID finds the machine's PID of the process of host whose PID in
// the host's own PID namespace is inner and whose command is comm.
func (l *Lab) machinePID(host string, inner int, comm string) (int, error) {
	procs, err := procsInNamespace(l.cfg.hostNamespace(host))
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		if p.Comm == comm && p.InnerPID == inner {
			return p.PID, nil
		}
	}
	return 0, fmt.Errorf("no %s with pid %d runs on %s", comm, inner, host)
}

// Crash kills every process of host at once and takes its link down, so its
// kernel answers nothing either, like a host that lost power.
func (l *Lab) Crash(ctx context.Context, host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if err := setPort(ctx, l.cfg, host, false); err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := killNamespace(kctx, l.cfg.hostNamespace(host)); err != nil {
		return fmt.Errorf("crash %s: %w", host, err)
	}
	return l.change(func(s *State) {
		s.Crashed[host] = true
		s.Frozen[host] = false
		s.Anchors[host] = 0
	})
}

// Boot starts a crashed host again: link up (unless cut), fresh /run, and
// its services: Corosync, Pacemaker and, unless Pacemaker manages it,
// PostgreSQL (in the role its data directory says).
func (l *Lab) Boot(ctx context.Context, host string) error { return l.BootAfter(ctx, host, 0) }

// BootAfter boots host like Boot but starts its services only post after
// its init: the time a real machine spends between power on and its
// services (firmware, kernel). A host powered on by a fence agent needs it:
// were its Pacemaker back before the fencer has told the cluster the
// fencing is done, it would learn it was fenced and shut itself down.
func (l *Lab) BootAfter(ctx context.Context, host string, post time.Duration) error {
	return l.boot(ctx, host, post, false)
}

// BootWithPostgresUnit boots host as one whose distribution's postgresql
// service is enabled: PostgreSQL starts before Corosync and Pacemaker, in
// the role its data directory says (a primary's, as a primary), behind the
// cluster's back.
func (l *Lab) BootWithPostgresUnit(ctx context.Context, host string) error {
	return l.boot(ctx, host, 0, true)
}

func (l *Lab) boot(ctx context.Context, host string, post time.Duration, pgFirst bool) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	if !l.current().Crashed[host] {
		return fmt.Errorf("boot %s: it is running; crash it first with `rampart lab fault crash %s`", host, host)
	}
	if err := resetAddresses(ctx, l.cfg, h); err != nil {
		return err
	}
	if err := l.releaseWAL(ctx, host); err != nil {
		return err
	}
	pid, err := bootAnchor(ctx, l.cfg, h.HostSpec)
	if err != nil {
		return err
	}
	if err := l.change(func(s *State) {
		s.Anchors[host] = pid
		s.Crashed[host] = false
		s.WALHeld = setFlag(s.WALHeld, host, false)
	}); err != nil {
		return err
	}
	st := l.current()
	if !st.Cut[host] {
		if err := setPort(ctx, l.cfg, host, true); err != nil {
			return err
		}
	}
	if h.Role != RoleDatabase {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("boot %s: %w", host, ctx.Err())
	case <-time.After(post):
	}
	if pgFirst {
		if err := l.StartPostgres(ctx, host); err != nil {
			return err
		}
	}
	if err := l.startCorosync(host); err != nil {
		return err
	}
	if err := l.startPacemaker(host); err != nil {
		return err
	}
	if st.PacemakerPG || pgFirst {
		return nil
	}
	return l.StartPostgres(ctx, host)
}

// Crashed reports whether host is powered off: crashed, or fenced through
// its BMC.
func (l *Lab) Crashed(host string) bool { return l.current().Crashed[host] }

// BMCIsDown says whether host's BMC is down (BMCDown, until BMCUp).
func (l *Lab) BMCIsDown(host string) bool { return l.current().BMCDown[host] }

// Freeze stops every process of host with SIGSTOP, the seed's "OS hang".
// Its kernel still answers ARP and TCP handshakes; combine with Cut for a
// silent host.
func (l *Lab) Freeze(ctx context.Context, host string) error {
	if err := l.needRunning(host); err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := freezeNamespace(fctx, l.cfg.hostNamespace(host)); err != nil {
		return fmt.Errorf("freeze %s: %w", host, err)
	}
	return l.change(func(s *State) { s.Frozen[host] = true })
}

// Thaw resumes a frozen host with SIGCONT.
func (l *Lab) Thaw(host string) error {
	if err := l.needRunning(host); err != nil {
		return err
	}
	if err := thawNamespace(l.cfg.hostNamespace(host)); err != nil {
		return fmt.Errorf("thaw %s: %w", host, err)
	}
	return l.change(func(s *State) { s.Frozen[host] = false })
}

// Cut takes host's link down: the others hear nothing from it and it hears
// nothing from them.
func (l *Lab) Cut(ctx context.Context, host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if err := setPort(ctx, l.cfg, host, false); err != nil {
		return err
	}
	return l.change(func(s *State) { s.Cut[host] = true })
}

// Restore brings a cut link back.
func (l *Lab) Restore(ctx context.Context, host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if !l.current().Crashed[host] {
		if err := setPort(ctx, l.cfg, host, true); err != nil {
			return err
		}
	}
	return l.change(func(s *State) { s.Cut[host] = false })
}

// Partition splits the lab: each group becomes a network of its own; hosts
// in no group stay together. Heal undoes it.
func (l *Lab) Partition(ctx context.Context, groups [][]string) error {
	if p := l.current().Partition; p != nil {
		return fmt.Errorf("partition: the lab is partitioned already (%s): heal it first", formatGroups(p))
	}
	if err := checkGroups(l.cfg, groups); err != nil {
		return err
	}
	if err := partition(ctx, l.cfg, groups); err != nil {
		return err
	}
	return l.change(func(s *State) { s.Partition = groups })
}

// Heal joins a partitioned lab again.
func (l *Lab) Heal(ctx context.Context) error {
	if err := heal(ctx, l.cfg, len(l.current().Partition)); err != nil {
		return err
	}
	return l.change(func(s *State) { s.Partition = nil })
}

// checkGroups validates partition groups: known hosts, each in one group at
// most, and more than one side.
func checkGroups(c Config, groups [][]string) error {
	known := map[string]bool{}
	for _, h := range c.Hosts() {
		known[h.Name] = true
	}
	seen := map[string]bool{}
	total := 0
	for _, g := range groups {
		if len(g) == 0 {
			return fmt.Errorf("partition: empty group")
		}
		for _, h := range g {
			if !known[h] {
				return fmt.Errorf("partition: no host %q in lab %s", h, c.ID)
			}
			if seen[h] {
				return fmt.Errorf("partition: %s is in two groups", h)
			}
			seen[h] = true
			total++
		}
	}
	if len(groups) == 0 || (len(groups) == 1 && total == len(known)) {
		return fmt.Errorf("partition: name the hosts to cut off from the rest, e.g. `n1` or `n1 / n2,n3`")
	}
	return nil
}

func formatGroups(groups [][]string) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, "{"+strings.Join(g, ",")+"}")
	}
	return strings.Join(parts, " | ") + " | rest"
}

func (l *Lab) needDB(host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	if h.Role != RoleDatabase {
		return fmt.Errorf("%s is not a database host", host)
	}
	return l.needRunning(host)
}

func (l *Lab) needRunning(host string) error {
	if _, err := l.host(host); err != nil {
		return err
	}
	if l.current().Crashed[host] {
		return fmt.Errorf("host %s is crashed: boot it first with `rampart lab fault boot %s`", host, host)
	}
	return nil
}

// FenceConfirmed says whether the other database hosts' cluster counts
// host as cleanly offline (fenced, the fencing done), with what was seen:
// a host powered off is not yet fenced while the fence agent still checks
// its power state, so a boot must wait for this.
func (l *Lab) FenceConfirmed(ctx context.Context, host string) (bool, string, error) {
	for _, h := range l.DBHosts() {
		if h == host || l.Crashed(h) {
			continue
		}
		st, err := l.Cluster(ctx, h)
		if err != nil {
			continue
		}
		for _, n := range st.Nodes {
			if n.Name == host {
				return !n.Online && !n.Unclean, fmt.Sprintf("seen from %s: online %v, unclean %v", h, n.Online, n.Unclean), nil
			}
		}
	}
	return false, "no other node answered", nil
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process seen in /proc.
type proc struct {
	PID      int
	InnerPID int // PID in the innermost PID namespace (the host's own)
	Comm     string
	State    byte // R, S, D, T (stopped), t, Z (zombie), …
}

// procsInNamespace lists the live processes whose network namespace is the
// named one. Zombies are left out: they are gone, only not yet reaped.
func procsInNamespace(ns string) ([]proc, error) {
	nsInfo, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		return nil, fmt.Errorf("list processes of namespace %s: %w", ns, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var procs []proc
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue // never count (or kill) the process running the lab
		}
		info, err := os.Stat("/proc/" + e.Name() + "/ns/net")
		if err != nil || !os.SameFile(info, nsInfo) {
			continue // exited meanwhile, or not ours
		}
		p, err := readProc(pid)
		if err != nil || p.State == 'Z' || p.State == 'X' {
			continue
		}
		p.InnerPID = innerPID(pid)
		procs = append(procs, p)
	}
	return procs, nil
}

// readProc reads the command name and state from /proc/PID/stat.
func readProc(pid int) (proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	return parseStat(pid, string(b))
}

// parseStat parses "PID (comm) S …"; comm may itself hold spaces and parens.
func parseStat(pid int, s string) (proc, error) {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || close+2 >= len(s) {
		return proc{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return proc{PID: pid, Comm: s[open+1 : close], State: s[close+2]}, nil
}

// innerPID reads the last NSpid of /proc/PID/status: the PID in the
// process's own PID namespace (0 when unreadable).
func innerPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// alive reports whether pid names a process that is not a zombie.
func alive(pid int) bool {
	p, err := readProc(pid)
	return err == nil && p.State != 'Z' && p.State != 'X'
}

// killNamespace sends SIGKILL to every process of ns until none is left,
// because a dying process may fork or be restarted by its parent meanwhile.
func killNamespace(ctx context.Context, ns string) error {
	return signalUntil(ctx, ns, syscall.SIGKILL, func(procs []proc) bool { return len(procs) == 0 })
}

// freezeNamespace sends SIGSTOP to every process of ns until all are stopped.
func freezeNamespace(ctx context.Context, ns string) error {
	return signalUntil(ctx, ns, syscall.SIGSTOP, func(procs []proc) bool {
		for _, p := range procs {
			if p.State != 'T' && p.State != 't' {
				return false
			}
		}
		return true
	})
}

// thawNamespace sends SIGCONT to every process of ns.
func thawNamespace(ns string) error {
	procs, err := procsInNamespace(ns)
	if err != nil {
		return err
	}
	for _, p := range procs {
		_ = syscall.Kill(p.PID, syscall.SIGCONT)
	}
	return nil
}

// signalUntil signals the processes of ns and looks again, until done holds
// for what it sees or ctx ends.
func signalUntil(ctx context.Context, ns string, sig syscall.Signal, done func([]proc) bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		procs, err := procsInNamespace(ns)
		if err != nil {
			return err
		}
		if done(procs) {
			return nil
		}
		for _, p := range procs {
			if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("signal %v to pid %d (%s) of %s: %w", sig, p.PID, p.Comm, ns, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("signal %v to the processes of %s: %w; still there: %s", sig, ns, ctx.Err(), describe(procs))
		case <-tick.C:
		}
	}
}

func describe(procs []proc) string {
	var parts []string
	for _, p := range procs {
		parts = append(parts, fmt.Sprintf("%d(%s,%c)", p.PID, p.Comm, p.State))
	}
	return strings.Join(parts, " ")
}

// pssKiB sums the proportional set size of procs, from smaps_rollup.
func pssKiB(procs []proc) int {
	total := 0
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/smaps_rollup")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				n, _ := strconv.Atoi(f[1])
				total += n
			}
		}
	}
	return total
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times
// (100 on every Linux architecture rampart runs on).
const clockTicks = 100

// cpuTime reads a process's CPU time with that of the children it has
// reaped (utime + stime + cutime + cstime).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// HostCPU is the CPU time the host's processes have used, counting the
// children they reaped: its growth over an interval is the host's CPU use
// in it (a backend that exited is counted in its postmaster).
func (l *Lab) HostCPU(host string) (time.Duration, error) {
	procs, err := procsInNamespace(l.cfg.hostNamespace(host))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, p := range procs {
		if d, err := cpuTime(p.PID); err == nil {
			total += d
		}
	}
	return total, nil
}

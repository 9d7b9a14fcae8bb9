package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuClock reads how much CPU time (user and system) a pooler has used so
// far: the difference across a pgbench run, over its transactions, is the
// pooler's CPU per transaction.
type cpuClock func() (time.Duration, error)

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's times.
const clockTick = 10 * time.Millisecond

// treeCPU is the CPU clock of the process root and all its descendants
// (pgpool-II's children; the nsenter that started PgBouncer), their
// reaped children included.
func treeCPU(root int) cpuClock {
	return func() (time.Duration, error) {
		stats, err := filepath.Glob("/proc/[0-9]*/stat")
		if err != nil {
			return 0, err
		}
		parent := map[int]int{}
		ticks := map[int]int64{}
		for _, path := range stats {
			pid, ppid, t, err := readStat(path)
			if err != nil {
				continue // ended meanwhile
			}
			parent[pid], ticks[pid] = ppid, t
		}
		if _, ok := ticks[root]; !ok {
			return 0, fmt.Errorf("process %d is gone", root)
		}
		var sum int64
		for pid, t := range ticks {
			for p := pid; p > 1; p = parent[p] {
				if p == root {
					sum += t
					break
				}
			}
		}
		return time.Duration(sum) * clockTick, nil
	}
}

// readStat returns a /proc/PID/stat's PID, parent PID and CPU ticks
// (utime + stime + cutime + cstime).
func readStat(path string) (pid, ppid int, ticks int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')') // the name may hold spaces and parentheses
	if open < 0 || end < open {
		return 0, 0, 0, fmt.Errorf("%s: no command name", path)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, 0, err
	}
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, 0, err
		}
		ticks += n
	}
	return pid, ppid, ticks, nil
}

// selfCPU is this process's CPU clock: rampart's pooler runs in the test
// process (pgbench and the other poolers are processes of their own).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

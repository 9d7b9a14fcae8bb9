package pgsql

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// The postmaster watcher.
//
// Pacemaker learns that a postmaster died at the next recurring monitor:
// on average half an interval later, the largest part of a failover. The
// agent therefore leaves a small process beside every postmaster it runs.
// It waits on a pidfd of the postmaster (no polling) and, when the process
// exits while the agent did not stop it, tells Pacemaker at once with
// `crm_resource --fail`: the same failure the next monitor would report,
// seconds earlier. It acts on a fact (the process is gone), never on a
// guess: a frozen host freezes its watcher too, and a partition changes
// nothing it sees.
//
// The agent stops the watcher before it stops or demotes PostgreSQL, and
// every start, promote, demote and monitor that leaves a postmaster running
// makes sure one watches it. The watcher holds an exclusive flock on
// /run/rampart/pgsql-RESOURCE.watch for its life (so a crashed watcher
// leaves no stale claim) and runs as the cluster daemon user, the only one
// besides root that Pacemaker lets fail a resource.

// watchAction is the hidden action a watcher runs under; Pacemaker never
// calls it (it is not in meta-data).
const watchAction = "rampart-watch-postmaster"

// watchDir holds the watchers' lock files: tmpfs, emptied at boot.
const watchDir = "/run/rampart"

// clusterUser is Pacemaker's daemon user (CRM_DAEMON_USER).
const clusterUser = "hacluster"

// Watcher file descriptors, as the spawner passes them.
const (
	watchLockFD  = 3
	watchPidfdFD = 4
)

// watchReportTimeout bounds the report: Pacemaker's controller may be busy
// with a transition; past this the next monitor reports instead.
const watchReportTimeout = 20 * time.Second

// WatcherStep says what the root agent does about the watcher around an
// action: stop it before (the agent is about to end the postmaster itself)
// and make sure one runs after (the action left a postmaster running).
func WatcherStep(action string, code ocf.Status) (stopBefore, ensureAfter bool) {
	switch action {
	case "stop", "demote":
		stopBefore = true
	}
	switch action {
	case "start", "promote", "demote", "monitor":
		ensureAfter = code == ocf.Success || code == ocf.RunningPromoted
	}
	return stopBefore, ensureAfter
}

func watchLockPath(rsc string) string {
	return filepath.Join(watchDir, "pgsql-"+rsc+".watch")
}

// stopWatcher ends the watcher whose lock file is lockPath, if one runs,
// and returns once its lock is free.
func stopWatcher(lockPath string, log *slog.Logger) error {
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if tryLock(f) {
		return nil // nobody watches
	}
	// A blocking lock is the wake-up: it is ours when the watcher ended.
	free := make(chan struct{})
	go func() {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX) == nil {
			close(free)
		}
	}()
	signal, escalate := syscall.SIGTERM, time.After(2*time.Second)
	giveUp := time.After(3 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	watcher := -1 // its pidfd: a signal through it cannot hit a reused PID
	defer func() {
		if watcher >= 0 {
			unix.Close(watcher)
		}
	}()
	for {
		if watcher < 0 {
			// The spawner writes the PID just after the watcher starts.
			if pid := watcherPID(f); pid > 0 {
				if fd, err := unix.PidfdOpen(pid, 0); err == nil {
					if isWatcher(pid) {
						watcher = fd
					} else {
						unix.Close(fd)
					}
				}
			}
		}
		if watcher >= 0 {
			if err := unix.PidfdSendSignal(watcher, signal, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("stop postmaster watcher: %w", err)
			}
		}
		select {
		case <-free:
			return nil
		case <-escalate:
			log.Warn("postmaster watcher ignores SIGTERM: killing it")
			signal = syscall.SIGKILL
		case <-giveUp:
			return fmt.Errorf("postmaster watcher (%s) does not end", lockPath)
		case <-tick.C:
		}
	}
}

// tryLock takes f's lock if it is free and releases it again: true means
// no watcher holds it.
func tryLock(f *os.File) bool {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}

func watcherPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// isWatcher says whether process pid runs as a postmaster watcher.
func isWatcher(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "\x00"+watchAction+"\x00")
}

// ensureWatcher starts a watcher for rsc's postmaster unless one runs or no
// postmaster runs. agentName is the name this binary runs the agent under.
func ensureWatcher(cfg config, rsc, node, agentName string, log *slog.Logger) error {
	if node == "" {
		return nil // outside a cluster (ocf-tester): nobody to tell
	}
	if err := os.MkdirAll(watchDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(watchLockPath(rsc), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // a watcher holds it
	}
	// Held until the child has it too; closing f below leaves it the child's.
	pid, err := cfg.inst.PostmasterPID()
	if errors.Is(err, pg.ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of postmaster %d: %w", pid, err)
	}
	pidf := os.NewFile(uintptr(pidfd), "postmaster-pidfd")
	defer pidf.Close()
	// The PID could have been reused between reading the file and opening
	// the pidfd: read it again now that the pidfd pins the process.
	if again, err := cfg.inst.PostmasterPID(); err != nil || again != pid {
		return nil // the postmaster just ended: the monitor reports it
	}
	u, err := user.Lookup(clusterUser)
	if err != nil {
		return fmt.Errorf("postmaster watcher needs Pacemaker's user %s: %w", clusterUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	logf, err := openSystemUserLog(cfg.inst.LogFile, cfg.user)
	if err != nil {
		// To /dev/null then; Pacemaker's log still shows the failure.
		log.Warn("postmaster watcher without a log", "err", err)
	} else {
		defer logf.Close()
	}
	cmd := watcherCommand(agentName, rsc, node, pid, f, pidf, logf, uid, gid)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postmaster watcher: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0)
	}
	log.Debug("postmaster watcher started", "watcher", cmd.Process.Pid, "postmaster", pid)
	return cmd.Process.Release()
}

// openWatcherLog opens the postmaster's start-up log for the watcher's
// stderr. Root opens it in a folder the system user (owner) owns, so the
// system user decides what is found there: it opens no link (O_NOFOLLOW),
// creates nothing (pg_ctl, as the system user, created the log), does not
// wait on a FIFO (O_NONBLOCK), and then keeps only a regular file of the
// system user's, which root writing to gives that user nothing.
func openWatcherLog(path string, owner int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open the start-up log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open the start-up log: %w", err)
	}
	uid := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = int(st.Uid)
	}
	if err := watcherLogUsable(fi.Mode(), uid, owner); err != nil {
		f.Close()
		return nil, fmt.Errorf("start-up log %s: %w", path, err)
	}
	return f, nil
}

// watcherLogUsable decides whether root may write the watcher's messages
// to an opened file of this mode and owner uid: a regular file of owner's.
func watcherLogUsable(mode fs.FileMode, uid, owner int) error {
	if !mode.IsRegular() {
		return fmt.Errorf("not a regular file (%s)", mode.Type())
	}
	if uid != owner {
		return fmt.Errorf("owned by uid %d, not by the system user (uid %d)", uid, owner)
	}
	return nil
}

// openSystemUserLog opens the start-up log of the instance run by the OS
// user systemUser (see openWatcherLog).
func openSystemUserLog(path, systemUser string) (*os.File, error) {
	u, err := user.Lookup(systemUser)
	if err != nil {
		return nil, fmt.Errorf("start-up log: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("start-up log: uid of %s: %w", systemUser, err)
	}
	return openWatcherLog(path, uid)
}

// watcherCommand is the watcher process for postmaster pid: run as
// uid:gid, lock and pidfd on fds 3 and 4, stderr to logf (nil: /dev/null).
func watcherCommand(agentName, rsc, node string, pid int, lock, pidfd, logf *os.File, uid, gid int) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", watchAction, rsc, node, strconv.Itoa(pid))
	cmd.Args[0] = agentName
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	cmd.Dir = "/"
	if logf != nil {
		cmd.Stderr = logf
	}
	cmd.ExtraFiles = []*os.File{lock, pidfd} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true, // out of the action's process group: Pacemaker kills that on timeout
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}},
	}
	return cmd
}

// runWatcher is the watcher process: it waits for the postmaster (fd 4) to
// exit and reports a failure of rsc on node; SIGTERM (ctx) ends it quietly.
func runWatcher(ctx context.Context, args []string, run pacemaker.Runner, log *slog.Logger) int {
	if len(args) != 5 {
		log.Error(watchAction + " is started by the agent itself, not by hand")
		return int(ocf.ErrArgs)
	}
	rsc, node, postmaster := args[2], args[3], args[4]
	log = log.With("resource", rsc, "node", node, "postmaster", postmaster)
	// Only what the spawner passed may end in a report: run by hand, with
	// no pidfd there, the watcher refuses.
	if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", watchPidfdFD)); err != nil || link != "anon_inode:[pidfd]" {
		log.Error("no postmaster pidfd on fd 4: not started by the agent")
		return int(ocf.ErrArgs)
	}
	exited := make(chan error, 1)
	go func() {
		fds := []unix.PollFd{{Fd: watchPidfdFD, Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case err == nil && fds[0].Revents&unix.POLLIN == 0:
				err = fmt.Errorf("poll of the pidfd: events %#x", fds[0].Revents)
			}
			exited <- err
			return
		}
	}()
	select {
	case <-ctx.Done():
		return 0
	case err := <-exited:
		if err != nil {
			log.Error("postmaster watcher cannot wait; the monitor will notice instead", "err", err)
			return 1
		}
	}
	log.Warn("postmaster exited without the agent stopping it: reporting the failure to Pacemaker now rather than at the next monitor")
	report, cancel := context.WithTimeout(context.WithoutCancel(ctx), watchReportTimeout)
	defer cancel()
	for {
		_, err := run(report, "crm_resource", "--fail", "--resource="+rsc, "--node="+node)
		if err == nil {
			return 0
		}
		log.Warn("reporting the failure failed", "err", err)
		select {
		case <-report.Done():
			log.Error("gave up reporting; the next monitor reports the failure")
			return 1
		case <-time.After(500 * time.Millisecond):
		}
	}
}

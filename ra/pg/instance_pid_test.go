package pg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A postmaster.pid left by a crash may name a PID that another process
// has after a boot: it counts as running only when that process works in
// the data directory, as a postmaster does (the seed's experiment 1 saw
// `rampart rejoin` refuse "postmaster runs" for a PID Pacemaker had).
func TestPostmasterPIDChecksTheProcess(t *testing.T) {
	data, other := t.TempDir(), t.TempDir()
	cmd := standIn(t, data)
	pid := cmd.Process.Pid
	for _, dir := range []string{data, other} {
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n"+dir+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := (Instance{DataDir: data}).PostmasterPID(); err != nil || got != pid {
		t.Errorf("a process working in the data directory: %d, %v; want %d", got, err, pid)
	}
	if _, err := (Instance{DataDir: other}).PostmasterPID(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("the PID of a process working elsewhere: %v, want ErrNotRunning", err)
	}
	// Through a symbolic link to the data directory, as Debian's layouts have.
	link := filepath.Join(t.TempDir(), "main")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	if got, err := (Instance{DataDir: link}).PostmasterPID(); err != nil || got != pid {
		t.Errorf("the data directory through a link: %d, %v; want %d", got, err, pid)
	}
}

// A stale postmaster.pid naming a live process of another program is
// removed before a start or a rewind (PostgreSQL would refuse to run
// beside it: CI's seed saw pg_rewind fail so after a boot); one naming a
// postmaster of the data directory stays.
func TestRemoveStaleLock(t *testing.T) {
	data, other := t.TempDir(), t.TempDir()
	cmd := standIn(t, data)
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, dir := range []string{data, other} {
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid+"\n"+dir+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Instance{DataDir: other}).removeStaleLock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a postmaster.pid naming another program's live process: %v; want it removed", err)
	}
	if err := (Instance{DataDir: data}).removeStaleLock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
		t.Errorf("the postmaster.pid of a running postmaster: %v; want it kept", err)
	}
	if err := (Instance{DataDir: t.TempDir()}).removeStaleLock(); err != nil {
		t.Errorf("no postmaster.pid at all: %v", err)
	}
}

// standIn starts a process working in dir, as a postmaster does in its
// data directory, until the test ends.
func standIn(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to stand in for a postmaster: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

package pgsql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-ha/rampart/ra/ocf"
)

func TestWatcherStep(t *testing.T) {
	tests := []struct {
		action      string
		code        ocf.Status
		stop, start bool
	}{
		{"start", ocf.Success, false, true},
		{"start", ocf.ErrGeneric, false, false},
		{"stop", ocf.Success, true, false},
		{"demote", ocf.Success, true, true}, // ends the postmaster, starts a standby's
		{"demote", ocf.ErrGeneric, true, false},
		{"promote", ocf.Success, false, true},
		{"monitor", ocf.RunningPromoted, false, true},
		{"monitor", ocf.Success, false, true},
		{"monitor", ocf.NotRunning, false, false},
		{"monitor", ocf.FailedPromoted, false, false},
		{"notify", ocf.Success, false, false},
		{"reload", ocf.Success, false, false},
	}
	for _, tt := range tests {
		stop, start := WatcherStep(tt.action, tt.code)
		if stop != tt.stop || start != tt.start {
			t.Errorf("%s → %s: got stop before %v, ensure after %v; want %v, %v", tt.action, tt.code, stop, start, tt.stop, tt.start)
		}
	}
}

// A watcher not started by the agent (no pidfd on fd 4) must refuse and
// report nothing: a report fails the resource.
func TestWatcherRefusesWithoutPidfd(t *testing.T) {
	run := func(ctx context.Context, argv ...string) (string, error) {
		t.Errorf("the watcher ran %v", argv)
		return "", nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if got := runWatcher(context.Background(), []string{"pgsql", watchAction, "pgsql", "n1", "1"}, run, log); got != int(ocf.ErrArgs) {
		t.Errorf("got exit %d, want %d", got, ocf.ErrArgs)
	}
	if got := runWatcher(context.Background(), []string{"pgsql", watchAction}, run, log); got != int(ocf.ErrArgs) {
		t.Errorf("without arguments: got exit %d, want %d", got, ocf.ErrArgs)
	}
}

// TestHelperWatcher is the stand-in watcher process of TestStopWatcher: it
// takes the lock and waits; with IGNORE_TERM it ignores SIGTERM.
func TestHelperWatcher(t *testing.T) {
	path := os.Getenv("RAMPART_TEST_WATCH_LOCK")
	if path == "" {
		t.Skip("helper process of TestStopWatcher")
	}
	if os.Getenv("RAMPART_TEST_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Exit(2)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) != nil {
		os.Exit(2)
	}
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	os.Stdout.WriteString("locked\n")
	select {}
}

func TestStopWatcher(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("no lock file: nothing to stop", func(t *testing.T) {
		if err := stopWatcher(filepath.Join(t.TempDir(), "none.watch"), log); err != nil {
			t.Fatal(err)
		}
	})
	for _, ignoreTerm := range []bool{false, true} {
		name := "ends on SIGTERM"
		if ignoreTerm {
			name = "killed when it ignores SIGTERM"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgsql-test.watch")
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// The watch action's name in the command line is how stopWatcher
			// knows the process is a watcher before it signals it.
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWatcher$", "--", watchAction)
			cmd.Env = append(os.Environ(), "RAMPART_TEST_WATCH_LOCK="+path)
			if ignoreTerm {
				cmd.Env = append(cmd.Env, "RAMPART_TEST_IGNORE_TERM=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			buf := make([]byte, 7)
			if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "locked\n" {
				t.Fatalf("helper did not take the lock: %q, %v", buf, err)
			}
			start := time.Now()
			if err := stopWatcher(path, log); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("helper still runs or exited cleanly after stopWatcher: %v", err)
			}
			want := syscall.SIGTERM
			if ignoreTerm {
				want = syscall.SIGKILL
			}
			if ws := exit.Sys().(syscall.WaitStatus); ws.Signal() != want {
				t.Errorf("helper ended by %v, want %v", ws.Signal(), want)
			}
			t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

// Root opens the start-up log in a folder the system user owns: a link
// or file the system user put there must not make root write elsewhere,
// create a file, or hang.
func TestOpenWatcherLog(t *testing.T) {
	me := os.Getuid()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, log string)
		owner int
		ok    bool
	}{
		{"the system user's log", func(t *testing.T, dir, log string) { writeFile(t, log, "started\n") }, me, true},
		{"no log yet: not created", func(t *testing.T, dir, log string) {}, me, false},
		{"a link to another file", func(t *testing.T, dir, log string) {
			writeFile(t, filepath.Join(dir, "target"), "root's\n")
			symlink(t, filepath.Join(dir, "target"), log)
		}, me, false},
		{"a link to a file that does not exist", func(t *testing.T, dir, log string) {
			symlink(t, filepath.Join(dir, "target"), log)
		}, me, false},
		{"a FIFO nobody reads", func(t *testing.T, dir, log string) {
			if err := unix.Mkfifo(log, 0o600); err != nil {
				t.Fatal(err)
			}
		}, me, false},
		{"a folder", func(t *testing.T, dir, log string) {
			if err := os.Mkdir(log, 0o700); err != nil {
				t.Fatal(err)
			}
		}, me, false},
		{"another user's file", func(t *testing.T, dir, log string) { writeFile(t, log, "started\n") }, me + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "main.startup.log")
			tt.setup(t, dir, log)
			before := snapshot(t, dir)
			opened := make(chan struct{})
			var f *os.File
			var err error
			go func() {
				defer close(opened)
				f, err = openWatcherLog(log, tt.owner)
			}()
			select {
			case <-opened:
			case <-time.After(5 * time.Second):
				// Unblock the open so that the test ends.
				if r, err := os.OpenFile(log, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
					defer r.Close()
				}
				<-opened
				t.Fatal("openWatcherLog blocked")
			}
			if (err == nil) != tt.ok {
				t.Errorf("openWatcherLog: %v; want ok=%v", err, tt.ok)
			}
			if f != nil {
				defer f.Close()
				// What the watcher would do with it.
				if _, err := f.WriteString("watcher\n"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.ok {
				if b, _ := os.ReadFile(log); string(b) != "started\nwatcher\n" {
					t.Errorf("log holds %q; want the watcher's line appended", b)
				}
				return
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("folder changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// Without a log the watcher still starts, its stderr on /dev/null: a nil
// *os.File as Stderr would hand the child a closed fd 2 instead.
func TestWatcherCommandWithoutLog(t *testing.T) {
	lock, pidfd := os.Stdin, os.Stdout // stand-ins: only their places count
	cmd := watcherCommand("pgsql", "pgsql", "n1", 42, lock, pidfd, nil, 102, 105)
	if cmd.Stderr != nil {
		t.Errorf("Stderr = %#v; want nil (/dev/null)", cmd.Stderr)
	}
	if len(cmd.ExtraFiles) != 2 || cmd.ExtraFiles[0] != lock || cmd.ExtraFiles[1] != pidfd {
		t.Errorf("ExtraFiles = %v; want the lock on fd 3 and the pidfd on fd 4", cmd.ExtraFiles)
	}
	if want := []string{"pgsql", watchAction, "pgsql", "n1", "42"}; strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Errorf("Args = %q; want %q", cmd.Args, want)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if cmd := watcherCommand("pgsql", "pgsql", "n1", 42, lock, pidfd, logf, 102, 105); cmd.Stderr != logf {
		t.Errorf("Stderr = %#v; want the log", cmd.Stderr)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists a folder's entries with their kind, size, time and
// content, to tell whether anything in it changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		content := ""
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			content = string(c)
		}
		fmt.Fprintf(&b, "%s %v %d %d %q; ", e.Name(), fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), content)
	}
	return b.String()
}

func TestWatcherLogUsable(t *testing.T) {
	tests := []struct {
		name       string
		mode       fs.FileMode
		uid, owner int
		ok         bool
	}{
		{"the system user's regular file", 0o640, 101, 101, true},
		{"root's file", 0o640, 0, 101, false},
		{"a FIFO with a reader", fs.ModeNamedPipe | 0o600, 101, 101, false},
		{"a device", fs.ModeDevice | fs.ModeCharDevice | 0o600, 101, 101, false},
		{"a socket", fs.ModeSocket | 0o600, 101, 101, false},
		{"owner unknown", 0o640, -1, 101, false},
	}
	for _, tt := range tests {
		if err := watcherLogUsable(tt.mode, tt.uid, tt.owner); (err == nil) != tt.ok {
			t.Errorf("%s: %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
}

package pgsql

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
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

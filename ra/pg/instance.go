package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Instance is one PostgreSQL data directory and the binaries that run it.
// Its methods run as the calling process's user, which must own DataDir.
type Instance struct {
	BinDir    string
	DataDir   string
	SocketDir string
	Port      int
	LogFile   string // pg_ctl -l: the postmaster's stderr before logging starts
}

// ErrNotRunning says no postmaster runs for the data directory.
var ErrNotRunning = errors.New("postgresql is not running")

func (i Instance) command(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(i.BinDir, tool), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// A postmaster started by pg_ctl keeps no pipe of ours: pg_ctl -l
	// redirects it, so waiting for output ends with pg_ctl.
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return out, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// waitSeconds is what pg_ctl -t gets: the time left before ctx ends.
func waitSeconds(ctx context.Context) string {
	if d, ok := ctx.Deadline(); ok {
		return strconv.Itoa(max(int(time.Until(d).Seconds()), 1))
	}
	return "60"
}

// Start starts the postmaster and waits until it accepts connections.
func (i Instance) Start(ctx context.Context) error {
	if err := i.removeStaleLock(); err != nil {
		return err
	}
	_, err := i.command(ctx, "pg_ctl", "start", "-D", i.DataDir, "-w", "-t", waitSeconds(ctx), "-l", i.LogFile,
		"-o", "-p "+strconv.Itoa(i.Port))
	return err
}

// Stop stops the postmaster in mode (fast or immediate) and waits.
func (i Instance) Stop(ctx context.Context, mode string) error {
	_, err := i.command(ctx, "pg_ctl", "stop", "-D", i.DataDir, "-w", "-t", waitSeconds(ctx), "-m", mode)
	return err
}

// ControlData runs pg_controldata; a base backup not started yet has
// State StateBaseBackup (BaseBackupState).
func (i Instance) ControlData(ctx context.Context) (ControlData, error) {
	out, err := i.command(ctx, "pg_controldata", "-D", i.DataDir)
	if err != nil {
		return ControlData{}, err
	}
	c, err := ParseControlData(string(out))
	if err != nil {
		return c, err
	}
	label, err := os.ReadFile(filepath.Join(i.DataDir, "backup_label"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("read backup_label: %w", err)
	}
	return BaseBackupState(c, string(label)), nil
}

// PostmasterPID returns the PID of the running postmaster, or ErrNotRunning.
func (i Instance) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(i.DataDir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNotRunning
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s/postmaster.pid: bad pid", i.DataDir)
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return 0, ErrNotRunning // a stale file after a crash
	}
	if !runsIn(pid, i.DataDir) {
		return 0, ErrNotRunning // a stale file whose PID another process has now
	}
	return pid, nil
}

// removeStaleLock removes a postmaster.pid that names no postmaster of
// this data directory (PostmasterPID). PostgreSQL refuses to start, in
// single-user mode too, while the PID in that file is alive, and after a
// crash and a boot another program may have it: pg_rewind then fails
// with "target server must be shut down cleanly", and pg_ctl start with
// "lock file already exists". The caller holds the data directory's lock:
// no postmaster of ours starts meanwhile.
func (i Instance) removeStaleLock() error {
	path := filepath.Join(i.DataDir, "postmaster.pid")
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := i.PostmasterPID(); !errors.Is(err, ErrNotRunning) {
		return nil // a postmaster runs, or the file is unreadable: PostgreSQL says what it makes of it
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale %s: %w", path, err)
	}
	return nil
}

// runsIn says whether process pid works in dir, as a postmaster does in its
// data directory. After a crash and a boot PIDs start again, and a stale
// postmaster.pid may name a process of another program (kill -0 cannot
// tell). A process this user may not inspect is not this user's
// postmaster (the data directory's owner and root can read its cwd); any
// other doubt answers yes, as kill -0 did.
func runsIn(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return false
	case err != nil:
		return true
	}
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		want = filepath.Clean(dir)
	}
	return cwd == want
}

// Connect opens a connection to the instance through its socket, as the
// calling OS user (peer authentication).
func (i Instance) Connect(ctx context.Context, user string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = i.SocketDir, uint16(i.Port), user, "postgres"
	cfg.RuntimeParams["application_name"] = "rampart"
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", i.SocketDir, err)
	}
	return conn, nil
}

// SetAutoConfFile changes settings in postgresql.auto.conf (see
// SetAutoConf), writing the file atomically; it returns whether it changed.
func (i Instance) SetAutoConfFile(set map[string]*string) (bool, error) {
	path := filepath.Join(i.DataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	text, err := SetAutoConf(string(old), set)
	if err != nil {
		return false, fmt.Errorf("postgresql.auto.conf: %w", err)
	}
	if text == string(old) {
		return false, nil
	}
	return true, writeAtomic(path, []byte(text), 0o600)
}

// SetStandbySignal creates (or removes) standby.signal.
func (i Instance) SetStandbySignal(on bool) error {
	path := filepath.Join(i.DataDir, "standby.signal")
	if !on {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeAtomic(path, nil, 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".rampart-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Rewind resynchronises the data directory of a stopped old primary with
// source (a conninfo to the new primary) using pg_rewind. pg_rewind first
// runs crash recovery itself when the old primary did not shut down
// cleanly.
func (i Instance) Rewind(ctx context.Context, source Conninfo) (string, error) {
	// pg_rewind recovers a crashed data directory in single-user mode
	// first, which a stale postmaster.pid stops.
	if err := i.removeStaleLock(); err != nil {
		return "", err
	}
	out, err := i.command(ctx, "pg_rewind", "--target-pgdata="+i.DataDir, "--source-server="+source.String(), "--progress")
	return string(out), err
}

// Reclone replaces the data directory with a fresh base backup from source,
// keeping the old one beside it (renamed with suffix) for the operator to
// inspect and remove.
func (i Instance) Reclone(ctx context.Context, source Conninfo, suffix string) (kept string, err error) {
	kept = i.DataDir + suffix
	if err := os.Rename(i.DataDir, kept); err != nil {
		return "", fmt.Errorf("move the old data directory aside: %w", err)
	}
	if err := os.Mkdir(i.DataDir, 0o700); err != nil {
		return kept, err
	}
	_, err = i.command(ctx, "pg_basebackup", "--pgdata="+i.DataDir, "--dbname="+source.String(),
		"--wal-method=stream", "--checkpoint=fast", "--no-password")
	if err != nil {
		// Put the old one back: a half-made copy is worth nothing.
		os.RemoveAll(i.DataDir)
		if rerr := os.Rename(kept, i.DataDir); rerr != nil {
			return kept, fmt.Errorf("%w; and restoring %s failed: %v", err, kept, rerr)
		}
		return "", err
	}
	return kept, nil
}

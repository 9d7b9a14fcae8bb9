package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Host is where node's PostgreSQL is reached.
func (v View) Host(node string) string {
	if h := v.Hosts[node]; h != "" {
		return h
	}
	return node
}

// ChooseBackupSource picks the standby a backup reads from: one that
// streams, an asynchronous one first (a synchronous standby's I/O is in
// the primary's commit path), then the least behind.
func ChooseBackupSource(v View) (string, error) {
	type cand struct {
		name string
		sync bool
		lag  int64
	}
	var cs []cand
	for _, n := range v.Nodes {
		if n.Role != "standby" {
			continue
		}
		if !streaming(n.State) {
			continue
		}
		lag := int64(0)
		if n.LagBytes != nil {
			lag = *n.LagBytes
		}
		cs = append(cs, cand{n.Name, n.State == "sync", lag})
	}
	if len(cs) == 0 {
		return "", refuse("no streaming standby to back up from; name a server with --host (the primary needs --allow-primary)")
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.sync != b.sync {
			if a.sync {
				return 1
			}
			return -1
		}
		return int(a.lag - b.lag)
	})
	return cs[0].name, nil
}

// CheckBackupSource decides from the server's in_hot_standby (reported at
// connection start) whether a backup may be taken from it.
func CheckBackupSource(host, inHotStandby string, allowPrimary bool) error {
	switch {
	case inHotStandby == "on":
		return nil
	case allowPrimary:
		return nil
	case inHotStandby == "off":
		return refuse("%s is a primary: a base backup reads every data file there and adds a checkpoint, "+
			"load the primary carries for its clients; back up from a standby (rampart status lists them) or pass --allow-primary", host)
	}
	return refuse("%s does not say whether it is a standby (in_hot_standby needs PostgreSQL 14 or later); pass --allow-primary to back up from it anyway", host)
}

// BackupRequest says what to back up, where to, and with which tools.
type BackupRequest struct {
	Host, User   string
	Port         int
	Dir          string // must not exist, or be empty
	BinDir       string // pg_basebackup and pg_verifybackup
	AllowPrimary bool
	Progress     io.Writer // pg_basebackup's progress lines
}

// BackupDefaults fills what r leaves open (Port 0, User "", BinDir "")
// with what the agent of view v's resource uses: its pgport, repuser and
// bindir (the agent's defaults where the CIB sets none, and where v has no
// resource). A value the agent refuses is no default: r must give it.
func BackupDefaults(r BackupRequest, v View) (BackupRequest, error) {
	params := v.Params
	if v.Resource == "" {
		params, _ = AgentParams(nil)
	}
	take := func(param, flag string) (string, error) {
		if val, ok := params[param]; ok {
			return val, nil
		}
		return "", refuse("the %s of resource %s is unknown (rampart status says why): pass --%s", param, v.Resource, flag)
	}
	var err error
	if r.Port == 0 {
		var port string
		if port, err = take("pgport", "port"); err != nil {
			return r, err
		}
		r.Port, _ = strconv.Atoi(port) // validated
	}
	if r.User == "" {
		if r.User, err = take("repuser", "user"); err != nil {
			return r, err
		}
	}
	if r.BinDir == "" {
		if r.BinDir, err = take("bindir", "bindir"); err != nil {
			return r, err
		}
	}
	return r, nil
}

// BackupResult is what a backup did.
type BackupResult struct {
	Standby  bool
	Bytes    int64
	Took     time.Duration
	Verified bool
}

// Backup takes a base backup with pg_basebackup (WAL streamed alongside,
// SHA-256 manifest), then checks it with pg_verifybackup. It refuses a
// primary unless allowed, and a non-empty folder; on a failure after it
// began, the partial backup is removed.
func Backup(ctx context.Context, r BackupRequest, log *slog.Logger) (BackupResult, error) {
	var res BackupResult
	if err := checkEmptyDir(r.Dir); err != nil {
		return res, err
	}
	cfg, err := pgconn.ParseConfig(pg.Conninfo{"host": r.Host, "port": strconv.Itoa(r.Port), "user": r.User,
		"dbname": "replication", "connect_timeout": "10"}.String())
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = "rampart backup"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("backup: connect to %s as %s (a replication role, password in ~/.pgpass): %w", r.Host, r.User, err)
	}
	standby := conn.ParameterStatus("in_hot_standby")
	conn.Close(ctx)
	if err := CheckBackupSource(r.Host, standby, r.AllowPrimary); err != nil {
		return res, err
	}
	res.Standby = standby == "on"
	role := "primary"
	if res.Standby {
		role = "standby"
	}
	log.Info("backup: starting", "from", r.Host, "role", role, "into", r.Dir)
	start := time.Now()
	made := false
	if _, err := os.Stat(r.Dir); errors.Is(err, fs.ErrNotExist) {
		made = true
	}
	cmd := exec.CommandContext(ctx, filepath.Join(r.BinDir, "pg_basebackup"),
		"--host", r.Host, "--port", strconv.Itoa(r.Port), "--username", r.User, "--no-password",
		"--pgdata", r.Dir, "--wal-method=stream", "--checkpoint=fast", "--manifest-checksums=SHA256",
		"--label", "rampart backup", "--progress", "--verbose")
	var stderr strings.Builder
	cmd.Stderr = io.MultiWriter(r.Progress, &stderr)
	if err := cmd.Run(); err != nil {
		cleanup(r.Dir, made, log)
		return res, fmt.Errorf("backup from %s: pg_basebackup: %w: %s", r.Host, err, lastLine(stderr.String()))
	}
	res.Took = time.Since(start)
	log.Info("backup: verifying", "tool", "pg_verifybackup")
	out, err := exec.CommandContext(ctx, filepath.Join(r.BinDir, "pg_verifybackup"), r.Dir).CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("backup in %s does not verify (kept for inspection): %w: %s", r.Dir, err, strings.TrimSpace(string(out)))
	}
	res.Verified = true
	res.Bytes, _ = dirSize(r.Dir)
	return res, nil
}

// checkEmptyDir refuses a folder that holds anything (pg_basebackup would
// refuse it too, after connecting).
func checkEmptyDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return refuse("--dir %q: use an absolute path", dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return refuse("%s is not empty: a base backup needs a new or empty folder", dir)
	}
	return nil
}

func cleanup(dir string, made bool, log *slog.Logger) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
	if made {
		os.Remove(dir)
	}
	log.Info("backup: removed the partial backup", "dir", dir)
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

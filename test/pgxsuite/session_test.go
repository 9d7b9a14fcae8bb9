package pgxsuite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// needRealPID are pgx's tests that cannot pass through a pooler: each
// terminates the backend named by the process ID the client got at
// start-up (pg_terminate_backend(conn.PID())) and waits for its own
// connection to break. The pooler gives every client a process ID of its
// own, above Linux's range, so that it can never name someone else's
// backend (README, "rampart pooler").
var needRealPID = map[string]string{
	"github.com/jackc/pgx/v5 TestFatalRxError":                       "pg_terminate_backend(conn.PID())",
	"github.com/jackc/pgx/v5 TestFatalTxError":                       "pg_terminate_backend(conn.PID())",
	"github.com/jackc/pgx/v5/pgconn TestConnCheckConn":               "pg_terminate_backend(c1.PID())",
	"github.com/jackc/pgx/v5/pgconn TestConnPing":                    "pg_terminate_backend(c1.PID())",
	"github.com/jackc/pgx/v5/pgxpool TestPoolAcquireChecksIdleConns": "pg_terminate_backend of the pool's connections' PIDs",
	"github.com/jackc/pgx/v5/stdlib TestCheckIdleConn":               "pg_terminate_backend of the connections' PIDs",
}

// pgx's own test suite through rampart in session mode, beside the same
// suite directly against the same server: every test that passes directly
// passes through the pooler, but those that need the real backend PID
// (issue 17). About five minutes.
func TestPgxSuiteSessionMode(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	pgBin := lab.DefaultConfig().PGBin
	if missing := prerequisites(pgBin); len(missing) > 0 {
		t.Skipf("needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	out := t.TempDir()
	for _, d := range []string{"raw", "logs"} {
		if err := os.Mkdir(filepath.Join(out, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &suite{t: t, set: settings{timeout: 5 * time.Minute}, pgBin: pgBin, out: out, work: workDir(t)}
	s.pg = postgresUser(t)
	s.pgxSource()
	s.startPostgres()
	s.buildRampart()
	direct, session := s.runTarget("direct"), s.runTarget("rampart-session")
	passed := direct.outcomes()
	broken := 0
	for _, r := range session.Tests {
		if r.Outcome != Fail || passed[r.Key()] != Pass {
			continue
		}
		if why, ok := needsRealPID(r.Key()); ok {
			t.Logf("fails through any pooler: %s (%s)", r.Key(), why)
			continue
		}
		broken++
		t.Errorf("passes directly, fails through rampart in session mode: %s: %s", r.Key(), r.Reason)
	}
	d, sc := direct.Counts(), session.Counts()
	t.Logf("pgx's suite: directly %d passed, %d failed; through rampart (session) %d passed, %d failed, %d of them only through rampart and not for the PID",
		d.Passed, d.Failed, sc.Passed, sc.Failed, broken)
}

// needsRealPID says whether key ("package Test/sub") is a test of
// needRealPID or one of its subtests, and why.
func needsRealPID(key string) (string, bool) {
	for k, why := range needRealPID {
		if key == k || strings.HasPrefix(key, k+"/") {
			return why, true
		}
	}
	return "", false
}

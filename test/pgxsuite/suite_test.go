package pgxsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/test/lab"
)

// The measurement of issue 17: these pgx packages, every target, in this
// order.
var (
	pgxPackages = []string{".", "./pgconn", "./pgtype", "./pgtype/zeronull", "./pgxpool", "./stdlib", "./tracelog"}
	allTargets  = []string{"direct", "pgbouncer-session", "rampart-session", "rampart-transaction", "pgbouncer-transaction"}
)

const (
	password = "secret"         // pgx's test roles' (testsetup/postgresql_setup.sql)
	health   = "rampart_health" // rampart's health_check_user, a role of its own
	poolSize = 20               // both poolers' default_pool_size (rampart's default)
)

// settings are the environment's knobs (make pgx-suite sets the first two).
type settings struct {
	out     string   // RAMPART_PGX_SUITE_OUT: results go to a new folder in it
	targets []string // RAMPART_PGX_SUITE_TARGETS: a comma-separated subset of allTargets
	run     string   // RAMPART_PGX_SUITE_RUN: go test -run for pgx's tests
	// RAMPART_PGX_SUITE_TIMEOUT: go test -timeout, per package (5m: the
	// slowest takes about half a minute directly; each hang costs it once)
	timeout  time.Duration
	baseline string // RAMPART_PGX_SUITE_BASELINE: an earlier results.json to compare with
}

func readSettings(t *testing.T) settings {
	s := settings{out: os.Getenv("RAMPART_PGX_SUITE_OUT"), targets: allTargets, run: os.Getenv("RAMPART_PGX_SUITE_RUN"),
		timeout: 5 * time.Minute, baseline: os.Getenv("RAMPART_PGX_SUITE_BASELINE")}
	if s.out == "" {
		s.out = filepath.Join("..", "..", "pgx-suite.out")
	}
	if v := os.Getenv("RAMPART_PGX_SUITE_TARGETS"); v != "" {
		s.targets = nil
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(allTargets, name) {
				t.Fatalf("RAMPART_PGX_SUITE_TARGETS: unknown target %q (known: %s)", name, strings.Join(allTargets, ", "))
			}
			s.targets = append(s.targets, name)
		}
	}
	if v := os.Getenv("RAMPART_PGX_SUITE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("RAMPART_PGX_SUITE_TIMEOUT=%q: use a duration such as 10m", v)
		}
		s.timeout = d
	}
	return s
}

// TestPgxSuite runs pgx's own tests against a PostgreSQL 15 of its own,
// directly, through PgBouncer and through rampart pooler in session and
// transaction mode, and fails while a test passes directly and through
// PgBouncer but not through rampart.
func TestPgxSuite(t *testing.T) {
	if os.Getenv("RAMPART_PGX_SUITE") != "1" {
		t.Skip("runs pgx's whole test suite five times (about 40 minutes): set RAMPART_PGX_SUITE=1, or run make pgx-suite")
	}
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	pgBin := lab.DefaultConfig().PGBin
	if missing := prerequisites(pgBin); len(missing) > 0 {
		t.Skipf("needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	set := readSettings(t)
	started := time.Now()
	out, err := filepath.Abs(filepath.Join(set.out, started.UTC().Format("20060102-150405")))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{out, filepath.Join(out, "raw"), filepath.Join(out, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &suite{t: t, set: set, pgBin: pgBin, out: out, work: workDir(t)}
	s.pg = postgresUser(t)
	version := s.pgxSource()
	s.startPostgres()
	s.buildRampart()

	rep := &Report{Started: started.UTC().Format(time.RFC3339), Versions: s.versions(version),
		Settings: map[string]string{"timeout": set.timeout.String(), "run": set.run, "packages": strings.Join(pgxPackages, " "),
			"default_pool_size": strconv.Itoa(poolSize), "go test": "-json -count=1, one package at a time; after a timeout, again with the tests not settled"}}
	for _, name := range set.targets {
		rep.Runs = append(rep.Runs, s.runTarget(name))
	}
	rep.Compare()

	var sum bytes.Buffer
	rep.Summary(&sum)
	if set.baseline != "" {
		b, err := readReport(set.baseline)
		if err != nil {
			t.Errorf("baseline: %v", err)
		} else {
			Compared(&sum, b, rep)
		}
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"results.json": js, "summary.md": sum.Bytes()} {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("\n%s\nResults: %s (results.json, summary.md, raw/ go test -json streams, logs/); %s in all.\n",
		sum.String(), out, time.Since(started).Round(time.Second))
	if direct, ok := rep.Run("direct"); ok && direct.Counts().Failed > 0 {
		t.Logf("warning: %d tests fail directly: the setup may differ from pgx's CI (see raw/direct.jsonl)", direct.Counts().Failed)
	}
	for _, m := range Modes {
		if n := len(rep.RampartOnly[m.Mode]); n > 0 {
			t.Errorf("%d tests and subtests fail only through rampart in %s mode (listed above, and in %s)", n, m.Mode, filepath.Join(out, "summary.md"))
		}
	}
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// prerequisites names what is missing to run the suite.
func prerequisites(pgBin string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (PostgreSQL and PgBouncer run as postgres)")
	}
	if _, err := user.Lookup("postgres"); err != nil {
		missing = append(missing, "the postgres user")
	}
	for _, bin := range []string{"initdb", "postgres", "psql", "pg_config"} {
		if _, err := os.Stat(filepath.Join(pgBin, bin)); err != nil {
			missing = append(missing, filepath.Join(pgBin, bin))
		}
	}
	for _, bin := range []string{"pgbouncer", "go", "locale"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if share, err := exec.Command(filepath.Join(pgBin, "pg_config"), "--sharedir").Output(); err == nil {
		for _, ext := range []string{"hstore", "ltree"} {
			if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(share)), "extension", ext+".control")); err != nil {
				missing = append(missing, "the "+ext+" extension (PostgreSQL's contrib)")
			}
		}
	}
	return missing
}

// suite is one invocation: the servers it started and where things are.
type suite struct {
	t     *testing.T
	set   settings
	pgBin string
	out   string // this invocation's results folder
	work  string // removed at the end: pgx's source, the cluster, configuration
	pg    *syscall.Credential
	src   string // pgx's source, copied
	port  int    // PostgreSQL's
	sock  string // its Unix socket folder
	bin   string // rampart, built

	postgres *server
	current  atomic.Value // the pgx package running now
}

// workDir is a temporary folder the postgres user can reach (t.TempDir's
// parents are root's alone), removed when the test ends.
func workDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rampart-pgx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func postgresUser(t *testing.T) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// postgresDir makes a folder owned by the postgres user.
func (s *suite) postgresDir(name string) string {
	dir := filepath.Join(s.work, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chown(dir, int(s.pg.Uid), int(s.pg.Gid)); err != nil {
		s.t.Fatal(err)
	}
	return dir
}

// writeFiles writes files into dir, owned by the postgres user when owner
// is set.
func (s *suite) writeFiles(dir string, owner *syscall.Credential, files map[string]string) {
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			s.t.Fatal(err)
		}
		if owner != nil {
			if err := os.Chown(path, int(owner.Uid), int(owner.Gid)); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

// childEnv is this process's environment without what would steer a
// child elsewhere: libpq's PG* variables, pgx's PGX_* ones, systemd's
// notify socket.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// command runs argv to completion (as owner when set) and returns its
// output; a failure ends the test with that output.
func (s *suite) command(owner *syscall.Credential, dir string, stdin io.Reader, argv ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdin, cmd.Env = dir, stdin, childEnv("GOWORK=off", "GOTOOLCHAIN=local")
	if owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// pgxSource copies pgx's source (go.mod's version, from the module cache,
// which is read-only) into the work folder, fetches the modules its tests
// need, and builds its test binaries once so that no target's time
// includes the build. It returns pgx's version.
func (s *suite) pgxSource() string {
	var mod struct{ Version, Dir, Error string }
	// Run here, in rampart's module: go.mod's version.
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/jackc/pgx/v5").Output()
	if jerr := json.Unmarshal(out, &mod); jerr != nil || mod.Error != "" || mod.Dir == "" {
		s.t.Fatalf("go mod download -json github.com/jackc/pgx/v5: %v %v %s", err, jerr, mod.Error)
	}
	s.src = filepath.Join(s.work, "pgx")
	err = filepath.WalkDir(mod.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mod.Dir, path)
		dst := filepath.Join(s.src, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm()|0o200)
	})
	if err != nil {
		s.t.Fatalf("copy pgx's source: %v", err)
	}
	s.command(nil, s.src, nil, "go", "mod", "download")
	s.command(nil, s.src, nil, append([]string{"go", "test", "-count=1", "-run", "^$"}, pgxPackages...)...)
	s.t.Logf("pgx %s: source from %s, built", mod.Version, mod.Dir)
	return mod.Version
}

func (s *suite) versions(pgx string) map[string]string {
	first := func(argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			return "unknown: " + err.Error()
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return map[string]string{
		"pgx": pgx, "postgres": first(filepath.Join(s.pgBin, "postgres"), "--version"), "pgbouncer": first("pgbouncer", "--version"),
		"rampart": first("git", "describe", "--always", "--dirty"), "go": runtime.Version(),
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a daemon this test started, stopped by its PID when the test
// ends or earlier by stop. A pooler that exits on its own is started
// again, as a service manager would, and the exit is recorded: the rest of
// its target still measures something.
type server struct {
	name, log string
	argv      []string
	owner     *syscall.Credential
	sig       syscall.Signal
	restart   bool
	during    func() string // what was running, for the record of an exit

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has exited
	stopping bool
	exits    []string // unexpected exits: when, during what, how, the log's last word
}

// start runs argv (as owner when set) with its output in logs/<name>.log;
// sig stops it (then SIGKILL after 30 s).
func (s *suite) start(name string, owner *syscall.Credential, sig syscall.Signal, restart bool, argv ...string) *server {
	s.t.Helper()
	srv := &server{name: name, log: filepath.Join(s.out, "logs", name+".log"), argv: argv, owner: owner, sig: sig,
		restart: restart, during: func() string { p, _ := s.current.Load().(string); return p }}
	if err := srv.launch(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	s.t.Cleanup(srv.stop)
	return srv
}

func (srv *server) launch() error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.stopping {
		return nil
	}
	logf, err := os.OpenFile(srv.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(srv.argv[0], srv.argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Env = logf, logf, childEnv()
	if srv.owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: srv.owner}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	srv.cmd, srv.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(exited)
		srv.mu.Lock()
		again := !srv.stopping && srv.restart && len(srv.exits) < 5
		if !srv.stopping {
			srv.exits = append(srv.exits, fmt.Sprintf("%s during %s: %v: %s",
				time.Now().UTC().Format("15:04:05"), shortPackage(srv.during()), err, lastWord(srv.log)))
		}
		srv.mu.Unlock()
		if again {
			if err := srv.launch(); err != nil {
				srv.mu.Lock()
				srv.exits = append(srv.exits, "restart: "+err.Error())
				srv.mu.Unlock()
			}
		}
	}()
	return nil
}

// done is closed when the current process has exited.
func (srv *server) done() <-chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.exited
}

// unexpected returns the exits the test did not ask for.
func (srv *server) unexpected() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return slices.Clone(srv.exits)
}

func (srv *server) stop() {
	srv.mu.Lock()
	already := srv.stopping
	srv.stopping = true
	cmd, exited := srv.cmd, srv.exited
	srv.mu.Unlock()
	if already {
		return
	}
	cmd.Process.Signal(srv.sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// lastWord is what a log says last: its last panic or FATAL line (a Go
// panic's stack follows it), or else its last line.
func lastWord(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.Contains(l, " FATAL ") {
			return l
		}
	}
	return lines[len(lines)-1]
}

// await polls check until it holds, the server exits, or a minute passes;
// a failure ends the test with the end of the server's log.
func (s *suite) await(srv *server, what string, check func(ctx context.Context) error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := lab.WaitFor(ctx, what, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-srv.done():
			return false, "", fmt.Errorf("%s exited", srv.name)
		default:
		}
		if err := check(ctx); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		b, _ := os.ReadFile(srv.log)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		s.t.Fatalf("%v\n%s's log (%s) ends:\n%s", err, srv.name, srv.log, b)
	}
}

// query connects with conninfo and runs one query.
func query(ctx context.Context, conninfo, sql string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgconn.Connect(cctx, conninfo)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(cctx, sql).ReadAll()
	return err
}

// locale is the first of pgx's preferences (scripts/devdb.rb) this
// machine has.
func locale() string {
	out, _ := exec.Command("locale", "-a").Output()
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(l))] = true
	}
	for _, l := range []string{"en_US.UTF-8", "C.UTF-8"} {
		if have[strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(l))] {
			return l
		}
	}
	return "C"
}

// startPostgres makes and starts a cluster as pgx's CI does
// (ci/setup_test.bash, scripts/devdb.rb): its pg_hba.conf, listening on
// 127.0.0.1, database pgx_test set up by testsetup/postgresql_setup.sql
// (hstore, ltree, the uint64 domain, the pgx_md5/pgx_pw/pgx_scram/… roles).
// No TLS: the suite's TLS tests stay off, as in pgx's CI.
func (s *suite) startPostgres() {
	data := s.postgresDir("pgdata")
	s.sock = s.postgresDir("run")
	s.port = freePort(s.t)
	s.command(s.pg, s.work, nil, filepath.Join(s.pgBin, "initdb"), "-D", data, "-U", "postgres", "--encoding=UTF8",
		"--locale="+locale(), "--no-sync", "--auth=trust")
	hba, err := os.ReadFile(filepath.Join(s.src, "testsetup", "pg_hba.conf"))
	if err != nil {
		s.t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(data, "postgresql.conf"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.writeFiles(data, s.pg, map[string]string{
		"pg_hba.conf": string(hba) + fmt.Sprintf("host all %s 127.0.0.1/32 scram-sha-256\n", health),
		"postgresql.conf": string(conf) + fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
# A throwaway cluster: no need to survive a crash.
fsync = off
synchronous_commit = off
full_page_writes = off
`, s.port, s.sock),
	})
	srv := s.start("postgres", s.pg, syscall.SIGINT, false, filepath.Join(s.pgBin, "postgres"), "-D", data)
	s.postgres = srv
	admin := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", s.sock, s.port)
	s.await(srv, "PostgreSQL accepts connections", func(ctx context.Context) error { return query(ctx, admin, "SELECT 1") })
	psql := []string{filepath.Join(s.pgBin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-p", strconv.Itoa(s.port), "-U", "postgres"}
	s.command(s.pg, s.work, nil, append(psql, "-d", "postgres", "-c", "CREATE DATABASE pgx_test")...)
	setup, err := os.Open(filepath.Join(s.src, "testsetup", "postgresql_setup.sql"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer setup.Close()
	s.command(s.pg, s.work, setup, append(psql, "-d", "pgx_test", "-f", "-")...)
	s.command(s.pg, s.work, nil, append(psql, "-d", "postgres", "-c",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", health, password))...)
	// postgresql_setup.sql's tricky role keeps a doubled backslash (an
	// identifier does not unescape it), so the aclitem test that looks for
	// it with one would skip, as it does in pgx's CI: create it as meant.
	pgxDB := fmt.Sprintf("host=%s port=%d user=postgres dbname=pgx_test", s.sock, s.port)
	if err := query(context.Background(), pgxDB, `CREATE ROLE " tricky, ' } "" \ test user " SUPERUSER`); err != nil {
		s.t.Fatal(err)
	}
}

func (s *suite) buildRampart() {
	s.bin = filepath.Join(s.work, "rampart")
	s.command(nil, "", nil, "go", "build", "-o", s.bin, "github.com/rampart-ha/rampart/cmd/rampart")
}

// conninfo is a libpq connection string to pgx_test as user at port.
func conninfo(port int, user string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=pgx_test", port, user, password)
}

// pgxEnv is the PGX_TEST_* environment for a target at port: every
// variable of pgx's tests that a TCP listener without TLS can serve.
// Left unset, so their tests skip: PGX_TEST_UNIX_SOCKET_CONN_STRING (the
// poolers here listen on TCP only), PGX_TEST_TLS_CONN_STRING,
// PGX_TEST_SCRAM_PLUS_CONN_STRING, PGX_TEST_TLS_CLIENT_CONN_STRING and
// PGX_SSL_PASSWORD (no TLS; pgx's CI leaves the first two off too),
// PGX_TEST_OAUTH (PostgreSQL 18), PGX_TEST_CRATEDB_CONN_STRING,
// PGX_TEST_LIBPQ_URI_REGRESS (libpq's regression binary).
func pgxEnv(port int) map[string]string {
	md5 := conninfo(port, "pgx_md5")
	return map[string]string{
		"PGX_TEST_DATABASE":                   md5,
		"PGX_TEST_TCP_CONN_STRING":            md5,
		"PGX_TEST_PGBOUNCER_CONN_STRING":      md5,
		"PGX_TEST_MD5_PASSWORD_CONN_STRING":   md5,
		"PGX_TEST_PLAIN_PASSWORD_CONN_STRING": conninfo(port, "pgx_pw"),
		"PGX_TEST_SCRAM_PASSWORD_CONN_STRING": conninfo(port, "pgx_scram") + " channel_binding=disable",
	}
}

// userlist is both poolers' auth_file: the roles pgx's tests log in as,
// with their passwords, so that either can log in to the server as them.
func userlist() string {
	var b strings.Builder
	for _, u := range []string{"pgx_md5", "pgx_pw", "pgx_scram", health} {
		fmt.Fprintf(&b, "%q %q\n", u, password)
	}
	return b.String()
}

// startPgBouncer runs PgBouncer in mode with pgx's own configuration
// (testsetup/pgbouncer.ini) but for its pool size (rampart's) and
// max_prepared_statements (PgBouncer 1.21's; Debian 12 has 1.18).
func (s *suite) startPgBouncer(name, mode string) (int, *server) {
	dir := s.postgresDir(name)
	port := freePort(s.t)
	s.writeFiles(dir, s.pg, map[string]string{
		"userlist.txt": userlist(),
		"pgbouncer.ini": fmt.Sprintf(`[databases]
pgx_test = host=127.0.0.1 port=%d dbname=pgx_test
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = md5
auth_file = %s/userlist.txt
pool_mode = %s
default_pool_size = %d
max_client_conn = 200
server_tls_sslmode = disable
client_tls_sslmode = disable
logfile =
pidfile =
`, s.port, port, dir, mode, poolSize),
	})
	srv := s.start(name, s.pg, syscall.SIGTERM, true, "pgbouncer", filepath.Join(dir, "pgbouncer.ini"))
	s.await(srv, name+" answers", func(ctx context.Context) error { return query(ctx, conninfo(port, "pgx_md5"), "SELECT 1") })
	return port, srv
}

// startRampart runs `rampart pooler run` in mode with one node, this
// cluster, as a new user would configure it (README, "rampart pooler").
func (s *suite) startRampart(name, mode string, poolSize int) (int, *server) {
	dir := filepath.Join(s.work, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	port, httpPort := freePort(s.t), freePort(s.t)
	s.writeFiles(dir, nil, map[string]string{
		"userlist.txt": userlist(),
		"pooler.ini": fmt.Sprintf(`[pooler]
listen_addr = 127.0.0.1
listen_port = %d
auth_file = %s/userlist.txt
health_check_user = %s
pool_mode = %s
default_pool_size = %d
server_tls_sslmode = disable
http_listen = 127.0.0.1:%d
[nodes]
pg = host=127.0.0.1 port=%d
`, port, dir, health, mode, poolSize, httpPort, s.port),
	})
	srv := s.start(name, nil, syscall.SIGTERM, true, s.bin, "pooler", "run", "--config", filepath.Join(dir, "pooler.ini"))
	// /health answers 200 once the health check has seen the primary:
	// before that, writes would wait for one.
	s.await(srv, name+" sees the primary", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/health", httpPort), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/health: %s", resp.Status)
		}
		return query(ctx, conninfo(port, "pgx_md5"), "SELECT 1")
	})
	return port, srv
}

// runTarget starts the target's pooler, runs pgx's packages against it
// one after another, stops the pooler, and returns what came of each test.
func (s *suite) runTarget(name string) Run {
	t := s.t
	port := s.port
	var srv *server
	switch {
	case strings.HasPrefix(name, "pgbouncer-"):
		port, srv = s.startPgBouncer(name, strings.TrimPrefix(name, "pgbouncer-"))
	case strings.HasPrefix(name, "rampart-"):
		port, srv = s.startRampart(name, strings.TrimPrefix(name, "rampart-"), poolSize)
	}
	if srv != nil {
		defer srv.stop() // the next target starts with no server connections left over
	}
	env := pgxEnv(port)
	// Every round of every package, as go test wrote it.
	raw, err := os.Create(filepath.Join(s.out, "raw", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	r := Run{Target: name, Env: env}
	begin := time.Now()
	for _, pkg := range pgxPackages {
		p, tests := s.runPackage(name, pkg, env, raw)
		r.Packages = append(r.Packages, p)
		r.Tests = append(r.Tests, tests...)
	}
	r.ElapsedSeconds = time.Since(begin).Seconds()
	if srv != nil {
		r.PoolerExits = srv.unexpected()
		for _, e := range r.PoolerExits {
			t.Logf("%s exited unexpectedly (restarted): %s", name, e)
		}
	}
	select {
	case <-s.postgres.done():
		t.Fatalf("%s: PostgreSQL exited during the run: %s (%s)", name, lastWord(s.postgres.log), s.postgres.log)
	default:
	}
	c := r.Counts()
	t.Logf("%s: %d passed, %d failed, %d skipped in %s", name, c.Passed, c.Failed, c.Skipped, time.Since(begin).Round(time.Second))
	return r
}

// maxRounds bounds how often a package runs again after a timeout.
const maxRounds = 10

// runPackage runs one pgx package against a target. When its -timeout
// ends it, it runs again with only the tests that had not settled (see
// Settled): a test that hung counts as failed, and neither it nor the
// tests done before cost the tests after it their run.
func (s *suite) runPackage(target, pkg string, env map[string]string, raw io.Writer) (PackageResult, []TestResult) {
	t := s.t
	extra := []string{"GOWORK=off", "GOTOOLCHAIN=local"}
	for k, v := range env {
		extra = append(extra, k+"="+v)
	}
	least := s.set.timeout / 2
	var rounds []Round
	var skip []string
	for len(rounds) < maxRounds {
		args := []string{"test", "-json", "-count=1", "-timeout", s.set.timeout.String()}
		if s.set.run != "" {
			args = append(args, "-run", s.set.run)
		}
		if len(skip) > 0 {
			args = append(args, "-skip", SkipPattern(skip))
		}
		args = append(args, pkg)
		// -timeout ends a hanging test binary; this, a hanging go command.
		ctx, cancel := context.WithTimeout(context.Background(), s.set.timeout+10*time.Minute)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = s.src, childEnv(extra...)
		// Its own process group, so that a stop reaches the test binary too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, raw, &progress{t: t, target: target, current: &s.current}), &stderr
		err := cmd.Run()
		cancel()
		if _, exit := err.(*exec.ExitError); err != nil && !exit {
			t.Fatalf("%s: go %s: %v\n%s", target, strings.Join(args, " "), err, stderr.String())
		}
		pkgs, tests, err := Parse(&out)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if len(pkgs) != 1 {
			t.Fatalf("%s: go %s reported %d packages\n%s", target, strings.Join(args, " "), len(pkgs), stderr.String())
		}
		rounds = append(rounds, Round{Package: pkgs[0], Tests: tests})
		settled := Settled(tests, least)
		if pkgs[0].Outcome != "timeout" || len(settled) == 0 {
			break
		}
		hung := "none hung"
		if h := Hung(tests, least); len(h) > 0 {
			hung = "hung: " + strings.Join(h, ", ")
		}
		t.Logf("%s: %s timed out after %s (%s): again with the tests not settled yet", target, shortPackage(pkgs[0].Package), s.set.timeout, hung)
		skip = append(skip, settled...)
	}
	return Merge(rounds, least)
}

// progress logs each package's end as go test -json reports it.
type progress struct {
	t       *testing.T
	target  string
	current *atomic.Value // set to the package that starts
	buf     []byte
}

func (p *progress) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		var e event
		if json.Unmarshal(p.buf[:i], &e) == nil && e.Test == "" && e.Package != "" {
			switch e.Action {
			case "start":
				p.current.Store(e.Package)
			case "pass", "fail", "skip":
				p.t.Logf("%s: %s %s (%.0fs)", p.target, shortPackage(e.Package), e.Action, e.Elapsed)
			}
		}
		p.buf = p.buf[i+1:]
	}
}

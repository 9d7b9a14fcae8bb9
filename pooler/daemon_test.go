package pooler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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

// The daemon as users run it, `rampart pooler run`, in a lab's client host
// in front of its three nodes: what only a whole process shows (its
// descriptors, its resident memory) under load a test can count.
func TestDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a lab: skipped with -short")
	}
	c := lab.DefaultConfig()
	c.ID = "pld"
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	l, err := lab.Up(upCtx, c, log)
	t.Cleanup(func() {
		if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rampart-ha/rampart/cmd/rampart").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dl := &daemonLab{l: l, bin: bin, dir: dir}
	t.Run("descriptor limit", func(t *testing.T) { testDescriptorLimit(t, dl) })
	t.Run("soak", func(t *testing.T) { testSoak(t, dl) })
}

type daemonLab struct {
	l        *lab.Lab
	bin, dir string
}

// poolerProc is one `rampart pooler run` in the client host.
type poolerProc struct {
	cmd    *exec.Cmd
	pid    int // the pooler's, seen from here (nsenter forks it)
	port   int
	log    string
	exited chan struct{}
}

// start runs the pooler on port with the lab's nodes and extra lines in
// [pooler]; nofile > 0 limits its descriptors (soft and hard: Go raises
// the soft limit to the hard one by itself).
func (dl *daemonLab) start(t *testing.T, port, nofile int, extra string) *poolerProc {
	t.Helper()
	dir := filepath.Join(dl.dir, strconv.Itoa(port))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var nodes strings.Builder
	for _, h := range dl.l.Hosts() {
		if h.Role == lab.RoleDatabase {
			fmt.Fprintf(&nodes, "%s = host=%s\n", h.Name, h.Addr)
		}
	}
	files := map[string]string{
		"userlist.txt": fmt.Sprintf("%q %q\n", lab.AppUser, dl.l.Password(lab.AppUser)),
		"pooler.ini": fmt.Sprintf(`[pooler]
listen_addr = 127.0.0.1
listen_port = %d
auth_file = %s/userlist.txt
health_check_user = %s
health_check_dbname = %s
pool_mode = transaction
default_pool_size = 4
server_tls_sslmode = disable
health_check_period = 200ms
%s
[nodes]
%s`, port, dir, lab.AppUser, lab.AppDatabase, extra, nodes.String()),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	argv := []string{dl.bin, "pooler", "run", "--config", filepath.Join(dir, "pooler.ini")}
	if nofile > 0 {
		argv = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--"}, argv...)
	}
	cmd, err := dl.l.Exec(context.Background(), "client", argv...)
	if err != nil {
		t.Fatal(err)
	}
	d := &poolerProc{cmd: cmd, port: port, log: filepath.Join(dir, "pooler.log"), exited: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); logf.Close(); close(d.exited) }()
	t.Cleanup(func() {
		if d.pid > 0 {
			syscall.Kill(d.pid, syscall.SIGTERM)
		}
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-d.exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// nsenter forks the command (a new PID namespace): the pooler is its
	// only child.
	if err := lab.WaitFor(ctx, "the pooler answers", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-d.exited:
			return false, "", fmt.Errorf("the pooler exited: %s", tail(d.log))
		default:
		}
		if d.pid == 0 {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			d.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		c, err := dl.connect(ctx, port)
		if err != nil {
			return false, err.Error(), nil
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS daemon_probe (v text); INSERT INTO daemon_probe VALUES ('pooler up')").ReadAll(); err != nil {
			return false, err.Error(), nil
		}
		return d.pid > 0, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

func (dl *daemonLab) connect(ctx context.Context, port int) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		port, lab.AppUser, dl.l.Password(lab.AppUser), lab.AppDatabase))
	if err != nil {
		return nil, err
	}
	if cfg.DialFunc, err = dl.l.Dialer("client"); err != nil {
		return nil, err
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// usage is the process's resident memory and open descriptors.
type usage struct {
	rssKB, fds int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %.1f MB, %d descriptors", float64(u.rssKB)/1024, u.fds)
}

func (d *poolerProc) usage(t *testing.T) usage {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if err != nil {
		t.Fatalf("the pooler (PID %d): %v; its log: %s", d.pid, err, tail(d.log))
	}
	var u usage
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid))
	if err != nil {
		t.Fatal(err)
	}
	u.fds = len(fds)
	return u
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// hold opens n connections at once, each running one query, and returns
// those that got in and the errors of the others.
func (dl *daemonLab) hold(ctx context.Context, port, n int) ([]*pgconn.PgConn, []error) {
	var (
		mu    sync.Mutex
		conns []*pgconn.PgConn
		errs  []error
		wg    sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			c, err := dl.connect(ctx, port)
			if err == nil {
				if _, err = c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
					c.Close(ctx)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				conns = append(conns, c)
			}
		})
	}
	wg.Wait()
	return conns, errs
}

func closeAll(conns []*pgconn.PgConn) {
	for _, c := range conns {
		c.Close(context.Background())
	}
}

// Running out of descriptors does not stop the pooler (issue 18: Serve
// returned on EMFILE and the daemon exited, at 28 clients under a limit of
// 64): with 64 descriptors and 80 clients at once, some are refused or
// time out, and once they leave the pooler serves again, reads and writes.
func testDescriptorLimit(t *testing.T, dl *daemonLab) {
	d := dl.start(t, 6440, 64, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	held, errs := dl.hold(ctx, d.port, 80)
	t.Logf("80 clients at once under 64 descriptors: %d in, %d not (%s)", len(held), len(errs), firstError(errs))
	if len(errs) == 0 {
		t.Errorf("all 80 clients got in under a limit of 64 descriptors: the limit was never hit")
	}
	if !strings.Contains(tail(d.log), "cannot accept clients now") {
		t.Errorf("the pooler's log does not say it ran out of descriptors:\n%s", tail(d.log))
	}
	closeAll(held)
	select {
	case <-d.exited:
		t.Fatalf("the pooler exited when it ran out of descriptors: %s", tail(d.log))
	default:
	}
	if err := lab.WaitFor(ctx, "the pooler serves again", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-d.exited:
			return false, "", fmt.Errorf("the pooler exited: %s", tail(d.log))
		default:
		}
		c, err := dl.connect(ctx, d.port)
		if err != nil {
			return false, err.Error(), nil
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "INSERT INTO daemon_probe VALUES ('after EMFILE'); SELECT 1").ReadAll(); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	}); err != nil {
		t.Fatal(err)
	}
}

func firstError(errs []error) string {
	if len(errs) == 0 {
		return "no error"
	}
	return errs[0].Error()
}

// A soak (issue 18): 10 000 short connections, then 1 000 idle ones at
// once, against one pooler; its resident memory and descriptors before,
// during and after. Nothing may stay behind: once the clients leave, the
// descriptors are what they were (the listener, health checks, the pools'
// server connections) and memory is bounded.
func testSoak(t *testing.T, dl *daemonLab) {
	d := dl.start(t, 6442, 0, "max_client_conn = 2000")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	short := func(n, workers int) (failed int64, first error) {
		var (
			next, bad atomic.Int64
			once      sync.Once
			wg        sync.WaitGroup
		)
		for range workers {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					c, err := dl.connect(ctx, d.port)
					if err == nil {
						_, err = c.Exec(ctx, "SELECT 1").ReadAll()
						c.Close(ctx)
					}
					if err != nil {
						bad.Add(1)
						once.Do(func() { first = err })
					}
				}
			})
		}
		wg.Wait()
		return bad.Load(), first
	}
	// Warm up: the pools hold their server connections from here on.
	if bad, err := short(200, 8); bad > 0 {
		t.Fatalf("warm-up: %d of 200 short connections failed: %v", bad, err)
	}
	before := d.usage(t)
	start := time.Now()
	if bad, err := short(10_000, 16); bad > 0 {
		t.Errorf("%d of 10 000 short connections failed: %v", bad, err)
	}
	took := time.Since(start)
	afterShort := d.usage(t)
	held, errs := dl.hold(ctx, d.port, 1000)
	during := d.usage(t)
	if len(errs) > 0 {
		t.Errorf("%d of 1 000 idle connections failed: %v", len(errs), errs[0])
	}
	// Each idle client holds one descriptor in the pooler; the base is
	// the lower of the two counts before, as a health check's connection
	// may come and go between them.
	if base := min(before.fds, afterShort.fds); during.fds < base+len(held) {
		t.Errorf("with %d clients connected the pooler has %d descriptors (before: %d): they are not all there", len(held), during.fds, base)
	}
	closeAll(held)
	// Back to what it had, but for server connections the pools may have
	// opened meanwhile (default_pool_size 4 for each of 3 nodes).
	const poolsMayGrow = 4 * 3
	var after usage
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := lab.WaitFor(wctx, fmt.Sprintf("the pooler's descriptors back to at most %d", before.fds+poolsMayGrow), 200*time.Millisecond, func(context.Context) (bool, string, error) {
		after = d.usage(t)
		return after.fds <= before.fds+poolsMayGrow, after.String(), nil
	}); err != nil {
		t.Error(err)
	}
	// Still serving, and the memory of 1 000 sessions is not kept: the
	// bound is generous for a Go heap that returns pages lazily.
	if c, err := dl.connect(ctx, d.port); err != nil {
		t.Errorf("after the soak: %v", err)
	} else {
		c.Close(ctx)
	}
	if after.rssKB > 256<<10 {
		t.Errorf("after the soak the pooler holds %s, want under 256 MB", after)
	}
	t.Logf("soak, rampart pooler run (transaction mode, default_pool_size 4, 3 nodes):\n"+
		"  before:                        %s\n"+
		"  after 10 000 short (%5.1f s):  %s\n"+
		"  1 000 idle connected:          %s\n"+
		"  after they left:               %s", before, took.Seconds(), afterShort, during, after)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("the soak ran out of time")
	}
}

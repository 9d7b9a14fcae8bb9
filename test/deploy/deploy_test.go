package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/lab"
)

// TestMain is also the program the site's BMCs run for a power request
// (lab.ChassisClient): this test binary, with the site's socket in the
// environment.
func TestMain(m *testing.M) {
	if sock := os.Getenv(lab.ChassisSocketEnv); sock != "" {
		os.Exit(lab.ChassisClient(sock, os.Args[1:], os.Stdout))
	}
	os.Exit(m.Run())
}

// The guide's hosts and addresses (docs/deploy.md, "The hosts").
const (
	dbVIP      = "10.0.0.10"
	poolerVIP  = "10.0.0.100"
	pgdataTmpl = "/var/lib/postgresql/%d/main"
)

var poolerStatus = []string{"--pooler", "http://10.0.0.21:9187", "--pooler", "http://10.0.0.22:9187"}

// poolerConsoles are the guide's poolers' consoles, as "Day two" names
// them for rampart switchover.
var poolerConsoles = []string{"--pooler", "postgres://rampart_admin@10.0.0.21:6432/rampart", "--pooler", "postgres://rampart_admin@10.0.0.22:6432/rampart"}

var dbHosts = []string{"db1", "db2", "db3"}

// deployment is the site with the guide done on it.
type deployment struct {
	t       *testing.T
	site    *lab.Site
	release lab.Release
	app     string // the app role's password, from the guide's userlist
}

func TestDeployGuide(t *testing.T) {
	release := requireSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	deb := buildDeb(t, repoDir(), t.TempDir())
	d := startSite(t, ctx, release)
	d.prepare(ctx, deb)
	d.deploy(ctx, guideSteps(t, "docs/deploy.md", nil))
	d.failovers(ctx)
}

// requireSite skips a test that cannot boot a site here, and returns the
// release to boot (RAMPART_DEPLOY_RELEASE, debian13 by default).
func requireSite(t *testing.T) lab.Release {
	t.Helper()
	if testing.Short() {
		t.Skip("boots five hosts and builds a cluster on them (minutes)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, systemd-nspawn")
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "ipmi_sim"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps)", tool)
		}
	}
	name := os.Getenv("RAMPART_DEPLOY_RELEASE")
	if name == "" {
		name = "debian13"
	}
	release, err := lab.ReleaseNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	return release
}

// startSite boots the guide's five hosts of release; they go at the
// test's end.
func startSite(t *testing.T, ctx context.Context, release lab.Release) *deployment {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "chassis.sock")
	cfg := lab.SiteConfig{
		ID: "deploy", Dir: filepath.Join(dir, "site"), Cache: "/var/cache/rampart/roots", Release: release,
		Hosts: lab.GuideHosts(), Client: lab.GuideClient,
		Chassis: fmt.Sprintf("%s=%s %s", lab.ChassisSocketEnv, sock, self),
	}
	// One crashed run's leftovers must not stop this one.
	if err := lab.CleanSite(ctx, cfg.ID); err != nil {
		t.Fatal(err)
	}
	site, err := lab.StartSite(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			saveJournals(t, site)
		}
		if err := site.Close(context.Background()); err != nil {
			t.Errorf("close the site: %v", err)
		}
	})
	if err := site.Serve(ctx, sock); err != nil {
		t.Fatal(err)
	}
	return &deployment{t: t, site: site, release: release}
}

// guideSteps parses the guide at path in the repository: as it is in the
// work tree (text nil), or text (the guide of an earlier version).
func guideSteps(t *testing.T, path string, text []byte) []lab.Step {
	t.Helper()
	if text == nil {
		var err error
		if text, err = os.ReadFile(filepath.Join(repoDir(), path)); err != nil {
			t.Fatal(err)
		}
	}
	steps, err := lab.ParseGuide(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// deploy runs the guide's steps, adapted to the site's release.
func (d *deployment) deploy(ctx context.Context, steps []lab.Step) {
	start := time.Now()
	for _, s := range lab.ForRelease(steps, d.release.PostgreSQL) {
		d.do(ctx, s)
	}
	d.t.Logf("%s: the guide's %d steps done in %s", d.release.Name, len(steps), time.Since(start).Round(time.Second))
	d.app = d.appPassword(ctx)
}

// prepare makes each host what the guide starts from.
func (d *deployment) prepare(ctx context.Context, deb string) {
	if err := d.site.PrepareForGuide(ctx, deb); err != nil {
		d.t.Fatal(err)
	}
}

// do runs one step of the guide.
func (d *deployment) do(ctx context.Context, s lab.Step) {
	d.t.Helper()
	start := time.Now()
	out, err := d.site.RunStep(ctx, s)
	if err != nil {
		d.t.Fatalf("%v\n%s\n--- the step:\n%s", err, out, s.Script)
	}
	d.t.Logf("guide %s: ok (%s)\n%s", s, time.Since(start).Round(100*time.Millisecond), tail(out, 12))
}

func asRoot(argv ...string) []string { return lab.RootLogin(argv...) }

func (d *deployment) write(ctx context.Context, host, path, owner, mode string, content []byte) {
	d.t.Helper()
	if err := d.site.WriteFile(ctx, host, path, owner, mode, content); err != nil {
		d.t.Fatal(err)
	}
}

// in runs argv on host and returns its output; it must succeed.
func (d *deployment) in(ctx context.Context, host string, argv ...string) string {
	d.t.Helper()
	out, err := d.site.Host(host).Output(ctx, argv...)
	if err != nil {
		d.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

var appLine = regexp.MustCompile(`(?m)^"app" "([^"]+)"$`)

func (d *deployment) appPassword(ctx context.Context) string {
	m := appLine.FindStringSubmatch(d.in(ctx, "pooler1", "cat", "/etc/rampart/userlist.txt"))
	if m == nil {
		d.t.Fatal("no app line in pooler1's userlist.txt")
	}
	return m[1]
}

func (d *deployment) conn(ctx context.Context, addr string, port int) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=app dbname=app connect_timeout=3", addr, port))
	if err != nil {
		return nil, err
	}
	cfg.Password = d.app
	cfg.DialFunc = d.site.Dialer()
	return pgx.ConnectConfig(ctx, cfg)
}

// clusterView is what `rampart status --json` says of the nodes.
type clusterView struct {
	Nodes []struct {
		Name, Role, State string
	} `json:"nodes"`
}

// status runs `rampart status --json` with both poolers on host: the
// primary and the synchronous standby, and an error unless it exits 0
// (no problem).
func (d *deployment) status(ctx context.Context, host string) (primary, sync string, err error) {
	out, err := d.site.Host(host).Output(ctx, asRoot(append([]string{"rampart", "status", "--json"}, poolerStatus...)...)...)
	var v clusterView
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil {
		return "", "", fmt.Errorf("rampart status --json on %s: %v; %w", host, jerr, err)
	}
	for _, n := range v.Nodes {
		switch {
		case n.Role == "primary":
			primary = n.Name
		case n.State == "sync":
			sync = n.Name
		}
	}
	if err != nil {
		return primary, sync, fmt.Errorf("%w\n%s", err, tail(out, 40))
	}
	return primary, sync, nil
}

// writable says whether the database VIP leads to a primary.
func (d *deployment) writable(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.conn(qctx, dbVIP, 5432)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var standby bool
	if err := c.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return err
	}
	if standby {
		return fmt.Errorf("the database VIP leads to a standby")
	}
	return nil
}

// waitHealthy waits until `rampart status` with both poolers exits 0 on a
// database host that runs and the database VIP leads to a primary; it
// returns the primary and the synchronous standby.
func (d *deployment) waitHealthy(ctx context.Context, why string) (primary, sync string) {
	d.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	err := lab.WaitFor(wctx, "rampart status exit 0 "+why, 2*time.Second, func(ctx context.Context) (bool, string, error) {
		for _, h := range dbHosts {
			if !d.site.Running(h) {
				continue
			}
			p, s, err := d.status(ctx, h)
			if err != nil {
				return false, err.Error(), nil
			}
			if err := d.writable(ctx); err != nil {
				return false, err.Error(), nil
			}
			primary, sync = p, s
			return true, "", nil
		}
		return false, "no database host runs", nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return primary, sync
}

// killPostmaster kills host's postmaster with SIGKILL.
func (d *deployment) killPostmaster(ctx context.Context, host string) {
	d.t.Helper()
	pidfile := fmt.Sprintf(pgdataTmpl, d.release.PostgreSQL) + "/postmaster.pid"
	d.in(ctx, host, "sh", "-c", `kill -KILL "$(head -1 "$1")"`, "sh", pidfile)
}

// poolerLeader is the pooler host that holds the pooler VIP.
func (d *deployment) poolerLeader(ctx context.Context) string {
	for _, h := range []string{"pooler1", "pooler2"} {
		if !d.site.Running(h) {
			continue
		}
		if out, _ := d.site.Host(h).Output(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, " "+poolerVIP+"/") {
			return h
		}
	}
	return ""
}

// startWriter starts a write load through the pooler pair's address
// that records every acknowledged commit.
func (d *deployment) startWriter(ctx context.Context) *lab.Writer {
	d.t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=6432 user=app dbname=app connect_timeout=2", poolerVIP))
	if err != nil {
		d.t.Fatal(err)
	}
	cfg.Password = d.app
	cfg.DialFunc = d.site.Dialer()
	w := lab.NewWriterConfig(cfg, 20*time.Millisecond)
	// A client waits as long as a switchover's hold may last (the default
	// --hold-timeout): a pause is not an error.
	w.Timeout = 10 * time.Second
	if err := w.Start(ctx); err != nil {
		d.t.Fatal(err)
	}
	return w
}

// waitCommits waits until w has 20 commits acknowledged after after.
func (d *deployment) waitCommits(ctx context.Context, w *lab.Writer, after time.Time, what string) {
	d.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := lab.WaitFor(wctx, "commits through the pooler VIP "+what, 100*time.Millisecond, func(context.Context) (bool, string, error) {
		n, _ := w.AckedSince(after, "")
		return n >= 20, fmt.Sprintf("%d commits, %d errors", n, w.Errors()), nil
	}); err != nil {
		d.t.Fatal(err)
	}
}

// checkNothingLost stops w and fails the test for every acknowledged
// commit the cluster does not have.
func (d *deployment) checkNothingLost(ctx context.Context, w *lab.Writer) {
	d.t.Helper()
	w.Stop()
	lost, err := w.Missing(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("%s: %d commits acknowledged, %d lost, %d client errors", d.release.Name, len(w.IDs()), len(lost), w.Errors())
	if len(lost) > 0 {
		d.t.Errorf("%s: %d acknowledged commits lost: %v", d.release.Name, len(lost), lost[:min(len(lost), 20)])
	}
}

// failovers breaks the deployed cluster one way after another under a
// write load through the pooler pair: each fault must end, by itself, in
// a healthy cluster, and no acknowledged commit may be lost.
func (d *deployment) failovers(ctx context.Context) {
	t := d.t
	primary, sync := d.waitHealthy(ctx, "after the guide")
	w := d.startWriter(ctx)
	defer w.Stop()
	waitCommits := func(after time.Time, what string) { d.waitCommits(ctx, w, after, what) }
	waitCommits(time.Now(), "before the faults")
	type figure struct {
		fault, from, to string
		stall           time.Duration
		healthy         time.Duration
	}
	var figures []figure
	record := func(fault, from string, at time.Time) {
		t.Helper()
		waitCommits(at, "after: "+fault)
		p, s := d.waitHealthy(ctx, "after: "+fault)
		f := figure{fault: fault, from: from, to: p, stall: w.LongestStall(at, time.Now()), healthy: time.Since(at)}
		figures = append(figures, f)
		t.Logf("%s: %s on %s: primary now %s; no commit through the poolers for %.1f s at most, rampart status exit 0 after %.0f s (%d client errors so far)",
			d.release.Name, fault, from, p, f.stall.Seconds(), f.healthy.Seconds(), w.Errors())
		primary, sync = p, s
	}

	// 0. Not a fault: a planned switchover as "Day two" says, the poolers
	// holding; the clients see a pause, not an error.
	errs, at := w.Errors(), time.Now()
	d.in(ctx, primary, asRoot(append([]string{"rampart", "switchover", "--to", sync}, poolerConsoles...)...)...)
	record("planned switchover, poolers holding", primary, at)
	if n := w.Errors() - errs; n != 0 {
		t.Errorf("%d client errors through the pooler pair during the planned switchover; want none", n)
	}

	// 1. PostgreSQL's postmaster on the primary killed.
	at = time.Now()
	d.killPostmaster(ctx, primary)
	record("killed primary postmaster", primary, at)

	// 2. The primary's host crashes: fenced through its BMC (reboot), a
	// standby promoted, the old primary rewound when its host is back.
	at = time.Now()
	if err := d.site.Crash(ctx, primary); err != nil {
		t.Fatal(err)
	}
	record("crashed primary host", primary, at)

	// 3. The primary's host hangs: every process stopped.
	at = time.Now()
	if err := d.site.Freeze(ctx, primary); err != nil {
		t.Fatal(err)
	}
	record("frozen primary host", primary, at)

	// 4. The synchronous standby's postmaster killed.
	if sync == "" {
		t.Fatal("no synchronous standby to kill")
	}
	at = time.Now()
	d.killPostmaster(ctx, sync)
	record("killed synchronous standby postmaster", sync, at)

	// 5. The leading pooler's host crashes; the other takes the VIP.
	leader := d.poolerLeader(ctx)
	if leader == "" {
		t.Fatal("no pooler holds " + poolerVIP)
	}
	at = time.Now()
	if err := d.site.Crash(ctx, leader); err != nil {
		t.Fatal(err)
	}
	waitCommits(at, "after the pooler leader crashed")
	if now := d.poolerLeader(ctx); now == "" || now == leader {
		t.Fatalf("after %s crashed, the pooler VIP is on %q", leader, now)
	}
	if err := d.site.Boot(ctx, leader); err != nil {
		t.Fatal(err)
	}
	record("crashed pooler leader (booted again)", leader, at)

	var table strings.Builder
	fmt.Fprintf(&table, "%-38s %-8s %-8s %14s %9s\n", "fault", "on", "primary", "longest stall", "healthy")
	for _, f := range figures {
		fmt.Fprintf(&table, "%-38s %-8s %-8s %13.1fs %8.0fs\n", f.fault, f.from, f.to, f.stall.Seconds(), f.healthy.Seconds())
	}
	t.Logf("%s (PostgreSQL %d, Pacemaker %s), through the pooler pair:\n%s", d.release.Name, d.release.PostgreSQL, d.release.Pacemaker, table.String())
	d.checkNothingLost(ctx, w)
}

// repoDir is the repository's top folder.
func repoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildDeb builds the .deb of the tree in repo with its scripts/packages,
// into dist.
func buildDeb(t *testing.T, repo, dist string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo, "scripts", "packages"), dist)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/packages in %s: %v\n%s", repo, err, tail(string(out), 30))
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("scripts/packages made %v; want one .deb", debs)
	}
	return debs[0]
}

// saveJournals logs what each host's journal says of the cluster, for a
// failed run.
func saveJournals(t *testing.T, site *lab.Site) {
	for _, h := range lab.GuideHosts() {
		if !site.Running(h.Name) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := site.Host(h.Name).Output(ctx, "journalctl", "--no-pager", "-n", "80", "-u", "pacemaker", "-u", "corosync", "-u", "rampart-pooler", "-u", "rampart-witness")
		cancel()
		t.Logf("--- journal of %s:\n%s", h.Name, out)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

package packages

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// Where the packages put things; the agents' links come from the binary.
const (
	binary  = "/usr/bin/rampart"
	repoDir = "../.."
)

var (
	units   = []string{"rampart-pooler.service", "rampart-witness.service", "rampart-vip.service"}
	configs = []string{"/etc/rampart/pooler.ini", "/etc/rampart/vip.env", "/etc/rampart/witness.ini"}
	pages   = []string{"/usr/share/man/man1/rampart.1.gz", "/usr/share/man/man7/ocf_rampart_pgsql.7.gz",
		"/usr/share/man/man7/ocf_rampart_vip.7.gz", "/usr/share/man/man8/fence_rampart_ipmi.8.gz"}
)

// run runs argv with env added, and returns its combined output; it fails
// the test when the command fails.
func run(t *testing.T, env []string, argv ...string) string {
	t.Helper()
	out, err := output(env, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

func output(env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func requireTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("packages: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("packages: needs root (it installs the .deb on this machine)")
	}
	var missing []string
	for _, tool := range []string{"go", "gcc", "dpkg", "apt-get", "lintian", "rpm", "rpmkeys", "rpmlint", "cpio", "gpg",
		"crm", "stonith_admin", "systemd-analyze", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("packages: needs %s (make deps installs them)", strings.Join(missing, ", "))
	}
	if out, _ := output(nil, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "rampart"); strings.HasPrefix(out, "i") || strings.HasPrefix(out, "r") {
		t.Skip("packages: the rampart package is installed on this machine already; the test installs and purges its own")
	}
}

// signingKey makes a throw-away GPG key, as a release would use the
// project's: the .rpm is checked signed, and rpmlint wants a signature.
// It returns the armored private key's file and the public key's.
func signingKey(t *testing.T) (private, public string) {
	home := t.TempDir()
	params := filepath.Join(home, "params")
	if err := os.WriteFile(params, []byte("%no-protection\nKey-Type: RSA\nKey-Length: 3072\nKey-Usage: sign\n"+
		"Name-Real: rampart package test\nName-Email: test@rampart-ha.invalid\nExpire-Date: 1d\n%commit\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"GNUPGHOME=" + home}
	run(t, env, "gpg", "--batch", "--gen-key", params)
	private, public = filepath.Join(home, "private.asc"), filepath.Join(home, "public.asc")
	for file, arg := range map[string]string{private: "--export-secret-keys", public: "--export"} {
		key := run(t, env, "gpg", "--batch", "--armor", arg, "test@rampart-ha.invalid")
		if err := os.WriteFile(file, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return private, public
}

func TestPackages(t *testing.T) {
	requireTools(t)
	dist := t.TempDir()
	private, public := signingKey(t)
	run(t, []string{"RAMPART_SIGNING_KEY=" + private}, filepath.Join(repoDir, "scripts/packages"), dist)
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("scripts/packages made %v and %v; want one .deb and one .rpm", debs, rpms)
	}
	deb, rpmFile := debs[0], rpms[0]
	links := agentLinks(t, filepath.Join(dist, "stage", "rampart"))

	t.Run("deb contents", func(t *testing.T) {
		listing := run(t, nil, "dpkg-deb", "--contents", deb)
		got := map[string]string{}
		for _, line := range strings.Split(listing, "\n") {
			// lrwxrwxrwx root/root 0 2026-11-26 11:12 ./usr/sbin/fence_rampart_ipmi -> ../bin/rampart
			if f := strings.Fields(line); len(f) == 8 && strings.HasPrefix(f[0], "l") {
				got[strings.TrimPrefix(f[5], ".")] = f[7]
			}
		}
		checkLinks(t, "the .deb", got, links)
		for _, p := range append(append([]string{binary, "/usr/share/doc/rampart/copyright", "/usr/lib/sysusers.d/rampart.conf"}, configs...), pages...) {
			if !strings.Contains(listing, " ."+p+"\n") {
				t.Errorf("the .deb lacks %s", p)
			}
		}
		for _, u := range units {
			if !strings.Contains(listing, " ./lib/systemd/system/"+u+"\n") {
				t.Errorf("the .deb lacks /lib/systemd/system/%s", u)
			}
		}
		conffiles := run(t, nil, "dpkg-deb", "--info", deb, "conffiles")
		if got := strings.Fields(conffiles); !slices.Equal(got, configs) {
			t.Errorf("conffiles %v; want %v", got, configs)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		out, _ := output(nil, "lintian", "--tag-display-limit", "0", deb)
		t.Logf("lintian:\n%s", out)
		if errs := tagged(out, "E: "); len(errs) > 0 {
			t.Errorf("lintian errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("rpm", func(t *testing.T) {
		home := t.TempDir()
		// A keyring of our own: the machine's rpm database stays untouched.
		if err := os.WriteFile(filepath.Join(home, ".rpmmacros"), []byte("%_dbpath "+filepath.Join(home, "rpmdb")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"HOME=" + home}
		run(t, env, "rpmkeys", "--import", public)
		if out := run(t, env, "rpm", "-K", rpmFile); !strings.Contains(out, "digests signatures OK") {
			t.Errorf("rpm -K: %s; want digests and signature OK", out)
		}
		files := strings.Fields(run(t, env, "rpm", "-qpl", rpmFile))
		for _, p := range append(append([]string{binary, "/usr/lib/sysusers.d/rampart.conf"}, configs...), pages...) {
			if !slices.Contains(files, p) {
				t.Errorf("the .rpm lacks %s", p)
			}
		}
		for _, u := range units {
			// The RHEL family's unit folder, and Pacemaker's paths are the same there.
			if !slices.Contains(files, "/usr/lib/systemd/system/"+u) {
				t.Errorf("the .rpm lacks /usr/lib/systemd/system/%s", u)
			}
		}
		got := map[string]string{}
		for _, line := range strings.Split(run(t, env, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILELINKTOS}\n]", rpmFile), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				got[f[0]] = f[1]
			}
		}
		checkLinks(t, "the .rpm", got, links)
		if got := strings.Fields(run(t, env, "rpm", "-qpc", rpmFile)); !slices.Equal(got, configs) {
			t.Errorf("rpm config files %v; want %v", got, configs)
		}
		requires := run(t, env, "rpm", "-qpR", rpmFile)
		for _, line := range strings.Split(strings.TrimSpace(requires), "\n") {
			name := strings.Fields(line)[0]
			// Only what RHEL-family systems provide under these names.
			if !regexp.MustCompile(`^(glibc|/bin/sh|rpmlib\(.*\))$`).MatchString(name) {
				t.Errorf("rpm requires %q: not an RHEL-family name", line)
			}
		}
		if !strings.Contains(requires, "glibc >= 2.34") {
			t.Errorf("rpm -qpR:\n%s\nwant glibc >= 2.34 (the binary's newest symbol version)", requires)
		}
		// nfpm writes the payload's paths absolute (goreleaser/nfpm#1122):
		// rpmlint's `cpio -id` would unpack into / without this wrapper.
		wrap := t.TempDir()
		if err := os.WriteFile(filepath.Join(wrap, "cpio"), []byte("#!/bin/sh\nexec /usr/bin/cpio --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		env = append(env, "PATH="+wrap+":"+os.Getenv("PATH"))
		out, _ := output(env, "rpmlint", "--config", filepath.Join(repoDir, "packaging/rpmlint.toml"), rpmFile)
		t.Logf("rpmlint:\n%s", out)
		if errs := tagged(out, ": E: "); len(errs) > 0 {
			t.Errorf("rpmlint errors:\n%s", strings.Join(errs, "\n"))
		}
		if !strings.Contains(out, "1 packages and 0 specfiles checked") {
			t.Errorf("rpmlint did not check the package")
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	for _, r := range lab.Releases() {
		t.Run(r.Name, func(t *testing.T) { installOnRelease(t, r.Name, deb) })
	}

	installed := run(t, nil, "dpkg", "-i", deb)
	t.Logf("dpkg -i: %s", installed)
	t.Cleanup(func() {
		if out, err := output(nil, "dpkg", "--purge", "rampart"); err != nil {
			t.Errorf("dpkg --purge rampart: %v\n%s", err, out)
		}
	})
	owned := strings.Fields(run(t, nil, "dpkg-query", "-L", "rampart"))

	t.Run("installed", func(t *testing.T) {
		run(t, nil, binary, "agents", "--check")
		if out := run(t, nil, "getent", "passwd", "rampart"); !strings.Contains(out, "/usr/sbin/nologin") {
			t.Errorf("system user rampart: %q; want a nologin system user", out)
		}
		for _, page := range []string{"rampart", "fence_rampart_ipmi", "ocf_rampart_pgsql", "ocf_rampart_vip"} {
			run(t, nil, "man", "-w", page)
		}
	})

	t.Run("pacemaker", func(t *testing.T) {
		for _, agent := range []string{"ocf:rampart:pgsql", "ocf:rampart:vip"} {
			out := run(t, nil, "crm", "ra", "info", agent)
			if !strings.Contains(out, "Parameters (*: required, []: default):") && !strings.Contains(out, "Operations' defaults") {
				t.Errorf("crm ra info %s:\n%s", agent, out)
			}
		}
		out := run(t, nil, "stonith_admin", "--metadata", "--agent", "fence_rampart_ipmi")
		if !strings.Contains(out, `<resource-agent name="fence_rampart_ipmi"`) {
			t.Errorf("stonith_admin --metadata:\n%s", out)
		}
	})

	t.Run("systemd", func(t *testing.T) {
		var paths []string
		for _, u := range units {
			paths = append(paths, "/lib/systemd/system/"+u)
		}
		out, err := output(nil, append([]string{"systemd-analyze", "verify"}, paths...)...)
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "rampart") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
		if err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		for _, p := range paths {
			// Exposure 0 (locked down) … 10 (unprotected); systemd calls ≤ 3.9 "OK".
			out, err := output(nil, "systemd-analyze", "security", "--offline=true", "--threshold=30", p)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			t.Logf("%s", lines[len(lines)-1])
			if err != nil {
				t.Errorf("systemd-analyze security %s: exposure above 3.0: %v\n%s", p, err, out)
			}
		}
	})

	t.Run("lab", func(t *testing.T) {
		// The e2e failover tests against the installed package: the lab's
		// hosts run /usr/bin/rampart through the package's own links.
		tests := []string{"TestKillPrimaryPostmaster", "TestPrimaryHostCrash"}
		cmd := exec.Command("go", "test", "-count=1", "-v", "-timeout", "20m", "-run", "^("+strings.Join(tests, "|")+")$", "./test/e2e")
		cmd.Dir = repoDir
		cmd.Env = append(os.Environ(), "RAMPART_E2E_INSTALLED=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("e2e against the installed package: %v\n%s", err, out)
		}
		for _, name := range tests {
			if !strings.Contains(string(out), "--- PASS: "+name+" ") {
				t.Errorf("%s did not pass (skipped?):\n%s", name, out)
			}
		}
		t.Logf("%s", tail(string(out), 30))
	})

	t.Run("remove", func(t *testing.T) {
		run(t, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "remove", "-y", "rampart")
		if out := run(t, nil, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "rampart"); !strings.HasPrefix(out, "rc") {
			t.Errorf("after apt-get remove: status %q; want rc (removed, configuration kept)", out)
		}
		for _, p := range owned {
			if info, err := os.Stat(p); err == nil && info.IsDir() {
				continue // folders the package shares (/usr/bin, /lib → usr/lib, …)
			}
			_, err := os.Lstat(p)
			switch {
			case slices.Contains(configs, p):
				if err != nil {
					t.Errorf("apt-get remove took the configuration file %s", p)
				}
			case err == nil:
				t.Errorf("apt-get remove left %s", p)
			}
		}
		run(t, nil, "dpkg", "--purge", "rampart")
		if _, err := os.Stat("/etc/rampart"); !os.IsNotExist(err) {
			t.Errorf("dpkg --purge left /etc/rampart (%v)", err)
		}
	})
}

// agentLinks are the links the built binary's dispatch table knows
// (`rampart agents`: AGENT LINK lines under a header).
func agentLinks(t *testing.T, bin string) []string {
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, nil, bin, "agents")), "\n")[1:] {
		if f := strings.Fields(line); len(f) == 2 {
			links = append(links, f[1])
		}
	}
	if len(links) == 0 {
		t.Fatal("rampart agents lists no agent")
	}
	return links
}

// checkLinks compares a package's symbolic links (path → target) with the
// dispatch table's: exactly those, each leading to the binary.
func checkLinks(t *testing.T, what string, got map[string]string, want []string) {
	t.Helper()
	var names []string
	for p, target := range got {
		names = append(names, p)
		if resolved := path.Join(path.Dir(p), target); resolved != binary {
			t.Errorf("%s: %s leads to %s, not %s", what, p, resolved, binary)
		}
	}
	slices.Sort(names)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(names, want) {
		t.Errorf("%s installs the links %v; the binary's dispatch table knows %v", what, names, want)
	}
}

// tagged are the lines of a linter's output holding tag.
func tagged(out, tag string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, tag) {
			lines = append(lines, l)
		}
	}
	return lines
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// installOnRelease boots a host of release (systemd, its own Pacemaker and
// PostgreSQL) and installs the .deb there as a user would, offline: apt
// resolves its dependencies from what the host has. The agents must be
// where that release's Pacemaker looks, its tools must read their
// metadata, its systemd must accept the units, and apt-get remove must
// take the package away again.
func installOnRelease(t *testing.T, release, deb string) {
	r, err := lab.ReleaseNamed(release)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s host: needs %s (make deps)", release, tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := lab.Root(ctx, "/var/cache/rampart/roots", r, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	netns := "rampart-pkg" + strings.TrimPrefix(release, "debian")
	remove, err := lab.ScratchNamespace(netns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	h, err := lab.NewSystemdHost(root, "pkg"+strings.TrimPrefix(release, "debian"), netns, filepath.Join(t.TempDir(), "host"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Remove(context.Background()) })
	if err := h.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	in := func(argv ...string) string {
		t.Helper()
		out, err := h.Output(ctx, argv...)
		if err != nil {
			t.Fatalf("%s host: %v\n%s", release, err, out)
		}
		return out
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := h.Command(ctx, "sh", "-c", "cat > /root/rampart.deb")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy the .deb to the %s host: %v\n%s", release, err, out)
	}
	t.Logf("%s host: %s", release, lastLine(in("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "/root/rampart.deb")))
	in(binary, "agents", "--check")
	for _, agent := range []string{"ocf:rampart:pgsql", "ocf:rampart:vip"} {
		if out := in("crm_resource", "--show-metadata", agent); !strings.Contains(out, "<resource-agent name=") {
			t.Errorf("%s host: crm_resource --show-metadata %s:\n%s", release, agent, out)
		}
		if out := in("crm", "ra", "info", agent); !strings.Contains(out, "Parameters (*: required, []: default):") && !strings.Contains(out, "Operations' defaults") {
			t.Errorf("%s host: crm ra info %s:\n%s", release, agent, out)
		}
	}
	if out := in("stonith_admin", "--metadata", "--agent", "fence_rampart_ipmi"); !strings.Contains(out, `<resource-agent name="fence_rampart_ipmi"`) {
		t.Errorf("%s host: stonith_admin --metadata:\n%s", release, out)
	}
	var paths []string
	for _, u := range units {
		paths = append(paths, "/lib/systemd/system/"+u)
	}
	if out, err := h.Output(ctx, append([]string{"systemd-analyze", "verify"}, paths...)...); err != nil || strings.Contains(out, "rampart") {
		t.Errorf("%s host: systemd-analyze verify: %v\n%s", release, err, out)
	}
	t.Run("pooler unit", func(t *testing.T) { poolerUnit(t, ctx, h, release) })
	t.Run("pair leader holds the address", func(t *testing.T) { poolerLeaderAddress(t, ctx, h, release) })
	in("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "rampart")
	if out, _ := h.Output(ctx, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", "rampart"); !strings.HasPrefix(out, "rc") {
		t.Errorf("%s host: after apt-get remove, status %q; want rc", release, out)
	}
	if out, _ := h.Output(ctx, "systemctl", "is-active", "rampart-pooler"); strings.TrimSpace(out) == "active" {
		t.Errorf("%s host: rampart-pooler still active after apt-get remove", release)
	}
}

// poolerUnit runs the pooler as its packaged unit does, on a host with
// systemd, against the host's own PostgreSQL: Type=notify reaches active,
// clients get through, systemctl reload takes a new user without a
// restart, and a hung pooler (SIGSTOP) is restarted by WatchdogSec.
func poolerUnit(t *testing.T, ctx context.Context, h *lab.SystemdHost, release string) {
	write := func(path, owner, mode, text string) {
		t.Helper()
		cmd, err := h.Command(ctx, "sh", "-c", `cat > "$1" && chown "$2" "$1" && chmod "$3" "$1"`, "sh", path, owner, mode)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s host: write %s: %v\n%s", release, path, err, out)
		}
	}
	sh := func(argv ...string) (string, error) {
		out, err := h.Output(ctx, argv...)
		return strings.TrimSpace(out), err
	}
	for _, role := range []string{"app PASSWORD 'secret'", "app2 PASSWORD 'secret2'"} {
		if out, err := sh("runuser", "-u", "postgres", "--", "psql", "-q", "-c", "CREATE ROLE "+role+" LOGIN"); err != nil {
			t.Fatalf("%s host: %v %s", release, err, out)
		}
	}
	write("/etc/rampart/userlist.txt", "rampart:rampart", "0600", `"app" "secret"`+"\n")
	write("/etc/rampart/pooler.ini", "root:rampart", "0640", "[pooler]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\n"+
		"auth_file = /etc/rampart/userlist.txt\nhealth_check_user = app\nhealth_check_dbname = postgres\n[nodes]\nn1 = host=127.0.0.1 port=5432\n")
	if out, err := sh("systemctl", "start", "rampart-pooler"); err != nil {
		journal, _ := sh("journalctl", "-u", "rampart-pooler", "--no-pager", "-n", "30")
		t.Fatalf("%s host: systemctl start rampart-pooler: %v %s\n%s", release, err, out, journal)
	}
	query := func(user, password string) (string, error) {
		return sh("env", "PGPASSWORD="+password, "psql", "-Atc", "SELECT current_user", "host=127.0.0.1 port=6432 dbname=postgres connect_timeout=3 user="+user)
	}
	wait := func(what string, ok func() (bool, string)) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := lab.WaitFor(wctx, what, 200*time.Millisecond, func(context.Context) (bool, string, error) {
			done, state := ok()
			return done, state, nil
		}); err != nil {
			journal, _ := sh("journalctl", "-u", "rampart-pooler", "--no-pager", "-n", "30")
			t.Fatalf("%s host: %v\n%s", release, err, journal)
		}
	}
	wait("app through the pooler", func() (bool, string) {
		out, err := query("app", "secret")
		return err == nil && out == "app", fmt.Sprint(out, err)
	})
	if out, _ := sh("systemctl", "is-active", "rampart-pooler"); out != "active" {
		t.Errorf("%s host: rampart-pooler is %q; want active (Type=notify: READY=1 sent)", release, out)
	}
	pid, _ := sh("systemctl", "show", "--property=MainPID", "--value", "rampart-pooler")

	// reload: a user added to the auth file gets in, the process stays.
	if _, err := query("app2", "secret2"); err == nil {
		t.Fatalf("%s host: app2 got in before it was in the auth file", release)
	}
	write("/etc/rampart/userlist.txt", "rampart:rampart", "0600", `"app" "secret"`+"\n"+`"app2" "secret2"`+"\n")
	if out, err := sh("systemctl", "reload", "rampart-pooler"); err != nil {
		t.Fatalf("%s host: systemctl reload: %v %s", release, err, out)
	}
	wait("app2 through the pooler after systemctl reload", func() (bool, string) {
		out, err := query("app2", "secret2")
		return err == nil && out == "app2", fmt.Sprint(out, err)
	})
	if now, _ := sh("systemctl", "show", "--property=MainPID", "--value", "rampart-pooler"); now != pid {
		t.Errorf("%s host: reload restarted the pooler (MainPID %s, then %s)", release, pid, now)
	}

	// A hung pooler: WatchdogSec (5 s) restarts it.
	hung := time.Now()
	if out, err := sh("kill", "-STOP", pid); err != nil {
		t.Fatalf("%s host: kill -STOP %s: %v %s", release, pid, err, out)
	}
	wait("the watchdog restarting the stopped pooler", func() (bool, string) {
		restarts, _ := sh("systemctl", "show", "--property=NRestarts", "--value", "rampart-pooler")
		now, _ := sh("systemctl", "show", "--property=MainPID", "--value", "rampart-pooler")
		out, err := query("app", "secret")
		return restarts == "1" && now != pid && now != "0" && err == nil && out == "app", fmt.Sprintf("NRestarts %s MainPID %s query %q %v", restarts, now, out, err)
	})
	t.Logf("%s host: Type=notify active, reload without restart, a stopped pooler restarted by the watchdog and serving again %s later",
		release, time.Since(hung).Round(100*time.Millisecond))
}

// poolerLeaderAddress runs the packaged unit as a pair's member with the
// packaged witness unit beside it (the other pooler is away: two votes of three make it
// leader), on an interface of the pair's subnet. The hardened unit grants
// no capabilities, so the unit's check refuses the vip and says how to
// grant them; with the two lines the unit's comment gives (`systemctl
// edit`), the leader adds the address under the unit's system-call filter,
// and removes it when it stops.
func poolerLeaderAddress(t *testing.T, ctx context.Context, h *lab.SystemdHost, release string) {
	sh := func(argv ...string) (string, error) {
		out, err := h.Output(ctx, argv...)
		return strings.TrimSpace(out), err
	}
	write := func(path, owner, mode, text string) {
		t.Helper()
		cmd, err := h.Command(ctx, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1" && chown "$2" "$1" && chmod "$3" "$1"`, "sh", path, owner, mode)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s host: write %s: %v\n%s", release, path, err, out)
		}
	}
	// The pair's network: an interface of its own, made from outside (a
	// veth pair inside the host's namespace; not every kernel has dummy).
	for _, argv := range [][]string{
		{"ip", "-n", h.NetNS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"},
		{"ip", "-n", h.NetNS, "addr", "add", "10.77.0.1/24", "dev", "eth0"},
		{"ip", "-n", h.NetNS, "link", "set", "eth0peer", "up"},
		{"ip", "-n", h.NetNS, "link", "set", "eth0", "up"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
	}
	const vip = "10.77.0.100"
	members := "[members]\np1 = 10.77.0.1:7480\np2 = 10.77.0.2:7480\nw = 10.77.0.1:7481 witness\n"
	write("/etc/rampart/pair.key", "rampart:rampart", "0600", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\n")
	write("/etc/rampart/witness.ini", "root:rampart", "0640", "[watchdog]\nself = w\nkey_file = /etc/rampart/pair.key\nheartbeat = 500ms\n"+members)
	write("/etc/rampart/pooler.ini", "root:rampart", "0640", "[pooler]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\n"+
		"auth_file = /etc/rampart/userlist.txt\nhealth_check_user = app\nhealth_check_dbname = postgres\n[nodes]\nn1 = host=127.0.0.1 port=5432\n"+
		"[watchdog]\nself = p1\nkey_file = /etc/rampart/pair.key\nheartbeat = 500ms\nvip = "+vip+"\n"+members)
	if out, err := sh("systemctl", "start", "rampart-witness"); err != nil {
		journal, _ := sh("journalctl", "-u", "rampart-witness", "--no-pager", "-n", "20")
		t.Fatalf("%s host: start the packaged witness unit: %v %s\n%s", release, err, out, journal)
	}
	// Without capabilities: refused before anything starts, saying how.
	if _, err := sh("systemctl", "restart", "rampart-pooler"); err == nil {
		t.Fatalf("%s host: the hardened unit started with a vip and no capabilities", release)
	}
	if journal, _ := sh("journalctl", "-u", "rampart-pooler", "--no-pager", "-n", "20"); !strings.Contains(journal, "systemctl edit rampart-pooler") {
		t.Errorf("%s host: the refusal does not say how to grant the capabilities:\n%s", release, journal)
	}
	write("/etc/systemd/system/rampart-pooler.service.d/vip.conf", "root:root", "0644",
		"[Service]\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n")
	for _, argv := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "reset-failed", "rampart-pooler"}, {"systemctl", "start", "rampart-pooler"}} {
		if out, err := sh(argv...); err != nil {
			journal, _ := sh("journalctl", "-u", "rampart-pooler", "--no-pager", "-n", "30")
			t.Fatalf("%s host: %v: %v %s\n%s", release, argv, err, out, journal)
		}
	}
	holds := func() (bool, string) {
		out, _ := sh("ip", "-o", "-4", "addr", "show", "dev", "eth0")
		return strings.Contains(out, " "+vip+"/"), out
	}
	started := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := lab.WaitFor(wctx, "the leader holding "+vip, 200*time.Millisecond, func(context.Context) (bool, string, error) {
		ok, state := holds()
		return ok, state, nil
	}); err != nil {
		journal, _ := sh("journalctl", "-u", "rampart-pooler", "--no-pager", "-n", "30")
		t.Fatalf("%s host: %v\n%s", release, err, journal)
	}
	t.Logf("%s host: the hardened unit, granted CAP_NET_ADMIN and CAP_NET_RAW, leads and holds %s %s after its start",
		release, vip, time.Since(started).Round(100*time.Millisecond))
	if out, err := sh("systemctl", "stop", "rampart-pooler"); err != nil {
		t.Fatalf("%s host: systemctl stop: %v %s", release, err, out)
	}
	if ok, state := holds(); ok {
		t.Errorf("%s host: %s still on eth0 after the pooler stopped: %s", release, vip, state)
	}
	sh("systemctl", "stop", "rampart-witness")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

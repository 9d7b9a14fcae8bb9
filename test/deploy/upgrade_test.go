package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// TestRollingUpgrade deploys the previous release (its packages, built
// from its tag, by its own guide) and upgrades it host by host to this
// tree's packages under a write load through the pooler pair, as the
// guide's "Upgrading rampart" says: the standbys, a switchover, the old
// primary; the following pooler, then the leading one. Nothing
// acknowledged may be lost; client errors are counted.
func TestRollingUpgrade(t *testing.T) {
	release := requireSite(t)
	if os.Getenv("RAMPART_DEPLOY_UPGRADE") == "" {
		t.Skip("make test-hosts runs it (RAMPART_DEPLOY_UPGRADE=1): a second deployment, minutes")
	}
	repo := repoDir()
	tag := previousRelease(t, repo)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	old := filepath.Join(t.TempDir(), "old")
	if out, err := exec.Command("git", "clone", "--quiet", "--depth=1", "--branch="+tag, "file://"+repo, old).CombinedOutput(); err != nil {
		t.Fatalf("git clone %s: %v\n%s", tag, err, out)
	}
	oldDeb := buildDeb(t, old, t.TempDir())
	newDeb := buildDeb(t, repo, t.TempDir())
	oldGuide, err := exec.Command("git", "-C", repo, "show", tag+":docs/deploy.md").Output()
	if err != nil {
		t.Fatalf("the guide of %s: %v", tag, err)
	}
	newVersion := debVersion(t, newDeb)
	t.Logf("from %s (%s) to %s", tag, debVersion(t, oldDeb), newVersion)

	d := startSite(t, ctx, release)
	d.prepare(ctx, oldDeb)
	d.deploy(ctx, guideSteps(t, "docs/deploy.md", oldGuide))
	primary, sync := d.waitHealthy(ctx, "with "+tag)
	w := d.startWriter(ctx)
	defer w.Stop()
	d.waitCommits(ctx, w, time.Now(), "before the upgrade")

	b, err := os.ReadFile(newDeb)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range lab.GuideHosts() {
		d.write(ctx, h.Name, "/root/new/"+filepath.Base(newDeb), "root:root", "0644", b)
	}
	type step struct {
		what  string
		stall time.Duration
		took  time.Duration
	}
	var steps []step
	upgrade := func(what, host string, argv ...[]string) {
		t.Helper()
		at := time.Now()
		d.in(ctx, host, asRoot("apt-get", "install", "-y", "-o", "Dpkg::Options::=--force-confold", "/root/new/"+filepath.Base(newDeb))...)
		for _, a := range argv {
			d.in(ctx, host, asRoot(a...)...)
		}
		if got := strings.TrimSpace(d.in(ctx, host, "dpkg-query", "-W", "-f=${Version}", "rampart")); got != newVersion {
			t.Fatalf("%s: rampart %s after the upgrade; want %s", host, got, newVersion)
		}
		p, s := d.waitHealthy(ctx, "after "+what)
		d.waitCommits(ctx, w, time.Now(), "after "+what)
		primary, sync = p, s
		st := step{what: what, stall: w.LongestStall(at, time.Now()), took: time.Since(at)}
		steps = append(steps, st)
		t.Logf("%s: %s: longest stall %.1f s, healthy %.0f s after (%d client errors so far)", release.Name, what, st.stall.Seconds(), st.took.Seconds(), w.Errors())
	}
	witness := func(host string) [][]string {
		if host == "db3" { // the guide's witness
			return [][]string{{"systemctl", "try-restart", "rampart-witness"}}
		}
		return nil
	}
	// The standbys: the agents are links to the binary, run afresh for
	// each action, so nothing restarts.
	for _, h := range dbHosts {
		if h != primary {
			upgrade("standby "+h, h, witness(h)...)
		}
	}
	// A switchover to the synchronous standby, which runs the new agent,
	// then the old primary.
	oldPrimary := primary
	at := time.Now()
	d.in(ctx, primary, asRoot("rampart", "switchover", "--to", sync)...)
	p, s := d.waitHealthy(ctx, "after the switchover")
	if p == oldPrimary {
		t.Fatalf("after rampart switchover --to %s, %s is still the primary", sync, p)
	}
	primary, sync = p, s
	steps = append(steps, step{what: "switchover to " + primary, stall: w.LongestStall(at, time.Now()), took: time.Since(at)})
	upgrade("old primary "+oldPrimary, oldPrimary, witness(oldPrimary)...)
	// The poolers: the following one, then the leader (its restart hands
	// the pair's address to the other).
	leader := d.poolerLeader(ctx)
	poolers := []string{"pooler1", "pooler2"}
	slices.SortFunc(poolers, func(a, b string) int { return boolInt(a == leader) - boolInt(b == leader) })
	for _, h := range poolers {
		upgrade("pooler "+h, h, []string{"systemctl", "restart", "rampart-pooler"})
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-28s %14s %9s\n", "step", "longest stall", "took")
	for _, s := range steps {
		fmt.Fprintf(&table, "%-28s %13.1fs %8.0fs\n", s.what, s.stall.Seconds(), s.took.Seconds())
	}
	t.Logf("%s: rolling upgrade from %s to %s under load through the pooler pair:\n%s", release.Name, tag, newVersion, table.String())
	d.checkNothingLost(ctx, w)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// previousRelease is the newest release tag (vX.Y.Z) before this tree's
// commit; the test skips without one.
func previousRelease(t *testing.T, repo string) string {
	t.Helper()
	rev := "HEAD"
	for range 2 {
		out, err := exec.Command("git", "-C", repo, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", rev).Output()
		if err != nil {
			t.Skipf("no release tag before %s (git describe): the rolling upgrade starts from the previous release's packages", rev)
		}
		tag := strings.TrimSpace(string(out))
		at, _ := exec.Command("git", "-C", repo, "rev-list", "-n1", tag).Output()
		head, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
		if string(at) != string(head) {
			return tag
		}
		rev = tag + "^" // this tree is the release: upgrade from the one before
	}
	t.Skip("no earlier release tag")
	return ""
}

// debVersion is a .deb's package version.
func debVersion(t *testing.T, deb string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--field", deb, "Version").Output()
	if err != nil {
		t.Fatalf("dpkg-deb --field %s Version: %v", deb, err)
	}
	return strings.TrimSpace(string(out))
}

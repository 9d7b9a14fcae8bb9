package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// RootCache is where tests keep the release roots between runs.
const rootCache = "/var/cache/rampart/roots"

// Each release's root builds (or is found in the cache) and brings the
// Pacemaker and PostgreSQL it promises.
func TestReleaseRoots(t *testing.T) {
	for _, r := range Releases() {
		t.Run(r.Name, func(t *testing.T) {
			root := releaseRoot(t, r)
			if out := chrootOutput(t, root, "crm_mon", "--version"); !strings.Contains(out, "Pacemaker "+r.Pacemaker) {
				t.Errorf("crm_mon --version in the %s root: %q; want Pacemaker %s", r.Name, out, r.Pacemaker)
			}
			postgres := fmt.Sprintf("/usr/lib/postgresql/%d/bin/postgres", r.PostgreSQL)
			if out := chrootOutput(t, root, postgres, "--version"); !strings.Contains(out, fmt.Sprintf("(PostgreSQL) %d.", r.PostgreSQL)) {
				t.Errorf("%s --version in the %s root: %q", postgres, r.Name, out)
			}
		})
	}
	if RootDir("/c", Releases()[0]) == RootDir("/c", Releases()[1]) {
		t.Error("two releases share a root folder")
	}
}

// The agents and rampart status read the cluster through crm_mon's XML and
// cibadmin. The same CIB (a four-node lab with the rampart agent, its VIP
// and fencing, as Pacemaker 2.1 wrote it during a chaos campaign) read through each release's own
// tools gives the same cluster status, options and parameters.
func TestPacemakerToolsAgreeAcrossReleases(t *testing.T) {
	cib, err := os.ReadFile("testdata/cib-chaos.xml")
	if err != nil {
		t.Fatal(err)
	}
	type reading struct {
		status  pacemaker.ClusterStatus
		options map[string]string
		params  map[string]map[string]string
	}
	read := func(t *testing.T, r Release) reading {
		root := releaseRoot(t, r)
		if err := os.WriteFile(filepath.Join(root, "tmp", "cib.xml"), cib, 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(ctx context.Context, argv ...string) (string, error) {
			cmd := exec.CommandContext(ctx, "chroot", append([]string{root, "env", "CIB_file=/tmp/cib.xml"}, argv...)...)
			out, err := cmd.Output()
			if err != nil {
				return "", fmt.Errorf("%s in the %s root: %w", strings.Join(argv, " "), r.Name, err)
			}
			return string(out), nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var got reading
		if got.status, err = pacemaker.CrmMon(ctx, run); err != nil {
			t.Fatal(err)
		}
		if got.options, err = pacemaker.ClusterOptions(ctx, run); err != nil {
			t.Fatal(err)
		}
		if got.params, err = pacemaker.ResourceParams(ctx, run); err != nil {
			t.Fatal(err)
		}
		return got
	}
	var first reading
	for i, r := range Releases() {
		got := read(t, r)
		s := got.status
		if len(s.Online()) != 4 || !s.Quorate {
			t.Errorf("%s: online %v, quorate %v; want n1–n4 and quorum", r.Name, s.Online(), s.Quorate)
		}
		// Taken mid-campaign: n3's instance was stopped.
		promoted, running := s.Promoted("pgsql"), s.RunningOn("pgsql")
		slices.Sort(running)
		if !reflect.DeepEqual(promoted, []string{"n1"}) || !reflect.DeepEqual(s.RunningOn("vip"), promoted) || !reflect.DeepEqual(running, []string{"n1", "n2", "n4"}) {
			t.Errorf("%s: pgsql promoted on %v, running on %v, vip on %v; want n1 primary holding the VIP, instances on n1, n2, n4",
				r.Name, promoted, running, s.RunningOn("vip"))
		}
		if got.options["stonith-enabled"] != "true" || got.params["pgsql"]["pgdata"] == "" {
			t.Errorf("%s: options %v, pgsql parameters %v", r.Name, got.options, got.params["pgsql"])
		}
		if i == 0 {
			first = got
			continue
		}
		// What crm_mon reports of itself (the DC's version) and what it
		// caches differ by release; everything rampart decides on must not.
		first.status.Version, got.status.Version = "", ""
		if !reflect.DeepEqual(first.status, got.status) {
			t.Errorf("crm_mon of %s and %s disagree:\n%+v\n%+v", Releases()[0].Name, r.Name, first.status, got.status)
		}
		if !reflect.DeepEqual(first.options, got.options) || !reflect.DeepEqual(first.params, got.params) {
			t.Errorf("cibadmin of %s and %s disagree:\n%v %v\n%v %v", Releases()[0].Name, r.Name, first.options, first.params, got.options, got.params)
		}
	}
}

// releaseRoot is r's root from the cache, built when missing; the test
// skips when it cannot build one here (not root, no debootstrap).
func releaseRoot(t *testing.T, r Release) string {
	t.Helper()
	if testing.Short() {
		t.Skip("release roots: skipped with -short (debootstrap takes a minute or two)")
	}
	if os.Geteuid() != 0 {
		t.Skip("release roots: need root (debootstrap, chroot)")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("release roots: need debootstrap (make deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := Root(ctx, rootCache, r, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chrootOutput(t *testing.T, root string, argv ...string) string {
	t.Helper()
	out, err := exec.Command("chroot", append([]string{root}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), root, err, out)
	}
	return string(out)
}

// A Debian 13 host boots with systemd in its own network namespace, runs
// Debian's PostgreSQL 17 and Pacemaker 3.0 as services, keeps its disk
// across a crash and a boot, and leaves nothing when removed.
func TestSystemdHost(t *testing.T) {
	r, err := ReleaseNamed("debian13")
	if err != nil {
		t.Fatal(err)
	}
	root := releaseRoot(t, r)
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("systemd hosts: need systemd-nspawn (make deps: systemd-container)")
	}
	const netns = "rampart-sdtest"
	remove, err := ScratchNamespace(netns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	dir := t.TempDir()
	h, err := NewSystemdHost(root, "sd1", netns, filepath.Join(dir, "sd1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() { h.Remove(context.Background()) })
	up := func(what string) {
		t.Helper()
		start := time.Now()
		if err := h.Boot(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.WaitRunning(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: systemd up in %s", what, time.Since(start).Round(10*time.Millisecond))
	}
	up("first boot")
	service := fmt.Sprintf("postgresql@%d-main", r.PostgreSQL)
	if out, err := h.Output(ctx, "systemctl", "is-active", service, "corosync", "pacemaker"); err != nil || strings.Count(out, "active") != 3 {
		t.Errorf("services: %q %v; want %s, corosync and pacemaker active", out, err, service)
	}
	if out, err := h.Output(ctx, "hostname"); err != nil || strings.TrimSpace(out) != "sd1" {
		t.Errorf("hostname %q %v; want sd1", out, err)
	}
	if _, err := h.Output(ctx, "sh", "-c", "echo kept > /var/lib/marker && sync"); err != nil {
		t.Fatal(err)
	}
	if err := h.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if procs, err := procsInNamespace(netns); err != nil || len(procs) != 0 {
		t.Fatalf("after the crash %d processes (%v) in %s", len(procs), err, netns)
	}
	up("boot after the crash")
	if out, err := h.Output(ctx, "cat", "/var/lib/marker"); err != nil || strings.TrimSpace(out) != "kept" {
		t.Errorf("after crash and boot /var/lib/marker = %q %v; want what was written before", out, err)
	}
	if err := h.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if mounted(filepath.Join(dir, "sd1", "merged")) {
		t.Error("Remove left the overlay mounted")
	}
	if _, err := os.Stat(filepath.Join(dir, "sd1")); !os.IsNotExist(err) {
		t.Errorf("Remove left the host's folder: %v", err)
	}
}

// A new root of a release replaces that release's older ones, and only
// those.
func TestPruneRoots(t *testing.T) {
	cache := t.TempDir()
	r := Releases()[1]
	keep := RootDir(cache, r)
	for _, p := range []string{keep, keep + ".debootstrap.log", filepath.Join(cache, r.Name+"-0123456789ab"),
		filepath.Join(cache, r.Name+"-0123456789ab.debootstrap.log"), RootDir(cache, Releases()[0])} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pruneRoots(cache, r, keep, slog.New(slog.DiscardHandler))
	entries, _ := os.ReadDir(cache)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{filepath.Base(RootDir(cache, Releases()[0])), filepath.Base(keep), filepath.Base(keep) + ".debootstrap.log"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v; want %v", left, want)
	}
}

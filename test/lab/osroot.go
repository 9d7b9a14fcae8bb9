package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Real hosts: a Debian root file system per release, built once with
// debootstrap from Debian's packages and cached, for hosts that boot with
// systemd (systemd-nspawn) instead of sharing this machine's root.

// Release is a Debian release the lab builds roots of.
type Release struct {
	Name       string // how the lab calls it: debian12, debian13
	Suite      string // Debian's code name
	PostgreSQL int    // the major version its postgresql package brings
	Pacemaker  string // the Pacemaker version it brings, for messages
	// Only, when set, is the whole package list of a root that is no
	// database host (a tool of the release run beside the lab's, say).
	Only []string
}

// PgBouncerRelease is a root with Debian 13's PgBouncer (1.24) alone: the
// pooler bench runs it beside this machine's (Debian 12's 1.18), since
// 1.24 pools protocol-level prepared statements in transaction mode.
func PgBouncerRelease() Release {
	return Release{Name: "pgbouncer13", Suite: "trixie", Only: []string{"pgbouncer"}}
}

// Releases are the releases the lab knows.
func Releases() []Release {
	return []Release{
		{Name: "debian12", Suite: "bookworm", PostgreSQL: 15, Pacemaker: "2.1.5"},
		{Name: "debian13", Suite: "trixie", PostgreSQL: 17, Pacemaker: "3.0.0"},
	}
}

// ReleaseNamed finds a release by its Name.
func ReleaseNamed(name string) (Release, error) {
	var names []string
	for _, r := range Releases() {
		if r.Name == name {
			return r, nil
		}
		names = append(names, r.Name)
	}
	return Release{}, fmt.Errorf("release %q: the lab knows %s", name, strings.Join(names, ", "))
}

// DebianMirror is where debootstrap fetches packages.
const DebianMirror = "http://deb.debian.org/debian"

// Packages are what a database host of r runs: systemd to boot, the
// cluster stack and PostgreSQL as Debian ships them, and the tools the
// agents and the lab call.
func (r Release) Packages() []string {
	if r.Only != nil {
		return r.Only
	}
	return []string{
		"systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps", "nftables",
		"corosync", "pacemaker", "pacemaker-cli-utils", "crmsh", "resource-agents",
		fmt.Sprintf("postgresql-%d", r.PostgreSQL), "ipmitool", "arping", "ca-certificates", "man-db",
	}
}

// RootDir is where the root of r lives under cache: its name carries a
// digest of the suite, the mirror and the package list, so that a changed
// list builds a new root instead of reusing a stale one.
func RootDir(cache string, r Release) string {
	pkgs := slices.Sorted(slices.Values(r.Packages()))
	sum := sha256.Sum256([]byte(r.Suite + "\n" + DebianMirror + "\n" + strings.Join(pkgs, "\n")))
	return filepath.Join(cache, r.Name+"-"+hex.EncodeToString(sum[:])[:12])
}

// rootComplete marks a root debootstrap finished.
const rootComplete = ".rampart-root-complete"

// Root returns r's root under cache, building it with debootstrap first
// when there is none (a minute or two, once; debootstrap's output goes to
// a log beside it). A build cut short leaves nothing that counts as built.
func Root(ctx context.Context, cache string, r Release, log *slog.Logger) (string, error) {
	dir := RootDir(cache, r)
	if _, err := os.Stat(filepath.Join(dir, rootComplete)); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("build the %s root: debootstrap is not installed (apt-get install debootstrap)", r.Name)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("build the %s root: %w", r.Name, err)
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("build the %s root: remove the last attempt: %w", r.Name, err)
	}
	logPath := dir + ".debootstrap.log"
	logf, err := os.Create(logPath)
	if err != nil {
		return "", fmt.Errorf("build the %s root: %w", r.Name, err)
	}
	defer logf.Close()
	start := time.Now()
	log.Info("building a root with debootstrap (once; a minute or two)", "release", r.Name, "suite", r.Suite, "dir", dir, "log", logPath)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(r.Packages(), ","), r.Suite, tmp, DebianMirror)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("build the %s root: debootstrap %s: %w (its output: %s)", r.Name, r.Suite, err, logPath)
	}
	if err := os.WriteFile(filepath.Join(tmp, rootComplete), []byte(start.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("build the %s root: %w", r.Name, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("build the %s root: %w", r.Name, err)
	}
	log.Info("root built", "release", r.Name, "dir", dir, "elapsed", time.Since(start).Round(time.Second))
	pruneRoots(cache, r, dir, log)
	return dir, nil
}

// pruneRoots removes r's roots under cache other than keep: built from an
// older package list, nothing uses them any more.
func pruneRoots(cache string, r Release, keep string, log *slog.Logger) {
	old, _ := filepath.Glob(filepath.Join(cache, r.Name+"-*"))
	for _, p := range old {
		if p == keep || strings.HasPrefix(p, keep+".") {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			log.Warn("could not remove an old root", "path", p, "err", err)
		}
	}
}

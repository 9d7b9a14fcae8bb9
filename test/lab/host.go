package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/fence/ipmi"
	"github.com/rampart-ha/rampart/ra"
)

// A host's own view of the file system: the anchor process holds a mount and
// a UTS namespace in which these folders of the lab are bind-mounted over the
// machine's, /run and /dev/shm are fresh tmpfs (so a crash loses them, as on
// a real host), and the hostname is the host's name (Pacemaker's agents and
// tools use it).
var privateDirs = []struct {
	mountpoint, dir string
	owner, group    string
	mode            os.FileMode
	roles           []Role
}{
	{"/etc/corosync", "etc-corosync", "root", "root", 0o755, []Role{RoleDatabase}},
	{"/var/lib/corosync", "var-lib-corosync", "root", "root", 0o755, []Role{RoleDatabase}},
	{"/var/lib/pacemaker", "var-lib-pacemaker", "root", "root", 0o755, []Role{RoleDatabase}},
	{"/var/log/pacemaker", "var-log-pacemaker", "hacluster", "haclient", 0o2770, []Role{RoleDatabase}},
	{"/var/lib/postgresql", "var-lib-postgresql", "postgres", "postgres", 0o755, []Role{RoleDatabase}},
}

// Folders that tmpfiles.d would make at boot, made in the fresh /run.
var runDirs = []struct {
	path, owner, group, mode string
}{
	{"/run/crm", "hacluster", "haclient", "0750"},
	{"/run/postgresql", "postgres", "postgres", "2775"},
	{"/run/resource-agents", "root", "root", "1755"},
	{"/run/lock", "root", "root", "1777"},
}

func hasRole(roles []Role, r Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// hostDir is where host name keeps its private folders and logs on the machine.
func (c Config) hostDir(name string) string { return filepath.Join(c.Dir(), "hosts", name) }

// logDir holds the daemons' stdout and stderr.
func (c Config) logDir(name string) string { return filepath.Join(c.hostDir(name), "log") }

func (c Config) etcHosts() string { return filepath.Join(c.Dir(), "etc-hosts") }

// prepareHostDirs makes a host's private folders with their owners.
func prepareHostDirs(c Config, h HostSpec) error {
	base := c.hostDir(h.Name)
	if err := os.MkdirAll(filepath.Join(base, "log"), 0o755); err != nil {
		return fmt.Errorf("prepare %s: %w", h.Name, err)
	}
	for _, d := range privateDirs {
		if !hasRole(d.roles, h.Role) {
			continue
		}
		if err := mkdirOwned(filepath.Join(base, d.dir), d.owner, d.group, d.mode); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
	}
	if h.Role == RoleDatabase {
		for _, sub := range []string{"cib", "pengine", "blackbox", "cores"} {
			if err := mkdirOwned(filepath.Join(base, "var-lib-pacemaker", sub), "hacluster", "haclient", 0o750); err != nil {
				return fmt.Errorf("prepare %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

func mkdirOwned(path, owner, group string, mode os.FileMode) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	uid, gid, err := lookupIDs(owner, group)
	if err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// writeOwned writes a file atomically (temp file + rename) with its owner.
func writeOwned(path string, data []byte, owner, group string, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	uid, gid, err := lookupIDs(owner, group)
	if err != nil {
		return err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func lookupIDs(owner, group string) (int, int, error) {
	u, err := user.Lookup(owner)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: %w (is its package installed? run make deps)", owner, err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, 0, fmt.Errorf("group %s: %w (is its package installed? run make deps)", group, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid, nil
}

// renderEtcHosts lists the lab hosts so that names work inside the lab.
func renderEtcHosts(c Config) string {
	var b strings.Builder
	b.WriteString("# rampart lab " + c.ID + "\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range c.Hosts() {
		fmt.Fprintf(&b, "%s\t%s\n", h.Addr, h.Name)
	}
	return b.String()
}

// bootAnchor starts a host: its init (tini, PID 1 of the host's own PID
// namespace, so orphans such as a killed postmaster are reaped as on a real
// host) in new mount, UTS and PID namespaces inside the host's network
// namespace, and sets up the host's private view. It returns the init's PID
// as the machine sees it; killing it ends every process of the host.
func bootAnchor(ctx context.Context, c Config, h HostSpec) (int, error) {
	ns := c.hostNamespace(h.Name)
	// "ip netns exec" execs in place; "unshare --fork" stays as the parent of
	// the new PID namespace's init.
	outer, err := startDaemon(filepath.Join(c.logDir(h.Name), "anchor.log"), nil,
		"ip", "netns", "exec", ns, "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
		"--propagation", "private", "--", "tini", "--", "sleep", "infinity")
	if err != nil {
		return 0, fmt.Errorf("boot %s: %w", h.Name, err)
	}
	var pid int
	err = WaitFor(ctx, h.Name+" init in its namespaces", 5*time.Millisecond, func(context.Context) (bool, string, error) {
		if !alive(outer) {
			return false, "", fmt.Errorf("init of %s exited: see %s", h.Name, c.logDir(h.Name))
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer, outer))
		f := strings.Fields(string(children))
		if len(f) == 0 {
			return false, "no init yet", nil
		}
		pid, _ = strconv.Atoi(f[0])
		p, err := readProc(pid)
		if err != nil {
			return false, err.Error(), nil
		}
		return p.Comm == "tini", "init is " + p.Comm, nil
	})
	if err != nil {
		return 0, fmt.Errorf("boot %s: %w", h.Name, err)
	}
	mounts := [][]string{
		{"mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", "/run"},
		{"mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,size=256m", "tmpfs", "/dev/shm"},
		{"mount", "--bind", c.etcHosts(), "/etc/hosts"},
	}
	for _, d := range privateDirs {
		if hasRole(d.roles, h.Role) {
			mounts = append(mounts, []string{"mount", "--bind", filepath.Join(c.hostDir(h.Name), d.dir), d.mountpoint})
		}
	}
	if h.Role == RoleDatabase && c.Agent != "" && !c.Installed {
		mounts = append(mounts, ocfMounts(c)...)
	}
	for _, d := range runDirs {
		mounts = append(mounts, []string{"install", "-d", "-o", d.owner, "-g", d.group, "-m", d.mode, d.path})
	}
	for _, m := range mounts {
		if _, err := run(ctx, append([]string{"nsenter", "--target", strconv.Itoa(pid), "--mount", "--"}, m...)...); err != nil {
			return 0, fmt.Errorf("boot %s: %w", h.Name, err)
		}
	}
	if _, err := run(ctx, "nsenter", "--target", strconv.Itoa(pid), "--uts", "--", "hostname", h.Name); err != nil {
		return 0, fmt.Errorf("boot %s: %w", h.Name, err)
	}
	return pid, nil
}

// The machine's OCF agents folder, and the lab's replacement for it.
const ocfRoot = "/usr/lib/ocf/resource.d"

func (c Config) ocfDir() string { return filepath.Join(c.Dir(), "ocf-resource.d") }

// prepareOCF makes the lab's resource.d: a folder per provider of the
// machine (bound to the original inside each host) and "rampart", whose
// agents are links to the rampart binary.
func prepareOCF(c Config) error {
	entries, err := os.ReadDir(ocfRoot)
	if err != nil {
		return fmt.Errorf("OCF agents: %w (is resource-agents installed? run make deps)", err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != "rampart" {
			if err := os.MkdirAll(filepath.Join(c.ocfDir(), e.Name()), 0o755); err != nil {
				return err
			}
		}
	}
	own := filepath.Join(c.ocfDir(), "rampart")
	if err := os.MkdirAll(own, 0o755); err != nil {
		return err
	}
	// A copy in the lab folder: the agent re-executes itself as postgres,
	// who may not be allowed into the folder the binary was built in.
	bin := filepath.Join(c.Dir(), "rampart")
	data, err := os.ReadFile(c.Agent)
	if err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		return err
	}
	for _, agent := range ra.Agents {
		if err := os.Symlink(bin, filepath.Join(own, agent)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	// Pacemaker's fencer runs fence agents from /usr/sbin.
	if err := os.MkdirAll(c.sbinDir(), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(bin, filepath.Join(c.sbinDir(), ipmi.Name)); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}

// checkInstalled makes sure the installed package's agent links are where
// Pacemaker looks, leading to InstalledBinary.
func checkInstalled() error {
	links := []string{filepath.Join("/usr/sbin", ipmi.Name)}
	for _, agent := range ra.Agents {
		links = append(links, filepath.Join(ocfRoot, "rampart", agent))
	}
	bin, err := os.Stat(InstalledBinary)
	if err != nil {
		return fmt.Errorf("installed rampart: %w (install the package: make packages, then dpkg -i dist/rampart_*.deb)", err)
	}
	for _, link := range links {
		info, err := os.Stat(link)
		if err != nil || !os.SameFile(info, bin) {
			return fmt.Errorf("installed rampart: %s does not lead to %s (reinstall the package)", link, InstalledBinary)
		}
	}
	return nil
}

// sbinDir holds the lab's fence agents, laid over /usr/sbin inside hosts.
func (c Config) sbinDir() string { return filepath.Join(c.Dir(), "sbin") }

// ocfMounts binds the machine's providers into the lab's resource.d, then
// the lab's resource.d over the machine's, inside one host; and adds the
// lab's fence agents to /usr/sbin.
func ocfMounts(c Config) [][]string {
	var mounts [][]string
	entries, _ := os.ReadDir(c.ocfDir())
	for _, e := range entries {
		if e.Name() != "rampart" {
			mounts = append(mounts, []string{"mount", "--bind", filepath.Join(ocfRoot, e.Name()), filepath.Join(c.ocfDir(), e.Name())})
		}
	}
	// --rbind: the providers bound inside must come along.
	mounts = append(mounts, []string{"mount", "--rbind", c.ocfDir(), ocfRoot})
	// A read-only overlay adds the lab's fence agents to the machine's
	// /usr/sbin, which stays untouched.
	return append(mounts, []string{"mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + c.sbinDir() + ":/usr/sbin", "/usr/sbin"})
}

// SaveLogs copies every host's daemon logs (Corosync, Pacemaker,
// PostgreSQL, the agents' and the poolers') into dir/HOST/, for a run whose
// findings need them after the lab is gone.
func (l *Lab) SaveLogs(dir string) error {
	var errs []error
	for _, h := range l.Hosts() {
		hd := l.cfg.hostDir(h.Name)
		var files []string
		for _, pattern := range []string{"log/*", "var-log-pacemaker/*.log", "var-lib-postgresql/lab/*.log"} {
			m, _ := filepath.Glob(filepath.Join(hd, pattern))
			files = append(files, m...)
		}
		if len(files) == 0 {
			continue
		}
		to := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(to, 0o755); err != nil {
			return fmt.Errorf("save logs of %s: %w", h.Name, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil {
				err = os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("save log %s of %s: %w", f, h.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lab is a running lab. Its state is kept in the lab folder (lab.json), so
// that separate `rampart lab` commands work on the same lab.
type Lab struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // guards state; a State's maps are never changed once published
	// state is the last state seen, read from stateFile; current() reloads it.
	state     State
	stateFile os.FileInfo
}

// State is what the lab records about itself.
type State struct {
	Config    Config
	Created   time.Time
	Anchors   map[string]int    // host → PID of the process holding its namespaces
	Passwords map[string]string // role → password
	Frozen    map[string]bool
	Cut       map[string]bool
	Crashed   map[string]bool
	Partition [][]string      // groups of hosts cut off from the rest; nil when healed
	BMCDown   map[string]bool // hosts whose BMC does not answer
	WALHeld   map[string]bool // hosts that receive no WAL (HoldWAL)
	Lossy     map[string]int  // hosts whose database link drops this percentage of packets (Lose)
	Throttled map[string]int  // hosts whose database link carries at most this many kbit/s each way (Throttle)
	// PacemakerPG: PostgreSQL is Pacemaker's (ocf:rampart:pgsql), so the lab
	// never starts it itself, not even when a host boots.
	PacemakerPG bool
}

// Host is one host of a running lab.
type Host struct {
	HostSpec
	Anchor int
}

// Config returns the lab's configuration.
func (l *Lab) Config() Config { return l.cfg }

// Hosts returns the lab's hosts in address-plan order.
func (l *Lab) Hosts() []Host {
	st := l.current()
	var hosts []Host
	for _, h := range l.cfg.Hosts() {
		hosts = append(hosts, Host{HostSpec: h, Anchor: st.Anchors[h.Name]})
	}
	return hosts
}

// Addr returns host's address on the lab subnet ("" for no such host).
func (l *Lab) Addr(host string) string {
	for _, h := range l.cfg.Hosts() {
		if h.Name == host {
			return h.Addr.String()
		}
	}
	return ""
}

// DBHosts returns the names of the database hosts.
func (l *Lab) DBHosts() []string {
	var names []string
	for _, h := range l.cfg.Hosts() {
		if h.Role == RoleDatabase {
			names = append(names, h.Name)
		}
	}
	return names
}

func (l *Lab) host(name string) (Host, error) {
	for _, h := range l.Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	var names []string
	for _, h := range l.cfg.Hosts() {
		names = append(names, h.Name)
	}
	return Host{}, fmt.Errorf("no host %q in lab %s (hosts: %s)", name, l.cfg.ID, strings.Join(names, " "))
}

// Password returns the password of a lab role.
func (l *Lab) Password(role string) string { return l.current().Passwords[role] }

// runIn runs argv inside host as user ("" or "root" for root).
func (l *Lab) runIn(ctx context.Context, host, user string, argv ...string) (string, error) {
	return l.runInAs(ctx, host, user, nil, argv...)
}

func (l *Lab) runInEnv(ctx context.Context, host string, env []string, argv ...string) (string, error) {
	return l.runInAs(ctx, host, "", env, argv...)
}

func (l *Lab) runInAs(ctx context.Context, host, user string, env []string, argv ...string) (string, error) {
	h, err := l.host(host)
	if err != nil {
		return "", err
	}
	if h.Anchor == 0 {
		return "", fmt.Errorf("host %s is down (crashed): boot it with `rampart lab fault boot %s`", host, host)
	}
	return runEnv(ctx, env, inHost(h.Anchor, user, argv)...)
}

// Exec returns a command that runs argv inside host as root, for callers
// that want its streams (`rampart lab exec`). PGPASSFILE points at the lab's
// client password file, so psql finds the lab passwords.
func (l *Lab) Exec(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	h, err := l.host(host)
	if err != nil {
		return nil, err
	}
	if h.Anchor == 0 {
		return nil, fmt.Errorf("host %s is down (crashed): boot it with `rampart lab fault boot %s`", host, host)
	}
	full := inHost(h.Anchor, "", argv)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+l.clientPgpass())
	return cmd, nil
}

func statePath(dir string) string { return filepath.Join(dir, "lab.json") }

// The lab's state is shared by every process that works on the lab: the
// test or command that built it, `rampart lab fault …` commands, and the
// BMCs' power command run by ipmi_sim. Readers reload it; writers change it
// under a lock on lab.lock.

// current reloads the state and returns it; a state file that cannot be
// read (a lab being destroyed) leaves the last one seen.
// It parses the file only when it changed (every change renames a new
// file into place), since hosts are looked up on every command run in one.
func (l *Lab) current() State {
	info, err := os.Stat(statePath(l.cfg.Dir()))
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || os.SameFile(info, l.stateFile) && info.ModTime().Equal(l.stateFile.ModTime()) {
		return l.state
	}
	if s, err := loadState(l.cfg.Dir()); err == nil {
		l.state, l.stateFile = s, info
	}
	return l.state
}

// change applies fn to the latest state and saves it, under the lab's lock.
func (l *Lab) change(fn func(*State)) error {
	f, err := os.OpenFile(filepath.Join(l.cfg.Dir(), "lab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock lab state: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock lab state: %w", err)
	}
	s, err := loadState(l.cfg.Dir())
	if err != nil {
		return fmt.Errorf("change lab state: %w", err)
	}
	fn(&s)
	if err := saveState(l.cfg.Dir(), s); err != nil {
		return err
	}
	l.mu.Lock()
	l.state, l.stateFile = s, nil // the next read stats the new file
	l.mu.Unlock()
	return nil
}

func loadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", statePath(dir), err)
	}
	return s, nil
}

// save writes the state while Up builds the lab, before anyone else can
// see it; afterwards state changes go through change.
func (l *Lab) save() error { return saveState(l.cfg.Dir(), l.state) }

func saveState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := statePath(dir)
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// Open returns the running lab id under root.
func Open(root, id string, log *slog.Logger) (*Lab, error) {
	s, err := loadState(filepath.Join(root, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab %q under %s: start one with `rampart lab up --id %s`", id, root, id)
	}
	if err != nil {
		return nil, fmt.Errorf("open lab %s: %w", id, err)
	}
	return &Lab{cfg: s.Config, log: log, state: s}, nil
}

// Prerequisites lists what the lab needs on this machine and is missing.
func Prerequisites(c Config) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (namespaces, mounts and daemons need it)")
	}
	for _, bin := range []string{"ip", "nft", "nsenter", "unshare", "setpriv", "mount", "install", "hostname", "sleep",
		"corosync", "corosync-cmapctl", "pacemakerd", "cibadmin", "crm_mon"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, bin := range []string{"initdb", "pg_ctl", "pg_basebackup", "psql"} {
		if _, err := os.Stat(filepath.Join(c.PGBin, bin)); err != nil {
			missing = append(missing, filepath.Join(c.PGBin, bin))
		}
	}
	return missing
}

// Up builds and starts a lab and waits until it is ready: every database
// host a Corosync member and online in Pacemaker with quorum, and every
// standby streaming from the primary n1. Progress goes to log. On failure the
// partial lab stays for inspection; Destroy removes it.
func Up(ctx context.Context, c Config, log *slog.Logger) (*Lab, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if missing := Prerequisites(c); len(missing) > 0 {
		return nil, fmt.Errorf("lab needs %s: run `make deps` as root", strings.Join(missing, ", "))
	}
	if left, err := Leftovers(c.Root, c.ID); err != nil {
		return nil, err
	} else if len(left) > 0 {
		return nil, fmt.Errorf("lab %s exists already (%s): use another --id, or remove it with `rampart lab down --id %s`",
			c.ID, strings.Join(left, "; "), c.ID)
	}
	l := &Lab{cfg: c, log: log, state: State{
		Config: c, Created: time.Now().UTC(),
		Anchors: map[string]int{}, Passwords: map[string]string{},
		Frozen: map[string]bool{}, Cut: map[string]bool{}, Crashed: map[string]bool{},
	}}
	for _, role := range []string{ReplicationUser, AppUser, RewindUser, bmcRole} {
		pw, err := newPassword()
		if err != nil {
			return nil, err
		}
		if role == bmcRole {
			pw = pw[:16] // IPMI 1.5 passwords, which ipmi_sim keeps, have 16 bytes at most
		}
		l.state.Passwords[role] = pw
	}
	start := time.Now()
	phase := func(msg string, args ...any) {
		log.Info(msg, append([]any{"lab", c.ID, "elapsed", time.Since(start).Round(10 * time.Millisecond).String()}, args...)...)
	}
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab folder: %w", err)
	}
	if err := os.Chmod(c.Root, 0o755); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := createNetwork(ctx, c); err != nil {
		return l, err
	}
	phase("network ready", "bridge", bridge, "subnet", c.Subnet.String())

	if err := os.WriteFile(c.etcHosts(), []byte(renderEtcHosts(c)), 0o644); err != nil {
		return l, err
	}
	switch {
	case c.Installed:
		if err := checkInstalled(); err != nil {
			return l, err
		}
	case c.Agent != "":
		if err := prepareOCF(c); err != nil {
			return l, err
		}
	}
	if err := writeOwned(l.clientPgpass(), []byte(pgpass(l.state.Passwords)), "root", "root", 0o600); err != nil {
		return l, err
	}
	for _, h := range c.Hosts() {
		if err := prepareHostDirs(c, h); err != nil {
			return l, err
		}
		if h.Role == RoleDatabase {
			if err := l.writePG(h.Name, "/var/lib/postgresql/.pgpass", pgpass(l.state.Passwords), 0o600); err != nil {
				return l, err
			}
			if err := writeClusterConfig(ctx, c, h); err != nil {
				return l, err
			}
		}
		pid, err := bootAnchor(ctx, c, h)
		if err != nil {
			return l, err
		}
		l.state.Anchors[h.Name] = pid
	}
	if err := l.save(); err != nil {
		return l, err
	}
	phase("hosts ready", "hosts", len(c.Hosts()))
	if c.Agent != "" {
		if err := l.startBMCs(ctx); err != nil {
			return l, err
		}
		phase("BMCs ready", "management network", c.Management.String())
	}

	// Corosync and Pacemaker settle while PostgreSQL is being set up.
	for _, h := range l.DBHosts() {
		if err := l.startCorosync(h); err != nil {
			return l, err
		}
	}
	if err := l.initPostgres(ctx, "n1"); err != nil {
		return l, err
	}
	phase("primary ready", "host", "n1", "data", PGData)
	var wg sync.WaitGroup
	errs := make([]error, len(l.DBHosts()))
	for i, h := range l.DBHosts()[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.cloneStandby(ctx, h, "n1")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return l, err
	}
	phase("standbys cloned", "standbys", len(l.DBHosts())-1)

	if err := l.WaitMembers(ctx, l.DBHosts(), l.DBHosts()); err != nil {
		return l, err
	}
	phase("corosync membership complete", "members", len(l.DBHosts()))
	for _, h := range l.DBHosts() {
		if err := l.startPacemaker(h); err != nil {
			return l, err
		}
	}
	if err := l.WaitClusterOnline(ctx, l.DBHosts()); err != nil {
		return l, err
	}
	phase("pacemaker: quorate, all nodes online")
	if c.fences() {
		if err := l.configureFencing(ctx); err != nil {
			return l, err
		}
		phase("fencing on", "devices", strings.Join(l.FenceDevices(), " "), "stonith-action", FenceAction)
	}
	if err := l.WaitStreaming(ctx, "n1", l.DBHosts()[1:]); err != nil {
		return l, err
	}
	phase("ready", "primary", "n1", "streaming standbys", len(l.DBHosts())-1)
	return l, nil
}

func (l *Lab) startCorosync(host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	_, err = startDaemon(filepath.Join(l.cfg.logDir(host), "corosync.log"), nil,
		inHost(h.Anchor, "", []string{"corosync", "-f", "-c", "/etc/corosync/corosync.conf"})...)
	return err
}

func (l *Lab) startPacemaker(host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	_, err = startDaemon(filepath.Join(l.cfg.logDir(host), "pacemakerd.log"),
		[]string{"PCMK_logfile=/var/log/pacemaker/pacemaker.log", "PCMK_logfacility=none"},
		inHost(h.Anchor, "", []string{"pacemakerd"})...)
	return err
}

// Leftovers lists what exists of lab id: namespaces, their processes, the
// lab folder, mounts below it. Empty means the lab is gone.
func Leftovers(root, id string) ([]string, error) {
	var left []string
	namespaces, err := labNamespaces(id)
	if err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		left = append(left, "namespace "+ns)
		procs, err := procsInNamespace(ns)
		if err == nil && len(procs) > 0 {
			left = append(left, fmt.Sprintf("%d processes in %s", len(procs), ns))
		}
	}
	dir := filepath.Join(root, id)
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "folder "+dir)
	}
	mounts, err := mountsBelow(dir)
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		left = append(left, "mount "+m)
	}
	return left, nil
}

// mountsBelow lists this mount namespace's mount points at or below dir.
func mountsBelow(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			found = append(found, f[4])
		}
	}
	return found, nil
}

// Destroy removes lab id under root and everything it left: it kills every
// process in the lab's namespaces, deletes the namespaces (and with them the
// bridge and veths) and the lab folder. It works from names alone, so it
// also cleans a lab whose `up` or whose machine crashed.
func Destroy(ctx context.Context, root, id string, log *slog.Logger) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("lab id %q: use 1 to 12 lower-case letters or digits", id)
	}
	start := time.Now()
	namespaces, err := labNamespaces(id)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := killNamespace(kctx, ns)
		cancel()
		if err != nil {
			return fmt.Errorf("lab down %s: %w", id, err)
		}
	}
	for _, ns := range namespaces {
		if _, err := run(ctx, "ip", "netns", "delete", ns); err != nil {
			return fmt.Errorf("lab down %s: %w", id, err)
		}
	}
	dir := filepath.Join(root, id)
	if mounts, err := mountsBelow(dir); err != nil {
		return err
	} else if len(mounts) > 0 {
		return fmt.Errorf("lab down %s: mounts left below %s (%s): not removing the folder; unmount them first", id, dir, strings.Join(mounts, " "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("lab down %s: %w", id, err)
	}
	left, err := Leftovers(root, id)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("lab down %s: still there: %s", id, strings.Join(left, "; "))
	}
	log.Info("lab down", "lab", id, "namespaces", len(namespaces), "elapsed", time.Since(start).Round(10*time.Millisecond).String())
	return nil
}

// Down destroys this lab.
func (l *Lab) Down(ctx context.Context) error { return Destroy(ctx, l.cfg.Root, l.cfg.ID, l.log) }

// Output runs argv in host and returns its combined output; a failure
// names the command and the host, with the output.
func (l *Lab) Output(ctx context.Context, host string, argv ...string) (string, error) {
	cmd, err := l.Exec(ctx, host, argv...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w\n%s", strings.Join(argv, " "), host, err, out)
	}
	return string(out), nil
}

// AllLeftovers is Leftovers for every lab there is a trace of: namespaces
// named rampart-ID-…, folders under root. It maps each lab id to what is
// left of it; empty means no lab exists on this machine.
func AllLeftovers(root string) (map[string][]string, error) {
	ids := map[string]bool{}
	namespaces, err := labNamespaces("")
	if err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		if id, _, ok := strings.Cut(strings.TrimPrefix(ns, "rampart-"), "-"); ok && idPattern.MatchString(id) {
			ids[id] = true
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list labs in %s: %w", root, err)
	}
	for _, e := range entries {
		if e.IsDir() && idPattern.MatchString(e.Name()) {
			ids[e.Name()] = true
		}
	}
	left := map[string][]string{}
	for id := range ids {
		l, err := Leftovers(root, id)
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			left[id] = l
		}
	}
	return left, nil
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SystemdHost is a host that boots a release's root (Root) with systemd as
// its init, inside a network namespace: systemd-nspawn on an overlay of the
// cached root, so that the root stays as debootstrap built it and the
// host's own changes (configuration, data, installed packages) live in its
// folder and survive a crash and a boot, as a disk would. Its processes are
// found by network namespace like every lab host's, so that the lab's
// faults (kill, freeze) reach them.
type SystemdHost struct {
	Name   string
	NetNS  string // the network namespace it runs in (/run/netns/NetNS)
	root   string
	dir    string // its overlay: upper, work, merged; console.log
	nspawn *exec.Cmd
	exited chan struct{} // closed when nspawn has exited
}

// NewSystemdHost prepares host name on root in network namespace netns,
// keeping its disk in dir; Boot starts it.
func NewSystemdHost(root, name, netns, dir string) (*SystemdHost, error) {
	if !idPattern.MatchString(name) {
		return nil, fmt.Errorf("systemd host %q: a name of lowercase letters and digits", name)
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("systemd host %s: %s is not installed (make deps)", name, tool)
		}
	}
	if _, err := os.Stat(filepath.Join(root, rootComplete)); err != nil {
		return nil, fmt.Errorf("systemd host %s: %s is no complete release root (lab.Root builds one)", name, root)
	}
	return &SystemdHost{Name: name, NetNS: netns, root: root, dir: dir}, nil
}

func (h *SystemdHost) merged() string { return filepath.Join(h.dir, "merged") }

// mount lays the host's overlay over the root, once.
func (h *SystemdHost) mount() error {
	if mounted(h.merged()) {
		return nil
	}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			return fmt.Errorf("systemd host %s: %w", h.Name, err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.root, filepath.Join(h.dir, "upper"), filepath.Join(h.dir, "work"))
	if err := syscall.Mount("overlay", h.merged(), "overlay", 0, opts); err != nil {
		return fmt.Errorf("systemd host %s: mount its overlay: %w", h.Name, err)
	}
	// Its name, before systemd reads it.
	if err := os.WriteFile(filepath.Join(h.merged(), "etc", "hostname"), []byte(h.Name+"\n"), 0o644); err != nil {
		return fmt.Errorf("systemd host %s: %w", h.Name, err)
	}
	return nil
}

// Boot starts the host: systemd-nspawn boots its systemd in its network
// namespace (the console goes to console.log in its folder). It returns
// once the host's init runs; WaitRunning waits for its services.
func (h *SystemdHost) Boot(ctx context.Context) error {
	if h.Running() {
		return fmt.Errorf("systemd host %s: runs already", h.Name)
	}
	if err := h.mount(); err != nil {
		return err
	}
	console, err := os.OpenFile(filepath.Join(h.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("systemd host %s: %w", h.Name, err)
	}
	// Not ctx's: the host outlives this call. --register=no keeps it out of
	// machined; --keep-unit out of systemd's scopes on this machine. The
	// host has its network namespace to itself, so it may manage it
	// (CAP_NET_ADMIN, which nspawn grants only with --private-network): a
	// pooler leader adds the pair's address, Pacemaker's IPaddr2 and
	// ocf:rampart:vip theirs.
	cmd := exec.Command("systemd-nspawn", "--boot", "--quiet", "--directory="+h.merged(), "--machine=rampart-"+h.Name,
		"--network-namespace-path=/run/netns/"+h.NetNS, "--capability=CAP_NET_ADMIN", "--register=no", "--keep-unit", "--console=read-only")
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Start(); err != nil {
		console.Close()
		return fmt.Errorf("systemd host %s: start systemd-nspawn: %w", h.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); console.Close(); close(exited) }()
	h.nspawn, h.exited = cmd, exited
	return WaitFor(ctx, "systemd of "+h.Name+" running", 50*time.Millisecond, func(context.Context) (bool, string, error) {
		select {
		case <-exited:
			return false, "", fmt.Errorf("systemd host %s: systemd-nspawn exited at boot (see %s)", h.Name, filepath.Join(h.dir, "console.log"))
		default:
		}
		_, err := h.leader()
		return err == nil, fmt.Sprint(err), nil
	})
}

// Running says whether the host's systemd-nspawn runs.
func (h *SystemdHost) Running() bool {
	if h.exited == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// leader is the PID (on this machine) of the host's init.
func (h *SystemdHost) leader() (int, error) {
	if !h.Running() {
		return 0, fmt.Errorf("systemd host %s does not run", h.Name)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.nspawn.Process.Pid, h.nspawn.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("systemd host %s: %w", h.Name, err)
	}
	for _, f := range strings.Fields(string(children)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil && p.Comm == "systemd" {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("systemd host %s: its init has not started yet", h.Name)
}

// Command is argv run inside the host (all its namespaces, as root).
func (h *SystemdHost) Command(ctx context.Context, argv ...string) (*exec.Cmd, error) {
	pid, err := h.leader()
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(pid), "--all", "--"}, argv...)...), nil
}

// Output runs argv inside the host and returns its standard output.
func (h *SystemdHost) Output(ctx context.Context, argv ...string) (string, error) {
	cmd, err := h.Command(ctx, argv...)
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w: %s", strings.Join(argv, " "), h.Name, err, tail(stderr.String(), 300))
	}
	return string(out), nil
}

// WaitRunning waits until the host's systemd says it is up: "running",
// or "degraded" (a unit failed: the error names them).
func (h *SystemdHost) WaitRunning(ctx context.Context) error {
	failed, err := h.WaitBooted(ctx)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("systemd host %s is degraded: failed units: %s", h.Name, strings.Join(failed, " "))
	}
	return nil
}

// WaitBooted waits until the host's systemd has finished booting,
// "running" or "degraded", and returns the units that failed.
func (h *SystemdHost) WaitBooted(ctx context.Context) (failed []string, err error) {
	var state string
	err = WaitFor(ctx, "systemd of "+h.Name+" up", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		if !h.Running() {
			return false, "", fmt.Errorf("systemd host %s stopped while booting (see %s)", h.Name, filepath.Join(h.dir, "console.log"))
		}
		// is-system-running exits non-zero for every state but running.
		out, _ := h.Output(ctx, "systemctl", "is-system-running")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded", "state " + state, nil
	})
	if err != nil {
		return nil, err
	}
	if state == "degraded" {
		out, _ := h.Output(ctx, "systemctl", "--failed", "--no-legend", "--plain")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				failed = append(failed, f[0])
			}
		}
	}
	return failed, nil
}

// Poweroff shuts the host down the way systemd does (SIGRTMIN+4 to its
// init), and waits until it is off.
func (h *SystemdHost) Poweroff(ctx context.Context) error {
	pid, err := h.leader()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.Signal(34+4)); err != nil { // SIGRTMIN+4
		return fmt.Errorf("systemd host %s: poweroff: %w", h.Name, err)
	}
	return h.waitOff(ctx)
}

// Crash kills every process of the host at once: a power cut. Its disk
// keeps what was written.
func (h *SystemdHost) Crash(ctx context.Context) error {
	if !h.Running() {
		return fmt.Errorf("systemd host %s does not run", h.Name)
	}
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := killNamespace(kctx, h.NetNS); err != nil {
		return fmt.Errorf("crash %s: %w", h.Name, err)
	}
	return h.waitOff(ctx)
}

func (h *SystemdHost) waitOff(ctx context.Context) error {
	select {
	case <-h.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd host %s: still running: %w", h.Name, ctx.Err())
	}
}

// Remove ends the host (a crash if it runs), unmounts its overlay and
// deletes its folder.
func (h *SystemdHost) Remove(ctx context.Context) error {
	var errs []error
	if h.Running() {
		errs = append(errs, h.Crash(ctx))
	}
	if mounted(h.merged()) {
		if err := syscall.Unmount(h.merged(), 0); err != nil {
			errs = append(errs, fmt.Errorf("systemd host %s: unmount: %w", h.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(h.dir)
}

// mounted says whether dir is a mount point here.
func mounted(dir string) bool {
	ms, err := mountsBelow(dir)
	return err == nil && slices.Contains(ms, dir)
}

// ScratchNamespace makes network namespace name with only its loopback up,
// for a host that stands alone (a package test's, say), removing one a
// crashed run left first; remove deletes it.
func ScratchNamespace(name string) (remove func(), err error) {
	remove = func() { exec.Command("ip", "netns", "del", name).Run() }
	remove()
	for _, argv := range [][]string{{"ip", "netns", "add", name}, {"ip", "-n", name, "link", "set", "lo", "up"}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			remove()
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
		}
	}
	return remove, nil
}

package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/fence/ipmi"
)

// Simulated BMCs. Each database host gets one: an OpenIPMI ipmi_sim in the
// lab's network namespace, listening on the host's BMC address on the
// management bridge, whose chassis_control program is the lab's rampart
// binary (`rampart lab bmc-power`): power off crashes the host, power on
// boots it. Pacemaker fences with fence_rampart_ipmi through them.

// BMCUser is the BMC login the lab creates (administrator); its password is
// the lab password of the role "bmc".
const (
	BMCUser = "admin"
	bmcRole = "bmc"
	// FenceAction is the lab's stonith-action: a fenced host stays off until
	// someone boots it (`rampart lab fault boot`), as many DBAs want for a
	// database host that misbehaved, and so that tests control when it
	// comes back.
	FenceAction = "off"
)

// fences: the lab has BMCs when it has the rampart binary (their power
// program), and fencing when there is more than one database host (none
// fences itself).
func (c Config) fences() bool { return c.Agent != "" && c.DBHosts > 1 }

func (c Config) bmcDir(host string) string { return filepath.Join(c.Dir(), "bmc", host) }

// bmcEmu is the BMC's one management controller (from OpenIPMI's samples).
const bmcEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// renderBMCConf is ipmi_sim's configuration for host h's BMC. ipmi_sim runs
// chassis_control through sh; every part of it is validated plain text
// (Config.Validate: root path, id; host names are the lab's own).
func renderBMCConf(c Config, h HostSpec, password string) string {
	return fmt.Sprintf("# rampart lab %s: BMC of %s, written by the lab\n", c.ID, h.Name) +
		bmcLANConf(h.Name, h.BMC.String(), bmcGUID(h.NodeID),
			fmt.Sprintf("%s lab bmc-power --root %s --id %s %s", c.labBinary(), c.Root, c.ID, h.Name), password)
}

// bmcLANConf is an ipmi_sim LAN configuration: a BMC named for host on
// addr:623 with BMCUser as its administrator, whose chassis control runs
// chassis (shell text) with the request's words appended.
func bmcLANConf(host, addr, guid, chassis, password string) string {
	return fmt.Sprintf(`name "%[1]s-bmc"
set_working_mc 0x20
  startlan 1
    addr %[2]s 623
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid %[3]s
  endlan
  chassis_control "%[4]s"
  user 2 true "%[5]s" "%[6]s" admin 10 none md2 md5 straight
`, host, addr, guid, chassis, BMCUser, password)
}

// bmcGUID is a stable, distinct GUID per BMC.
func bmcGUID(node int) string { return fmt.Sprintf("72616d70617274%018x", node) }

// labBinary is the rampart binary the hosts run: the lab's copy (see
// prepareOCF), or the installed one.
func (c Config) labBinary() string {
	if c.Installed {
		return InstalledBinary
	}
	return filepath.Join(c.Dir(), "rampart")
}

// startBMCs starts every database host's BMC and waits until each listens.
func (l *Lab) startBMCs(ctx context.Context) error {
	for _, h := range l.cfg.Hosts() {
		if h.BMC.IsValid() {
			if err := l.startBMC(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// startBMC starts h's BMC and waits until it listens.
func (l *Lab) startBMC(ctx context.Context, h HostSpec) error {
	_, err := runBMC(ctx, l.cfg.netNamespace(), l.cfg.bmcDir(h.Name), h.Name, h.BMC, renderBMCConf(l.cfg, h, l.BMCPassword()))
	return err
}

// runBMC starts an ipmi_sim with LAN configuration conf in network
// namespace ns, its files in dir, and waits until it listens on addr.
func runBMC(ctx context.Context, ns, dir, host string, addr netip.Addr, conf string) (pid int, err error) {
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return 0, err
	}
	for name, text := range map[string]string{"lan.conf": conf, "bmc.emu": bmcEmu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return 0, err
		}
	}
	pid, err = startDaemon(filepath.Join(dir, "ipmi_sim.log"), nil, "ip", "netns", "exec", ns,
		"ipmi_sim", "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "bmc.emu"), "-s", filepath.Join(dir, "state"))
	if err != nil {
		return 0, fmt.Errorf("BMC of %s: %w", host, err)
	}
	return pid, WaitFor(ctx, "BMC of "+host+" listening on "+addr.String()+":623", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		if !alive(pid) {
			return false, "", fmt.Errorf("ipmi_sim exited: see %s", filepath.Join(dir, "ipmi_sim.log"))
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
		if err != nil {
			return false, err.Error(), nil
		}
		return listensUDP(string(b), addr.As4(), 623), "not yet", nil
	})
}

// bmcPID finds the ipmi_sim of host's BMC; 0 if none runs.
func (l *Lab) bmcPID(host string) (int, error) {
	procs, err := procsInNamespace(l.cfg.netNamespace())
	if err != nil {
		return 0, err
	}
	conf := filepath.Join(l.cfg.bmcDir(host), "lan.conf")
	for _, p := range procs {
		if p.Comm != "ipmi_sim" {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		if slices.Contains(strings.Split(string(cmdline), "\x00"), conf) {
			return p.PID, nil
		}
	}
	return 0, nil
}

// BMCDown stops host's BMC: fencing host fails until BMCUp.
func (l *Lab) BMCDown(ctx context.Context, host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	if !h.BMC.IsValid() || !l.cfg.fences() {
		return fmt.Errorf("%s has no BMC in lab %s", host, l.cfg.ID)
	}
	pid, err := l.bmcPID(host)
	if err != nil || pid == 0 {
		return fmt.Errorf("BMC of %s: not running (%v)", host, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("BMC of %s: %w", host, err)
	}
	if err := WaitFor(ctx, "BMC of "+host+" gone", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return !alive(pid), "", nil
	}); err != nil {
		return err
	}
	return l.change(func(s *State) { s.BMCDown = setFlag(s.BMCDown, host, true) })
}

// BMCUp starts host's BMC again.
func (l *Lab) BMCUp(ctx context.Context, host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	if pid, err := l.bmcPID(host); err != nil || pid != 0 {
		return fmt.Errorf("BMC of %s: runs already (pid %d) %v", host, pid, err)
	}
	if err := l.startBMC(ctx, h.HostSpec); err != nil {
		return err
	}
	return l.change(func(s *State) { s.BMCDown = setFlag(s.BMCDown, host, false) })
}

func setFlag(m map[string]bool, k string, v bool) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[k] = v
	return m
}

// listensUDP reports whether /proc/net/udp text has a socket bound to
// addr:port.
func listensUDP(text string, addr [4]byte, port int) bool {
	// /proc/net/udp writes the address as the hex of its in-memory
	// (network order) bytes read as a little-endian word.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", addr[3], addr[2], addr[1], addr[0], port)
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == want {
			return true
		}
	}
	return false
}

// fencingConfig is the crm configuration of one fence_rampart_ipmi device
// per database host, each kept off the host it fences, and fencing on.
func (l *Lab) fencingConfig() string {
	var b strings.Builder
	for _, h := range l.cfg.Hosts() {
		if !h.BMC.IsValid() {
			continue
		}
		// power_wait=0: the simulated BMC has crashed the host before it
		// answers; status still confirms it.
		fmt.Fprintf(&b, `primitive fence-%[1]s stonith:%[2]s \
	params ip=%[3]s username=%[4]s password=%[5]q node=%[1]s pcmk_host_list=%[1]s power_wait=0 \
	op monitor interval=60s timeout=20s
location fence-%[1]s-elsewhere fence-%[1]s -inf: %[1]s
`, h.Name, ipmi.Name, h.BMC, BMCUser, l.state.Passwords[bmcRole])
	}
	b.WriteString("property cib-bootstrap-options: stonith-enabled=true\n")
	return b.String()
}

// FenceDevices names the lab's fence devices.
func (l *Lab) FenceDevices() []string {
	if !l.cfg.fences() {
		return nil
	}
	var names []string
	for _, h := range l.cfg.Hosts() {
		if h.BMC.IsValid() {
			names = append(names, "fence-"+h.Name)
		}
	}
	return names
}

// configureFencing loads fencingConfig and waits until every device runs.
func (l *Lab) configureFencing(ctx context.Context) error {
	if _, err := l.crmConfigure(ctx, l.fencingConfig()); err != nil {
		return err
	}
	observer := l.DBHosts()[0]
	return WaitFor(ctx, "every fence device started", 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		s, err := l.Cluster(ctx, observer)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, f := range s.Failures {
			if strings.HasPrefix(f.OpKey, "fence-") {
				return false, "", fmt.Errorf("fence device: %s failed on %s: %s (see the fencer's lines in %s/hosts/*/var-log-pacemaker/pacemaker.log)",
					f.OpKey, f.Node, f.ExitReason, l.cfg.Dir())
			}
		}
		var waiting []string
		for _, d := range l.FenceDevices() {
			started := false
			for _, r := range s.Resources {
				started = started || (r.ID == d && r.Active && r.Role == "Started" && !r.Failed)
			}
			if !started {
				waiting = append(waiting, d)
			}
		}
		return len(waiting) == 0, "not started: " + strings.Join(waiting, " "), nil
	})
}

// ChassisRequest is one call of ipmi_sim's chassis_control program:
// "get NAME…" or "set NAME VALUE …" (OpenIPMI lanserv/extcmd.c).
type ChassisRequest struct {
	Get []string
	Set [][2]string
}

// ParseChassisRequest parses the arguments ipmi_sim passes.
func ParseChassisRequest(args []string) (ChassisRequest, error) {
	var r ChassisRequest
	if len(args) < 2 {
		return r, fmt.Errorf("chassis control: want get NAME… or set NAME VALUE…, got %q", args)
	}
	switch args[0] {
	case "get":
		r.Get = args[1:]
	case "set":
		if len(args)%2 != 1 {
			return r, fmt.Errorf("chassis control: set wants NAME VALUE pairs, got %q", args[1:])
		}
		for i := 1; i < len(args); i += 2 {
			r.Set = append(r.Set, [2]string{args[i], strings.Trim(args[i+1], `"`)})
		}
	default:
		return r, fmt.Errorf("chassis control: unknown verb %q", args[0])
	}
	return r, nil
}

// ChassisControl answers one chassis_control call for host's BMC: power is
// on while the host has processes; off crashes it, on boots it (in the
// background: ipmi_sim waits for this program, and a boot takes seconds),
// reset does both. It returns once the power state reads as set.
func (l *Lab) ChassisControl(ctx context.Context, host string, args []string, out io.Writer) error {
	r, err := ParseChassisRequest(args)
	if err != nil {
		return err
	}
	if _, err := l.host(host); err != nil {
		return err
	}
	return chassis{
		on:   func() bool { return l.poweredOn(host) },
		off:  func(ctx context.Context) error { return l.Crash(ctx, host) },
		boot: func(ctx context.Context) error { return l.bootInBackground(ctx, host) },
	}.answer(ctx, r, out)
}

// chassis is what a simulated BMC powers: a host that is on or off, a
// power cut, a boot.
type chassis struct {
	on   func() bool
	off  func(context.Context) error
	boot func(context.Context) error
}

// answer carries out a chassis_control request and writes what it gets.
func (c chassis) answer(ctx context.Context, r ChassisRequest, out io.Writer) error {
	for _, name := range r.Get {
		switch name {
		case "power":
			fmt.Fprintf(out, "power:%d\n", b2i(c.on()))
		case "boot":
			fmt.Fprintln(out, "boot:default")
		default:
			return fmt.Errorf("chassis control: cannot get %q", name)
		}
	}
	for _, kv := range r.Set {
		switch {
		case kv[0] == "power" && kv[1] == "0":
			if c.on() {
				if err := c.off(ctx); err != nil {
					return err
				}
			}
		case kv[0] == "power" && kv[1] == "1":
			if !c.on() {
				if err := c.boot(ctx); err != nil {
					return err
				}
			}
		case kv[0] == "reset" && kv[1] == "1":
			if c.on() {
				if err := c.off(ctx); err != nil {
					return err
				}
			}
			if err := c.boot(ctx); err != nil {
				return err
			}
		case slices.Contains([]string{"boot", "shutdown", "reset"}, kv[0]):
			// Boot device, soft shutdown request: nothing to simulate.
		default:
			return fmt.Errorf("chassis control: cannot set %s to %q", kv[0], kv[1])
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// poweredOn: a host is on while any process runs in it.
func (l *Lab) poweredOn(host string) bool {
	procs, err := procsInNamespace(l.cfg.hostNamespace(host))
	return err == nil && len(procs) > 0
}

// PowerOnPost is how long a host powered on through its BMC takes to start
// its services (see BootAfter): longer than Corosync takes to see the host
// gone (token, consensus = 1.2 token, a new membership), after which the
// fencer reports the fencing done. Real servers take minutes.
func (c Config) PowerOnPost() time.Duration { return 3*c.Token + time.Second }

// bootInBackground starts `rampart lab fault boot HOST` detached and waits
// until the host's init runs.
func (l *Lab) bootInBackground(ctx context.Context, host string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := startDaemon(filepath.Join(l.cfg.logDir(host), "power-on.log"), nil,
		self, "lab", "fault", "boot", "--root", l.cfg.Root, "--id", l.cfg.ID, "--post", l.cfg.PowerOnPost().String(), host); err != nil {
		return fmt.Errorf("power on %s: %w", host, err)
	}
	return WaitFor(ctx, host+" powered on", 10*time.Millisecond, func(context.Context) (bool, string, error) {
		return l.current().Anchors[host] != 0, "init not started", nil
	})
}

// BMCPassword is the password of BMCUser on every BMC of the lab.
func (l *Lab) BMCPassword() string { return l.Password(bmcRole) }

// FenceHistory is `stonith_admin --history TARGET --verbose` as observer
// sees it ("*" for every target): failed attempts too, a line each.
func (l *Lab) FenceHistory(ctx context.Context, observer, target string) (string, error) {
	return l.runIn(ctx, observer, "", "stonith_admin", "--history", target, "--verbose")
}

// FenceLog returns the fencer's notices and the fence agents' output in
// host's Pacemaker log (for tests that fail).
func (l *Lab) FenceLog(host string) string {
	return l.pacemakerLog(host, func(line string) bool {
		return strings.Contains(line, "pacemaker-fenced") && (strings.Contains(line, "notice:") || strings.Contains(line, "error") || strings.Contains(line, "warning:"))
	})
}

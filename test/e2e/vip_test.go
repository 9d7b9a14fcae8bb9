package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"

	"github.com/rampart-ha/rampart/test/lab"
	"github.com/rampart-ha/rampart/vip"
)

// vipLab is a lab for the VIP tests: hosts n1 n2 n3 and the client as the
// observer, with IPv6 addresses fd00:77::HOST added.
type vipLab struct {
	t *testing.T
	l *lab.Lab
}

const (
	vip4 = "192.168.77.100"
	vip6 = "fd00:77::100"
)

func startVIPLab(t *testing.T) *vipLab {
	c := lab.DefaultConfig()
	c.ID = "e2evip"
	v := &vipLab{t: t, l: startLab(t, c)}
	ctx := deadline(t, time.Minute)
	for _, h := range v.l.Hosts() {
		a := h.Addr.As4()
		v.must(ctx, h.Name, "ip", "-6", "addr", "add", fmt.Sprintf("fd00:77::%d/64", a[3]), "dev", "eth0", "nodad")
	}
	return v
}

// run runs argv on host and returns its combined output.
func (v *vipLab) run(ctx context.Context, host string, argv ...string) (string, error) {
	cmd, err := v.l.Exec(ctx, host, argv...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (v *vipLab) must(ctx context.Context, host string, argv ...string) string {
	v.t.Helper()
	out, err := v.run(ctx, host, argv...)
	if err != nil {
		v.t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
	}
	return out
}

// rampart runs this run's binary on host.
func (v *vipLab) rampart(ctx context.Context, host string, args ...string) (string, error) {
	return v.run(ctx, host, append([]string{agentBinary}, args...)...)
}

func (v *vipLab) mac(ctx context.Context, host string) net.HardwareAddr {
	v.t.Helper()
	m, err := net.ParseMAC(v.must(ctx, host, "cat", "/sys/class/net/eth0/address"))
	if err != nil {
		v.t.Fatal(err)
	}
	return m
}

// neighbour returns the MAC in host's neighbour table for ip ("" if none).
func (v *vipLab) neighbour(ctx context.Context, host, ip string) string {
	out, _ := v.run(ctx, host, "ip", "neigh", "show", ip, "dev", "eth0")
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func (v *vipLab) holds(ctx context.Context, host, ip string) bool {
	out, _ := v.run(ctx, host, "ip", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+ip+"/")
}

// TestVIP runs the VIP scenarios on one lab.
func TestVIP(t *testing.T) {
	v := startVIPLab(t)
	t.Run("IPv4 takeover: both GARP forms on the wire, observer moved without sending", func(t *testing.T) { v.t = t; v.takeover(vip4) })
	t.Run("IPv6 takeover: unsolicited NA on the wire, observer moved without sending", func(t *testing.T) { v.t = t; v.takeover(vip6) })
	t.Run("probe refuses an address another host answers for", func(t *testing.T) { v.t = t; v.probeRefuses() })
	t.Run("bad input changes nothing", func(t *testing.T) { v.t = t; v.badInput() })
	t.Run("ocf-tester passes for ocf:rampart:vip", func(t *testing.T) { v.t = t; v.ocfTester() })
	t.Run("vip run holds the address while PostgreSQL is a writable primary", func(t *testing.T) { v.t = t; v.runHolds() })
}

// takeover: n1 holds the address and the client has n1's MAC for it; n1
// releases, n2 takes it. The client, sending nothing, ends with n2's MAC;
// the bridge saw n2's announcements with the right fields.
func (v *vipLab) takeover(ip string) {
	t := v.t
	ctx := deadline(t, time.Minute)
	n1, n2 := v.mac(ctx, "n1"), v.mac(ctx, "n2")
	if out, err := v.rampart(ctx, "n1", "vip", "up", "--ip", ip); err != nil {
		t.Fatalf("vip up on n1: %v\n%s", err, out)
	}
	ping := []string{"ping", "-c", "1", "-W", "2", ip}
	v.must(ctx, "client", ping...)
	if got := v.neighbour(ctx, "client", ip); got != n1.String() {
		t.Fatalf("client's neighbour entry for %s: %q, want n1's %s", ip, got, n1)
	}
	capture, err := v.l.Capture()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := v.rampart(ctx, "n1", "vip", "down", "--ip", ip); err != nil {
		t.Fatalf("vip down on n1: %v\n%s", err, out)
	}
	if out, err := v.rampart(ctx, "n2", "vip", "up", "--ip", ip); err != nil {
		t.Fatalf("vip up on n2: %v\n%s", err, out)
	}
	if err := lab.WaitFor(ctx, "the client's entry moved to n2", 20*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		got := v.neighbour(ctx, "client", ip)
		return got == n2.String(), "entry: " + got, nil
	}); err != nil {
		t.Error(err)
	}
	frames := capture.Stop()
	addr := netip.MustParseAddr(ip)
	if addr.Is4() {
		checkGARP(t, frames, n2, addr)
	} else {
		checkNA(t, frames, n2, addr)
	}
	if out, err := v.rampart(ctx, "n2", "vip", "down", "--ip", ip); err != nil {
		t.Fatalf("vip down on n2: %v\n%s", err, out)
	}
	if v.holds(ctx, "n2", ip) {
		t.Errorf("n2 still holds %s after vip down", ip)
	}
}

// checkGARP: n2 sent vip.DefaultAnnounce.Count requests (target MAC zero)
// and as many replies (target MAC = sender MAC), broadcast, sender and
// target address the VIP.
func checkGARP(t *testing.T, frames []lab.Frame, mac net.HardwareAddr, ip netip.Addr) {
	t.Helper()
	requests, replies := 0, 0
	var first, last time.Time
	for _, f := range frames {
		fr, p, err := vip.ParseARP(f.Data)
		if err != nil || !bytes.Equal(fr.Source, mac) || p.SenderIP != ip {
			continue
		}
		if !bytes.Equal(fr.Destination, ethernet.Broadcast) || p.TargetIP != ip || !bytes.Equal(p.SenderHardwareAddr, mac) ||
			p.HardwareType != 1 || p.ProtocolType != 0x0800 || p.HardwareAddrLength != 6 || p.IPLength != 4 {
			t.Errorf("malformed announcement: eth %s→%s, %+v", fr.Source, fr.Destination, p)
			continue
		}
		switch {
		case p.Operation == arp.OperationRequest && bytes.Equal(p.TargetHardwareAddr, make([]byte, 6)):
			requests++
		case p.Operation == arp.OperationReply && bytes.Equal(p.TargetHardwareAddr, mac):
			replies++
		default:
			t.Errorf("announcement of neither form: %+v", p)
		}
		if first.IsZero() {
			first = f.At
		}
		last = f.At
	}
	want := vip.DefaultAnnounce.Count
	if requests != want || replies != want {
		t.Errorf("on the wire from %s: %d requests and %d replies for %s, want %d of each", mac, requests, replies, ip, want)
	}
	// 5 pairs 200 ms apart: about 0.9 s from the first frame to the last.
	if span := last.Sub(first); span < 700*time.Millisecond || span > 2*time.Second {
		t.Errorf("announcements spread over %s, want about 0.9 s", span)
	}
}

// checkNA: n2 sent unsolicited neighbour advertisements for the VIP to
// all nodes: hop limit 255, Override set, Solicited clear, the target
// link-layer address n2's MAC.
func checkNA(t *testing.T, frames []lab.Frame, mac net.HardwareAddr, ip netip.Addr) {
	t.Helper()
	n := 0
	for _, f := range frames {
		var fr ethernet.Frame
		if fr.UnmarshalBinary(f.Data) != nil || fr.EtherType != ethernet.EtherTypeIPv6 || !bytes.Equal(fr.Source, mac) || len(fr.Payload) < 40 {
			continue
		}
		h := fr.Payload
		next, hops := h[6], h[7]
		src, _ := netip.AddrFromSlice(h[8:24])
		dst, _ := netip.AddrFromSlice(h[24:40])
		if next != 58 || binary.BigEndian.Uint16(h[4:6]) < 24 {
			continue
		}
		m, err := ndp.ParseMessage(h[40:])
		na, ok := m.(*ndp.NeighborAdvertisement)
		if err != nil || !ok || na.TargetAddress != ip {
			continue
		}
		n++
		var tlla net.HardwareAddr
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				tlla = l.Addr
			}
		}
		if hops != 255 || dst != netip.IPv6LinkLocalAllNodes() || src != ip || !na.Override || na.Solicited || !bytes.Equal(tlla, mac) ||
			!bytes.Equal(fr.Destination, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}) {
			t.Errorf("malformed advertisement: hop limit %d, %s → %s (eth %s), override %v solicited %v, target link-layer %s",
				hops, src, dst, fr.Destination, na.Override, na.Solicited, tlla)
		}
	}
	if n != vip.DefaultAnnounce.Count {
		t.Errorf("on the wire from %s: %d neighbour advertisements for %s, want %d", mac, n, ip, vip.DefaultAnnounce.Count)
	}
}

// probeRefuses: n3 answers for the address (it holds it, put there by
// hand); n2's takeover with probing is refused and adds nothing.
func (v *vipLab) probeRefuses() {
	t := v.t
	ctx := deadline(t, time.Minute)
	v.must(ctx, "n3", "ip", "addr", "add", vip4+"/24", "dev", "eth0")
	defer v.must(ctx, "n3", "ip", "addr", "del", vip4+"/24", "dev", "eth0")
	out, err := v.rampart(ctx, "n2", "vip", "up", "--probe", "--ip", vip4)
	var exit *exec.ExitError
	if err == nil || !strings.Contains(out, "in use by another host") || !strings.Contains(out, v.mac(ctx, "n3").String()) {
		t.Errorf("vip up --probe with n3 holding the address: %v\n%s\nwant a refusal naming n3's MAC", err, out)
	} else if asExit(err, &exit) && exit.ExitCode() == 0 {
		t.Errorf("refusal exited 0")
	}
	if v.holds(ctx, "n2", vip4) {
		t.Errorf("n2 holds %s after a refused takeover", vip4)
	}
	// Without the other holder the probe passes.
	v.must(ctx, "n3", "ip", "addr", "del", vip4+"/24", "dev", "eth0")
	if out, err := v.rampart(ctx, "n2", "vip", "up", "--probe", "--ip", vip4); err != nil {
		t.Errorf("vip up --probe with the address free: %v\n%s", err, out)
	}
	v.must(ctx, "n3", "ip", "addr", "add", vip4+"/24", "dev", "eth0") // for the deferred delete
	if out, err := v.rampart(ctx, "n2", "vip", "down", "--ip", vip4); err != nil {
		t.Errorf("vip down: %v\n%s", err, out)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// badInput: usage errors exit 2, placement errors name the problem; the
// host's addresses are the same afterwards.
func (v *vipLab) badInput() {
	t := v.t
	ctx := deadline(t, time.Minute)
	before := v.must(ctx, "n2", "ip", "-o", "addr", "show")
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--ip", "192.168.77.300"}, 2, "not an IP address"},
		{[]string{"--ip", vip4, "--prefix", "40"}, 2, "out of range"},
		{[]string{"--ip", vip4, "--nic", "eth9"}, 1, `"eth9" not found`},
		{[]string{"--ip", "10.1.2.3"}, 1, "no directly connected subnet"},
		{[]string{"--ip", "10.1.2.3", "--nic", "eth0"}, 1, "outside every subnet of eth0"},
	} {
		out, err := v.rampart(ctx, "n2", append([]string{"vip", "up"}, tt.args...)...)
		var exit *exec.ExitError
		if !asExit(err, &exit) || exit.ExitCode() != tt.code || !strings.Contains(out, tt.msg) {
			t.Errorf("vip up %v: %v\n%s\nwant exit %d with %q", tt.args, err, out, tt.code, tt.msg)
		}
	}
	if after := v.must(ctx, "n2", "ip", "-o", "addr", "show"); after != before {
		t.Errorf("addresses changed:\nbefore %s\nafter  %s", before, after)
	}
}

// ocfTester runs resource-agents' ocf-tester against ocf:rampart:vip on
// n1 (start, stop and monitor twice each, idempotence, exit codes), and
// checks OCF_ERR_CONFIGURED for a malformed address.
func (v *vipLab) ocfTester() {
	t := v.t
	if _, err := exec.LookPath("ocf-tester"); err != nil {
		t.Skip("needs ocf-tester (resource-agents; make deps)")
	}
	ctx := deadline(t, 2*time.Minute)
	out, err := v.run(ctx, "n1", "ocf-tester", "-n", "vip", "-o", "ip=192.168.77.101", "/usr/lib/ocf/resource.d/rampart/vip")
	if err != nil || !strings.Contains(out, "passed all tests") {
		t.Errorf("ocf-tester: %v\n%s", err, out)
	}
	if v.holds(ctx, "n1", "192.168.77.101") {
		t.Errorf("ocf-tester left the address behind")
	}
	cmd, err := v.l.Exec(ctx, "n1", "/usr/lib/ocf/resource.d/rampart/vip", "start")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Environ(), "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE=vip", "OCF_RESKEY_ip=192.168.77.1000")
	b, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !asExit(err, &exit) || exit.ExitCode() != 6 || !strings.Contains(string(b), "ip") {
		t.Errorf("start with ip=192.168.77.1000: %v\n%s\nwant exit 6 (OCF_ERR_CONFIGURED) naming ip", err, b)
	}
}

// daemon is `rampart vip run --when primary` on host, as the postgres
// user with CAP_NET_ADMIN and CAP_NET_RAW (how its systemd unit runs it).
type daemon struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	host string
}

func (v *vipLab) startDaemon(ctx context.Context, host string, env ...string) *daemon {
	v.t.Helper()
	cmd, err := v.l.Exec(ctx, host, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
		"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw", "--",
		agentBinary, "vip", "run", "--when", "primary", "--ip", vip4, "--every", "200ms")
	if err != nil {
		v.t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env...)
	d := &daemon{cmd: cmd, out: &bytes.Buffer{}, host: host}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { _ = v.signal(context.Background(), d, syscall.SIGKILL); _ = cmd.Wait() })
	return d
}

// signal sends sig to the daemon inside its host (nsenter does not pass
// signals on), found by its own command line.
func (v *vipLab) signal(ctx context.Context, d *daemon, sig syscall.Signal) error {
	pid, err := v.run(ctx, d.host, "pgrep", "-u", "postgres", "-f", "vip run --when primary --ip "+vip4)
	if err != nil {
		return fmt.Errorf("find the daemon on %s: %v %s", d.host, err, pid)
	}
	_, err = v.run(ctx, d.host, "kill", "-s", fmt.Sprint(int(sig)), strings.Fields(pid)[0])
	return err
}

// runHolds: on the primary n1 the daemon takes the address, on the standby
// n2 it never does; SIGTERM releases it and exits 0; a primary that stops
// being one (its postmaster killed) loses the address.
func (v *vipLab) runHolds() {
	t := v.t
	ctx := deadline(t, 2*time.Minute)
	holdsWithin := func(host string, want bool, d time.Duration) error {
		w, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return lab.WaitFor(w, fmt.Sprintf("%s holds %s: %v", host, vip4, want), 50*time.Millisecond, func(ctx context.Context) (bool, string, error) {
			return v.holds(ctx, host, vip4) == want, "", nil
		})
	}
	// systemd's side of Type=notify and WatchdogSec=: a datagram socket.
	dir, err := os.MkdirTemp("", "rampart-notify-") // reachable by postgres, unlike t.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o777); err != nil { // the daemon runs as postgres
		t.Fatal(err)
	}
	var mu sync.Mutex
	var messages []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			messages = append(messages, string(buf[:n]))
			mu.Unlock()
		}
	}()
	standby := v.startDaemon(ctx, "n2")
	primary := v.startDaemon(ctx, "n1", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	if err := holdsWithin("n1", true, 5*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, primary.out)
	}
	if err := holdsWithin("n2", true, 2*time.Second); err == nil {
		t.Errorf("the standby n2 took the address\n%s", standby.out)
	}
	if err := v.signal(ctx, primary, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := holdsWithin("n1", false, 3*time.Second); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, primary.out)
	}
	if err := primary.cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM the daemon exited with %v, want 0\n%s", err, primary.out)
	}
	mu.Lock()
	got := strings.Join(messages, " | ")
	mu.Unlock()
	if !strings.HasPrefix(got, "READY=1\nSTATUS=held: PostgreSQL is a writable primary") ||
		strings.Count(got, "WATCHDOG=1") < 3 || !strings.Contains(got, "STATUS=released: stopping") {
		t.Errorf("sd_notify messages: %q\nwant READY=1 with a STATUS first, WATCHDOG=1 at every look, a last STATUS on release", got)
	}

	again := v.startDaemon(ctx, "n1")
	if err := holdsWithin("n1", true, 5*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, again.out)
	}
	if _, err := v.l.KillPostmaster(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := holdsWithin("n1", false, 3*time.Second); err != nil {
		t.Errorf("after the postmaster died: %v\n%s", err, again.out)
	}
	if !strings.Contains(again.out.String(), "released") {
		t.Errorf("the daemon did not say it released the address:\n%s", again.out)
	}
}

package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/rampart-ha/rampart/test/lab"
	"github.com/rampart-ha/rampart/vip"
)

// vipMover takes the address on a host, and gives it up again.
type vipMover struct {
	name       string
	take, drop func(ctx context.Context, l *lab.Lab, host string) error
}

const benchVIP = "192.168.77.100"

func run(ctx context.Context, l *lab.Lab, host string, env []string, argv ...string) error {
	cmd, err := l.Exec(ctx, host, argv...)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s on %s: %w\n%s", strings.Join(argv, " "), host, err, out)
	}
	return nil
}

var ipaddr2Env = []string{"OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE=vip", "OCF_RESKEY_ip=" + benchVIP,
	"OCF_RESKEY_cidr_netmask=24", "OCF_RESKEY_nic=eth0"}

var vipMovers = []vipMover{
	{"ocf:rampart:vip (rampart vip up)",
		func(ctx context.Context, l *lab.Lab, host string) error {
			return run(ctx, l, host, nil, agentBinary, "vip", "up", "--ip", benchVIP, "--nic", "eth0", "--prefix", "24")
		},
		func(ctx context.Context, l *lab.Lab, host string) error {
			return run(ctx, l, host, nil, agentBinary, "vip", "down", "--ip", benchVIP, "--nic", "eth0", "--prefix", "24")
		}},
	{"ocf:heartbeat:IPaddr2 (send_arp)",
		func(ctx context.Context, l *lab.Lab, host string) error {
			return run(ctx, l, host, ipaddr2Env, "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start")
		},
		func(ctx context.Context, l *lab.Lab, host string) error {
			return run(ctx, l, host, ipaddr2Env, "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "stop")
		}},
}

// vipRun is one takeover by n2: from the start of the takeover command to
// the address on n2's interface, to the first announcement on the wire, and
// to the observer's neighbour entry holding n2's MAC.
type vipRun struct {
	added, firstAnnounce, observer time.Duration
}

// TestVIPBench moves the VIP from n1 to n2 with each mover in turn
// (interleaved) and prints medians and ratios.
func TestVIPBench(t *testing.T) {
	selected(t, "vip takeover")
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_RUNS")); err == nil && n > 0 {
		runs = max(n, 3)
	}
	c := lab.DefaultConfig()
	c.ID, c.Agent = "benchvip", agentBinary
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("benchmark needs %s", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Up(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Destroy(context.Background(), c.Root, c.ID, log)
	n2 := hostMAC(t, l, "n2")
	results := map[string][]vipRun{}
	for i := 0; i < runs; i++ {
		for _, m := range vipMovers {
			r, err := takeover(ctx, l, m, n2)
			if err != nil {
				t.Fatalf("%s, run %d: %v", m.name, i+1, err)
			}
			t.Logf("%s, run %d: address added %s, first announcement %s, observer moved %s", m.name, i+1, r.added, r.firstAnnounce, r.observer)
			results[m.name] = append(results[m.name], r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nvip: takeover by n2 after n1 released the address, observer = client (%d runs each, interleaved)\n", runs)
	for _, metric := range []struct {
		name string
		get  func(vipRun) time.Duration
	}{
		{"takeover start → address added", func(r vipRun) time.Duration { return r.added }},
		{"takeover start → first announcement on the wire", func(r vipRun) time.Duration { return r.firstAnnounce }},
		{"address added → first announcement", func(r vipRun) time.Duration { return r.firstAnnounce - r.added }},
		{"takeover start → observer's neighbour entry moved", func(r vipRun) time.Duration { return r.observer }},
	} {
		fmt.Fprintf(&b, "  %s\n", metric.name)
		var meds []time.Duration
		for _, m := range vipMovers {
			var ds []time.Duration
			for _, r := range results[m.name] {
				ds = append(ds, metric.get(r))
			}
			slices.Sort(ds)
			med := ds[len(ds)/2]
			meds = append(meds, med)
			var each []string
			for _, d := range ds {
				each = append(each, d.Round(100*time.Microsecond).String())
			}
			fmt.Fprintf(&b, "    %-40s median %-10s (%s)\n", m.name, med.Round(100*time.Microsecond), strings.Join(each, " "))
		}
		if meds[1] > 0 {
			fmt.Fprintf(&b, "    ratio rampart / IPaddr2 (medians): %.2f\n", float64(meds[0])/float64(meds[1]))
		}
	}
	t.Log(b.String())
	fmt.Println(b.String())
}

func hostMAC(t *testing.T, l *lab.Lab, host string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.InNetwork(host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// takeover primes the observer with n1 holding the address, then times
// n2's takeover by m.
func takeover(ctx context.Context, l *lab.Lab, m vipMover, n2 net.HardwareAddr) (vipRun, error) {
	addr := netip.MustParseAddr(benchVIP)
	if err := vipMovers[0].take(ctx, l, "n1"); err != nil {
		return vipRun{}, err
	}
	if err := run(ctx, l, "client", nil, "ip", "neigh", "flush", "to", benchVIP); err != nil {
		return vipRun{}, err
	}
	if err := run(ctx, l, "client", nil, "ping", "-c", "1", "-W", "2", benchVIP); err != nil {
		return vipRun{}, err
	}
	if err := vipMovers[0].drop(ctx, l, "n1"); err != nil {
		return vipRun{}, err
	}
	var mu sync.Mutex
	var added, moved time.Time
	done := make(chan struct{})
	defer close(done)
	addrs := make(chan netlink.AddrUpdate, 16)
	neighs := make(chan netlink.NeighUpdate, 64)
	if err := l.InNetwork("n2", func() error { return netlink.AddrSubscribe(addrs, done) }); err != nil {
		return vipRun{}, err
	}
	if err := l.InNetwork("client", func() error { return netlink.NeighSubscribe(neighs, done) }); err != nil {
		return vipRun{}, err
	}
	go func() {
		for u := range addrs {
			if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); ok && a.Unmap() == addr && u.NewAddr {
				mu.Lock()
				if added.IsZero() {
					added = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	go func() {
		for u := range neighs {
			if a, ok := netip.AddrFromSlice(u.IP); ok && a.Unmap() == addr && bytes.Equal(u.HardwareAddr, n2) {
				mu.Lock()
				if moved.IsZero() {
					moved = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	capture, err := l.Capture()
	if err != nil {
		return vipRun{}, err
	}
	start := time.Now()
	if err := m.take(ctx, l, "n2"); err != nil {
		capture.Stop()
		return vipRun{}, err
	}
	err = lab.WaitFor(ctx, "the observer's entry on n2", 5*time.Millisecond, func(context.Context) (bool, string, error) {
		mu.Lock()
		defer mu.Unlock()
		return !moved.IsZero() && !added.IsZero(), fmt.Sprintf("added %v moved %v", added, moved), nil
	})
	frames := capture.Stop()
	if err != nil {
		return vipRun{}, err
	}
	var first time.Time
	for _, f := range frames {
		if fr, p, err := vip.ParseARP(f.Data); err == nil && bytes.Equal(fr.Source, n2) && p.SenderIP == addr {
			first = f.At
			break
		}
	}
	if first.IsZero() {
		return vipRun{}, fmt.Errorf("no announcement from n2 on the wire")
	}
	if err := m.drop(ctx, l, "n2"); err != nil {
		return vipRun{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	return vipRun{added: added.Sub(start), firstAnnounce: first.Sub(start), observer: moved.Sub(start)}, nil
}

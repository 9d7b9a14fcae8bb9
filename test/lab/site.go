package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A site is a set of real hosts: each a SystemdHost booted from a
// release's root, plugged into a database network (eth0) and, for hosts
// with a BMC, a management network (eth1) where simulated BMCs (ipmi_sim)
// power them off and on. Nothing runs on a site's hosts until somebody
// installs it there: it is where a deployment is done as an operator
// does it (docs/deploy.md), not a lab the lab configures.

// SiteHost is one host of a site.
type SiteHost struct {
	Name string
	Addr netip.Prefix // eth0, on the database network
	// Mgmt is eth1's address on the management network and BMC its BMC's;
	// both zero for a host without one.
	Mgmt        netip.Prefix
	BMC         netip.Addr
	BMCPassword string
}

// SiteConfig says what a site is made of.
type SiteConfig struct {
	ID      string // its namespaces are rampart-ID-…, found by `rampart lab leftovers`
	Dir     string // the hosts' disks, the BMCs' files
	Cache   string // where release roots are kept (Root)
	Release Release
	Hosts   []SiteHost
	// Client is the address the site's own namespace takes on the
	// database network: where this process's connections come from
	// (Dialer).
	Client netip.Prefix
	// Chassis is the shell text a BMC runs for a power request, the host's
	// name and the request's words appended; it must reach ServeChassis's
	// socket (ChassisClient does).
	Chassis string
}

// Site is a running site.
type Site struct {
	cfg   SiteConfig
	log   *slog.Logger
	mu    sync.Mutex // a host's power: the test's faults and the BMCs' requests
	hosts map[string]*SystemdHost
	// posting is the hosts a BMC powered on that have not booted yet
	// (sitePOST).
	posting map[string]bool
	bmcs    []int
	// partitions is how many partition bridges (brp1…) exist, for Heal.
	partitions int
}

const siteMgmtBridge = "brm"

// StartSite builds cfg's root (once), its networks and BMCs, and boots
// every host, returning when each host's systemd is up.
func StartSite(ctx context.Context, cfg SiteConfig, log *slog.Logger) (*Site, error) {
	if !idPattern.MatchString(cfg.ID) {
		return nil, fmt.Errorf("site %q: an id of lowercase letters and digits", cfg.ID)
	}
	root, err := Root(ctx, cfg.Cache, cfg.Release, log)
	if err != nil {
		return nil, err
	}
	s := &Site{cfg: cfg, log: log, hosts: map[string]*SystemdHost{}, posting: map[string]bool{}}
	if err := s.network(ctx); err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, h := range cfg.Hosts {
		sh, err := NewSystemdHost(root, h.Name, s.namespace(h.Name), filepath.Join(cfg.Dir, "hosts", h.Name))
		if err != nil {
			s.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		s.hosts[h.Name] = sh
	}
	if err := s.startBMCs(ctx); err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	start := time.Now()
	for _, h := range cfg.Hosts {
		if err := s.hosts[h.Name].Boot(ctx); err != nil {
			s.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	errs := make(chan error, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		go func() {
			// A unit of the release's own that failed at boot (Debian 12's
			// journal flush does, now and then, with five hosts booting
			// at once) is the release's business: said, not fatal. What
			// the deployment needs fails its own step.
			failed, err := s.hosts[h.Name].WaitBooted(ctx)
			if len(failed) > 0 {
				log.Warn("a unit failed at boot", "host", h.Name, "units", strings.Join(failed, " "))
			}
			errs <- err
		}()
	}
	var failed []error
	for range cfg.Hosts {
		failed = append(failed, <-errs)
	}
	if err := errors.Join(failed...); err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("site up", "id", cfg.ID, "release", cfg.Release.Name, "hosts", len(cfg.Hosts), "boot", time.Since(start).Round(100*time.Millisecond))
	return s, nil
}

func (s *Site) namespace(host string) string { return NamespacePrefix(s.cfg.ID) + host }

// Namespace is the site's own network namespace: its bridges, its BMCs,
// its client address.
func (s *Site) Namespace() string { return NamespacePrefix(s.cfg.ID) + "net" }

// network makes the bridges, each host's namespace and links, and the
// site's client address.
func (s *Site) network(ctx context.Context) error {
	lnet := s.Namespace()
	steps := [][]string{
		{"ip", "netns", "add", lnet},
		{"ip", "-n", lnet, "link", "set", "lo", "up"},
		{"ip", "-n", lnet, "link", "add", bridge, "type", "bridge"},
		{"ip", "-n", lnet, "link", "set", bridge, "up"},
		{"ip", "-n", lnet, "addr", "add", s.cfg.Client.String(), "dev", bridge},
		{"ip", "-n", lnet, "link", "add", siteMgmtBridge, "type", "bridge"},
		{"ip", "-n", lnet, "link", "set", siteMgmtBridge, "up"},
	}
	for _, h := range s.cfg.Hosts {
		ns := s.namespace(h.Name)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", bridgePort(h.Name), "netns", lnet, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", lnet, "link", "set", bridgePort(h.Name), "master", bridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", h.Addr.String(), "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
		if h.Mgmt.IsValid() {
			steps = append(steps,
				[]string{"ip", "link", "add", mgmtPort(h.Name), "netns", lnet, "type", "veth", "peer", "name", "eth1", "netns", ns},
				[]string{"ip", "-n", lnet, "link", "set", mgmtPort(h.Name), "master", siteMgmtBridge, "up"},
				[]string{"ip", "-n", ns, "addr", "add", h.Mgmt.String(), "dev", "eth1"},
				[]string{"ip", "-n", ns, "link", "set", "eth1", "up"},
				[]string{"ip", "-n", lnet, "addr", "add", fmt.Sprintf("%s/%d", h.BMC, h.Mgmt.Bits()), "dev", siteMgmtBridge},
			)
		}
	}
	for _, st := range steps {
		if _, err := run(ctx, st...); err != nil {
			return fmt.Errorf("site %s network: %w", s.cfg.ID, err)
		}
	}
	return nil
}

// startBMCs starts an ipmi_sim per host with a BMC, in the site's
// namespace, and waits until each listens.
func (s *Site) startBMCs(ctx context.Context) error {
	for i, h := range s.cfg.Hosts {
		if !h.BMC.IsValid() {
			continue
		}
		conf := fmt.Sprintf("# rampart site %s: BMC of %s\n", s.cfg.ID, h.Name) +
			bmcLANConf(h.Name, h.BMC.String(), bmcGUID(100+i), s.cfg.Chassis+" "+h.Name, h.BMCPassword)
		pid, err := runBMC(ctx, s.Namespace(), filepath.Join(s.cfg.Dir, "bmc", h.Name), h.Name, h.BMC, conf)
		if pid != 0 {
			s.bmcs = append(s.bmcs, pid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Host is the named host.
func (s *Site) Host(name string) *SystemdHost { return s.hosts[name] }

func (s *Site) spec(name string) (SiteHost, error) {
	for _, h := range s.cfg.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return SiteHost{}, fmt.Errorf("site %s has no host %q", s.cfg.ID, name)
}

// Dialer's connections start in the site's namespace, from Client.
func (s *Site) Dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return NamespaceDialer(s.Namespace())
}

// Running says whether host is powered on.
func (s *Site) Running(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[host]
	return h != nil && h.Running()
}

// Crash cuts host's power: every process ends at once, and the addresses
// its services added (a VIP) go, as they would with the machine.
func (s *Site) Crash(ctx context.Context, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crash(ctx, host)
}

func (s *Site) crash(ctx context.Context, host string) error {
	spec, err := s.spec(host)
	if err != nil {
		return err
	}
	delete(s.posting, host)
	if h := s.hosts[host]; h.Running() {
		if err := h.Crash(ctx); err != nil {
			return err
		}
	}
	ns := s.namespace(host)
	for _, st := range [][]string{
		{"ip", "-n", ns, "addr", "flush", "dev", "eth0"},
		{"ip", "-n", ns, "addr", "add", spec.Addr.String(), "dev", "eth0"},
		{"ip", "-n", ns, "neigh", "flush", "dev", "eth0"},
	} {
		if _, err := run(ctx, st...); err != nil {
			return fmt.Errorf("crash %s: %w", host, err)
		}
	}
	return nil
}

// Boot powers host on; it returns once its init runs.
func (s *Site) Boot(ctx context.Context, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.spec(host); err != nil {
		return err
	}
	delete(s.posting, host)
	return s.hosts[host].Boot(ctx)
}

// Freeze stops every process of host (SIGSTOP): an OS that hangs. Its
// kernel still answers ARP; only its BMC or a crash ends it.
func (s *Site) Freeze(ctx context.Context, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hosts[host].Running() {
		return fmt.Errorf("freeze %s: it is off", host)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := freezeNamespace(fctx, s.namespace(host)); err != nil {
		return fmt.Errorf("freeze %s: %w", host, err)
	}
	return nil
}

// Close ends every host and BMC and removes the namespaces and disks.
func (s *Site) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, pid := range s.bmcs {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, h := range s.hosts {
		errs = append(errs, h.Remove(ctx))
	}
	errs = append(errs, CleanSite(ctx, s.cfg.ID))
	return errors.Join(errs...)
}

// ChassisSocketEnv names the environment variable ChassisClient finds the
// site's socket in.
const ChassisSocketEnv = "RAMPART_SITE_CHASSIS"

// Serve answers requests on a Unix socket at path until ctx ends. Each
// connection sends one line and gets the answer's lines and a last line
// "ok" or "error: …":
//
//	chassis HOST WORD…   a BMC's power request (ipmi_sim's chassis_control:
//	                     get power, set power 0, …): off crashes, on boots
//	crash|boot|freeze|thaw|cut|restore HOST
//	partition HOST[,HOST…] [/ HOST[,HOST…]…]
//	heal
//	leader HOST          the PID of the host's init, to enter it
func (s *Site) Serve(ctx context.Context, path string) error {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("site %s: control socket: %w", s.cfg.ID, err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.request(ctx, c)
		}
	}()
	return nil
}

func (s *Site) request(ctx context.Context, c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	words := strings.Fields(line)
	var out strings.Builder
	err = s.do(ctx, words, &out)
	s.log.Info("site request", "request", strings.Join(words, " "), "answer", strings.TrimSpace(out.String()), "err", err)
	if err != nil {
		fmt.Fprintf(c, "%serror: %v\n", out.String(), err)
		return
	}
	fmt.Fprintf(c, "%sok\n", out.String())
}

func (s *Site) do(ctx context.Context, words []string, out io.Writer) error {
	if len(words) == 0 {
		return errors.New("empty request")
	}
	verb, args := words[0], words[1:]
	switch verb {
	case "chassis":
		if len(args) < 1 {
			return errors.New("chassis: no host named")
		}
		return s.chassis(ctx, args[0], args[1:], out)
	case "partition":
		return s.Partition(ctx, parseSiteGroups(args))
	case "heal":
		return s.Heal(ctx)
	}
	if len(args) != 1 {
		return fmt.Errorf("%s: name one host", verb)
	}
	host := args[0]
	if _, err := s.spec(host); err != nil {
		return err
	}
	switch verb {
	case "crash":
		return s.Crash(ctx, host)
	case "boot":
		return s.Boot(ctx, host)
	case "freeze":
		return s.Freeze(ctx, host)
	case "thaw":
		return thawNamespace(s.namespace(host))
	case "cut":
		return setPortIn(ctx, s.Namespace(), host, false)
	case "restore":
		return setPortIn(ctx, s.Namespace(), host, true)
	case "leader":
		s.mu.Lock()
		defer s.mu.Unlock()
		pid, err := s.hosts[host].leader()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, pid)
		return nil
	}
	return fmt.Errorf("unknown request %q", verb)
}

// parseSiteGroups reads "a,b / c" (or "a b / c") into groups.
func parseSiteGroups(args []string) [][]string {
	var groups [][]string
	var cur []string
	for _, a := range strings.Fields(strings.ReplaceAll(strings.Join(args, " "), ",", " ")) {
		if a == "/" {
			groups = append(groups, cur)
			cur = nil
			continue
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// Partition moves each group's database-network ports onto a bridge of
// its own; hosts in no group stay together on the first.
func (s *Site) Partition(ctx context.Context, groups [][]string) error {
	for _, g := range groups {
		for _, h := range g {
			if _, err := s.spec(h); err != nil {
				return fmt.Errorf("partition: %w", err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partitions > 0 {
		return errors.New("partition: the site is partitioned already (heal first)")
	}
	if err := partitionIn(ctx, s.Namespace(), groups); err != nil {
		return err
	}
	s.partitions = len(groups)
	return nil
}

// Heal puts every host back on the database bridge and removes the
// partition's bridges.
func (s *Site) Heal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hosts []string
	for _, h := range s.cfg.Hosts {
		hosts = append(hosts, h.Name)
	}
	if err := healIn(ctx, s.Namespace(), hosts, s.partitions); err != nil {
		return err
	}
	s.partitions = 0
	return nil
}

// SiteRequest sends one request to a site's socket (Serve), copies the
// answer's lines to out and returns nil when it was done.
func SiteRequest(socket string, words []string, out io.Writer) error {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("site: %w (is `rampart lab hosts up` running?)", err)
	}
	defer c.Close()
	if _, err := fmt.Fprintln(c, strings.Join(words, " ")); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ok":
			return nil
		case strings.HasPrefix(line, "error: "):
			return errors.New(strings.TrimPrefix(line, "error: "))
		default:
			fmt.Fprintln(out, line)
		}
	}
	return errors.New("site: no answer")
}

// chassis answers one request for host: power is on while the host runs.
func (s *Site) chassis(ctx context.Context, host string, args []string, out io.Writer) error {
	r, err := ParseChassisRequest(args)
	if err != nil {
		return err
	}
	if _, err := s.spec(host); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[host]
	return chassis{
		on:   func() bool { return h.Running() || s.posting[host] },
		off:  func(ctx context.Context) error { return s.crash(ctx, host) },
		boot: func(ctx context.Context) error { return s.powerOn(ctx, host) },
	}.answer(ctx, r, out)
}

// sitePOST is how long a host its BMC powered on takes before it boots (a
// server's firmware takes minutes). The fencer that rebooted it confirms
// its power state first (power_wait, 2 s by default) and reports the
// fencing done; a host whose cluster stack is back before that report
// stops its Pacemaker for good ("we were allegedly just fenced"), which a
// booted container, up in a second, managed against a 1 s Corosync token.
const sitePOST = 5 * time.Second

// powerOn reports host on at once and boots it after sitePOST, unless it
// is powered off or booted meanwhile. s.mu is held.
func (s *Site) powerOn(ctx context.Context, host string) error {
	s.posting[host] = true
	time.AfterFunc(sitePOST, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.posting[host] {
			return
		}
		delete(s.posting, host)
		if err := s.hosts[host].Boot(ctx); err != nil {
			s.log.Error("power on through the BMC: boot failed", "host", host, "err", err)
		}
	})
	return nil
}

// ChassisClient is the program a site's BMCs run (SiteConfig.Chassis): it
// passes args (HOST and the request) to the site's socket and prints the
// answer; its exit code is 0 when the request was done.
func ChassisClient(socket string, args []string, out io.Writer) int {
	if err := SiteRequest(socket, append([]string{"chassis"}, args...), out); err != nil {
		fmt.Fprintln(os.Stderr, "chassis:", err)
		return 1
	}
	return 0
}

// CleanSite removes what a site of id that ended without Close left: its
// processes and namespaces (its disks lived in its test's folder).
func CleanSite(ctx context.Context, id string) error {
	names, err := labNamespaces(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		errs = append(errs, killNamespace(kctx, ns))
		cancel()
		if _, err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package pooler

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/pooler/watchdog"
	"github.com/rampart-ha/rampart/vip"
)

// Load reads the configuration file and its auth file, and builds the
// proxy's configuration; every error names the file (and line) at fault.
func Load(path string, log *slog.Logger) (Config, proxy.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := LoadConfig(path)
	if err != nil {
		return c, proxy.Config{}, err
	}
	f, err := os.Open(c.AuthFile)
	if err != nil {
		return c, proxy.Config{}, fmt.Errorf("auth_file: %w", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return c, proxy.Config{}, fmt.Errorf("auth_file: %w", err)
	} else if why := secretFileExposed(info); why != "" {
		return c, proxy.Config{}, fmt.Errorf("auth_file %s: %s", c.AuthFile, why)
	}
	users, err := proxy.ParseAuthFile(c.AuthFile, f)
	if err != nil {
		return c, proxy.Config{}, err
	}
	if wc, err := watchdog.LoadConfig(path); err == nil && wc.VIP.IsValid() {
		if missing := missingCapabilities(effectiveCapabilities()); len(missing) > 0 {
			return c, proxy.Config{}, fmt.Errorf("%s: [watchdog] vip = %s: holding the address needs %s, which this process lacks: "+
				"`systemctl edit rampart-pooler` and add under [Service]: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW and "+
				"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW (a pooler without a vip runs without them)", path, wc.VIP, strings.Join(missing, " and "))
		}
	}
	if c.ServerTLSMode != "verify-full" && c.ServerTLSMode != "verify-ca" {
		for _, u := range users {
			if u.Password != "" {
				log.Warn("server_tls_sslmode="+c.ServerTLSMode+" with passwords in auth_file: a server that is not the one you meant (a man in the middle) "+
					"can ask for a password in clear text and get it: set server_tls_sslmode=verify-full, or keep only SCRAM verifiers for the clients' users (pass-through)",
					"auth_file", c.AuthFile)
				break
			}
		}
	}
	if u, ok := users[c.HealthCheckUser]; !ok || u.Password == "" {
		return c, proxy.Config{}, fmt.Errorf("%s: health_check_user %q needs a password in %s", path, c.HealthCheckUser, c.AuthFile)
	}
	pc := proxy.Config{
		Users: users, PoolSize: c.DefaultPoolSize, Session: c.PoolMode == "session",
		ServerResetQuery: c.ServerResetQuery, MaxPacketSize: c.MaxPacketSize, ServerIdleTimeout: c.ServerIdleTimeout,
		Rules: route.Rules{WriteFunctions: map[string]bool{}},
		Policy: route.Policy{MaxLagBytes: c.MaxLagBytes, MaxLagTime: c.MaxLagTime, ReadYourWrites: c.ReadYourWrites,
			PrimaryReads: c.PrimaryReads, CausalReads: c.ReadYourWritesLSN, CausalWait: c.ReadYourWritesWait},
		HealthUser: c.HealthCheckUser, HealthDatabase: c.HealthCheckDBName, HealthPeriod: c.HealthCheckPeriod,
		PrimaryWait: c.PrimaryWait, Log: log, AdminUsers: c.AdminUsers,
		MaxClientConn: c.MaxClientConn, QueryWaitTimeout: c.QueryWaitTimeout,
		DurableReads: c.DurableReads, DurableReadTimeout: c.DurableReadTimeout,
	}
	pc.ServerTLSMode, pc.ServerTLSCAFile = c.ServerTLSMode, c.ServerTLSCAFile
	if c.ServerTLSCAFile != "" {
		pem, err := os.ReadFile(c.ServerTLSCAFile)
		if err != nil {
			return c, proxy.Config{}, fmt.Errorf("%s: server_tls_ca_file: %w", path, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return c, proxy.Config{}, fmt.Errorf("%s: server_tls_ca_file %s holds no PEM certificate", path, c.ServerTLSCAFile)
		}
	}
	if c.ClientTLSMode != "disable" {
		cert, err := tls.LoadX509KeyPair(c.ClientTLSCertFile, c.ClientTLSKeyFile)
		if err != nil {
			return c, proxy.Config{}, fmt.Errorf("%s: client_tls_cert_file/client_tls_key_file: %w", path, err)
		}
		pc.ClientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		pc.ClientTLSRequired = c.ClientTLSMode == "require"
	}
	for _, fn := range c.WriteFunctions {
		pc.Rules.WriteFunctions[fn] = true
	}
	for _, n := range c.Nodes {
		pc.Nodes = append(pc.Nodes, proxy.Node{Name: n.Name, Addr: net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), Weight: n.Weight})
	}
	return c, pc, nil
}

// Run serves clients with the configuration at path until ctx ends,
// telling systemd when it is ready (Type=notify).
func Run(ctx context.Context, path string, log *slog.Logger) error {
	c, pc, err := Load(path, log)
	if err != nil {
		return err
	}
	host := c.ListenAddr
	if host == "*" {
		host = ""
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(c.ListenPort)))
	if err != nil {
		return fmt.Errorf("pooler: %w", err)
	}
	var p *proxy.Proxy
	pc.Reload = func() error { return reload(path, c, p, log) }
	dog, dogStopped, err := startWatchdog(ctx, path, log)
	if err != nil {
		return err
	}
	if dog != nil {
		pc.Watchdog = dog.Table
	} else if ping := systemdPinger(); ping != nil {
		// Alone, the pooler tells systemd it is alive from a ticker of its
		// own (a pair member does it from its election loop).
		go every(ctx, 100*time.Millisecond, ping)
	}
	p = proxy.New(pc)
	go p.Monitor(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := pc.Reload(); err != nil {
					log.Error("reload failed; the running configuration is unchanged", "err", err)
				}
			}
		}
	}()
	if c.HTTPListen != "" {
		hl, err := net.Listen("tcp", c.HTTPListen)
		if err != nil {
			return fmt.Errorf("pooler: http_listen: %w", err)
		}
		hs := httpServer(HTTPHandler(p, dog), 5*time.Second)
		go hs.Serve(hl)
		defer hs.Close()
	}
	log.Info("pooler listening", "addr", ln.Addr().String(), "nodes", len(pc.Nodes), "users", len(pc.Users), "pool_mode", c.PoolMode)
	daemon.SdNotify(false, "READY=1\nSTATUS=listening on "+ln.Addr().String())
	// Report the nodes' roles to systemd's status line.
	go every(ctx, 5*time.Second, func() {
		status := ""
		for _, b := range p.Backends() {
			status += fmt.Sprintf("%s=%s ", b.Name, b.Role)
		}
		daemon.SdNotify(false, "STATUS="+status)
	})
	err = p.Serve(ctx, ln)
	daemon.SdNotify(false, "STOPPING=1\nSTATUS=ending sessions at their transaction boundaries")
	log.Info("pooler stopping: sessions end at their next transaction boundary", "timeout", "30s")
	p.Shutdown(30 * time.Second)
	if dogStopped != nil {
		// The leader gives the pair's address back as it goes (it would
		// expire a lease later by itself, and the other pooler's probe
		// waits for that): wait for it, briefly.
		select {
		case <-dogStopped:
		case <-time.After(2 * time.Second):
			log.Warn("the pair's member did not stop in 2 s; its address expires by itself")
		}
	}
	return err
}

// reload re-reads the configuration and applies what can change while
// running; a bad file changes nothing.
func reload(path string, running Config, p *proxy.Proxy, log *slog.Logger) error {
	c, pc, err := Load(path, log)
	if err != nil {
		return err
	}
	var restart []string
	if !slices.Equal(c.Nodes, running.Nodes) {
		restart = append(restart, "[nodes]")
	}
	if c.ListenAddr != running.ListenAddr || c.ListenPort != running.ListenPort {
		restart = append(restart, "listen_addr/listen_port")
	}
	if c.DefaultPoolSize != running.DefaultPoolSize || c.PoolMode != running.PoolMode {
		restart = append(restart, "default_pool_size/pool_mode")
	}
	p.Update(pc.Users, pc.Policy, pc.Rules.WriteFunctions)
	log.Info("configuration reloaded: users, routing policy, write functions", "file", path)
	if len(restart) > 0 {
		log.Warn("changed settings that take a restart to apply", "settings", strings.Join(restart, ", "))
	}
	return nil
}

// startWatchdog runs the pair's member when the file has a [watchdog]
// section: it holds the VIP while it leads. The follower keeps its pools
// and its view of the nodes warm all along, so a takeover needs no
// discovery.
//
// stopped is closed when the member has ended, after ctx, having given
// the address back.
func startWatchdog(ctx context.Context, path string, log *slog.Logger) (dog *watchdog.Watchdog, stopped <-chan struct{}, err error) {
	wc, err := watchdog.LoadConfig(path)
	if err != nil || !wc.Present {
		return nil, nil, err
	}
	key, err := watchdog.ReadKey(wc.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var holder watchdog.Holder
	if wc.VIP.IsValid() {
		// A short probe: the old holder's address expires by itself
		// (Lifetime, renewed every half heartbeat while the lease holds),
		// so the probe only has to see that it has gone.
		probe := vip.Probe{Enabled: wc.VIP.Is4(), Count: 2, Interval: 100 * time.Millisecond, Wait: 200 * time.Millisecond}
		v, err := vip.New(vip.Config{Addr: wc.VIP, Interface: wc.VIPInterface, Announce: vip.DefaultAnnounce, Probe: probe,
			DADTimeout: vip.DefaultDADTimeout, Lifetime: wc.Election().Lease}, log.With("vip", wc.VIP.String()))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: vip: %w", path, err)
		}
		holder = v
	} else if !wc.Me().Witness {
		log.Warn("[watchdog] has no vip: this pooler takes part in the election but holds no address")
	}
	dog, err = watchdog.New(wc, key, holder, log.With("watchdog", wc.Self), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: [watchdog]: %w", path, err)
	}
	dog.Alive = systemdPinger()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := dog.Run(ctx); err != nil {
			log.Error("watchdog stopped", "err", err)
		}
	}()
	log.Info("watchdog member running", "self", wc.Self, "members", len(wc.Members), "heartbeat", wc.Heartbeat, "vip", wc.VIP)
	return dog, done, nil
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// httpServer serves /metrics and /health with deadlines, so that a
// client that opens connections and sends nothing (or a header a byte at
// a time) cannot hold them: headerTimeout for the request's header, twice
// that for the rest, a minute idle between requests.
func httpServer(h http.Handler, headerTimeout time.Duration) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout, ReadTimeout: 2 * headerTimeout,
		WriteTimeout: 2 * headerTimeout, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
}

// secretFileExposed says why a file of secrets is readable by others than
// its owner ("" when it is not), by PostgreSQL's rule for its key files:
// no access for others; the group may read it only when root owns it (a
// root-owned file readable by the service's group).
func secretFileExposed(info os.FileInfo) string {
	perm := info.Mode().Perm()
	st, ok := info.Sys().(*syscall.Stat_t)
	rootOwned := ok && st.Uid == 0
	switch {
	case perm&0o007 != 0:
		return fmt.Sprintf("mode %o lets every user read it: chmod 600 (or 640, root-owned, group of the pooler's user)", perm)
	case perm&0o070 != 0 && !rootOwned:
		return fmt.Sprintf("mode %o lets its group read it: chmod 600, or make root its owner", perm)
	}
	return ""
}

// Capabilities the pair's leader needs for its address: netlink address
// changes (CAP_NET_ADMIN) and raw ARP and neighbour advertisements
// (CAP_NET_RAW).
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// missingCapabilities names those of capNetAdmin and capNetRaw absent from
// an effective capability set.
func missingCapabilities(eff uint64) []string {
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capNetRaw, "CAP_NET_RAW"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
}

// effectiveCapabilities reads this process's CapEff (0 when unreadable).
func effectiveCapabilities() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

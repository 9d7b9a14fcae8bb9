package pooler

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/route"
)

// Load reads the configuration file and its auth file, and builds the
// proxy's configuration; every error names the file (and line) at fault.
func Load(path string, log *slog.Logger) (Config, proxy.Config, error) {
	c, err := LoadConfig(path)
	if err != nil {
		return c, proxy.Config{}, err
	}
	f, err := os.Open(c.AuthFile)
	if err != nil {
		return c, proxy.Config{}, fmt.Errorf("auth_file: %w", err)
	}
	defer f.Close()
	users, err := proxy.ParseAuthFile(c.AuthFile, f)
	if err != nil {
		return c, proxy.Config{}, err
	}
	if u, ok := users[c.HealthCheckUser]; !ok || u.Password == "" {
		return c, proxy.Config{}, fmt.Errorf("%s: health_check_user %q needs a password in %s", path, c.HealthCheckUser, c.AuthFile)
	}
	pc := proxy.Config{
		Users: users, PoolSize: c.DefaultPoolSize, Session: c.PoolMode == "session",
		ServerResetQuery: c.ServerResetQuery, MaxPacketSize: c.MaxPacketSize,
		Rules: route.Rules{WriteFunctions: map[string]bool{}},
		Policy: route.Policy{MaxLagBytes: c.MaxLagBytes, MaxLagTime: c.MaxLagTime, ReadYourWrites: c.ReadYourWrites,
			PrimaryReads: c.PrimaryReads},
		HealthUser: c.HealthCheckUser, HealthDatabase: c.HealthCheckDBName, HealthPeriod: c.HealthCheckPeriod,
		PrimaryWait: c.PrimaryWait, Log: log, AdminUsers: c.AdminUsers,
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
	p := proxy.New(pc)
	go p.Monitor(ctx)
	log.Info("pooler listening", "addr", ln.Addr().String(), "nodes", len(pc.Nodes), "users", len(pc.Users), "pool_mode", c.PoolMode)
	daemon.SdNotify(false, "READY=1\nSTATUS=listening on "+ln.Addr().String())
	go func() {
		// Report the nodes' roles to systemd's status line.
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				status := ""
				for _, b := range p.Backends() {
					status += fmt.Sprintf("%s=%s ", b.Name, b.Role)
				}
				daemon.SdNotify(false, "STATUS="+status)
			}
		}
	}()
	return p.Serve(ctx, ln)
}

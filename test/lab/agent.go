package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PgsqlResource is the primitive id the lab gives ocf:rampart:pgsql; its
// promotable clone is PgsqlResource + "-clone".
const PgsqlResource = "pgsql"

// PgsqlOptions are the agent parameters a lab sets beyond the basics.
type PgsqlOptions map[string]string

// ManagePostgres hands every database host's PostgreSQL to Pacemaker under
// ocf:rampart:pgsql: the lab stops the instances it started, leaves each
// data directory as the agent expects it (no standby.signal, no
// primary_conninfo of the lab's), configures the promotable clone, and waits
// until one instance is promoted and every other streams from it.
func (l *Lab) ManagePostgres(ctx context.Context, extra PgsqlOptions) error {
	if l.cfg.Agent == "" {
		return fmt.Errorf("lab %s was built without the rampart agent: bring it up with an agent binary (rampart lab up --agent)", l.cfg.ID)
	}
	for _, h := range l.DBHosts() {
		if err := l.StopPostgres(ctx, h); err != nil {
			return err
		}
		spec, _ := l.host(h)
		if err := l.writePG(h, PGData+"/lab-node.conf", nodeConf(spec.HostSpec, ""), 0o600); err != nil {
			return err
		}
		if err := os.Remove(l.pgHostPath(h, PGData+"/standby.signal")); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	l.state.PacemakerPG = true
	if err := l.save(); err != nil {
		return err
	}
	if _, err := l.crmConfigure(ctx, l.pgsqlConfig(extra)); err != nil {
		return err
	}
	primary := ""
	err := WaitFor(ctx, "one promoted pgsql instance", pollEvery, func(ctx context.Context) (bool, string, error) {
		s, err := l.Cluster(ctx, l.DBHosts()[0])
		if err != nil {
			return false, err.Error(), nil
		}
		p := s.Promoted(PgsqlResource)
		if len(p) == 1 {
			primary = p[0]
		}
		return len(p) == 1 && len(s.RunningOn(PgsqlResource)) == len(l.DBHosts()), fmt.Sprintf("promoted %v, running %v", p, s.RunningOn(PgsqlResource)), nil
	})
	if err != nil {
		return err
	}
	var standbys []string
	for _, h := range l.DBHosts() {
		if h != primary {
			standbys = append(standbys, h)
		}
	}
	return l.WaitStreaming(ctx, primary, standbys)
}

// pgsqlConfig is the crm configuration of the promotable clone, with the
// lab recipe's monitor intervals (3 s promoted, 4 s unpromoted).
func (l *Lab) pgsqlConfig(extra PgsqlOptions) string {
	var hosts []string
	for _, h := range l.cfg.Hosts() {
		if h.Role == RoleDatabase {
			hosts = append(hosts, h.Name+"="+h.Addr.String())
		}
	}
	params := map[string]string{
		"pgdata": PGData, "bindir": l.cfg.PGBin, "repuser": ReplicationUser,
		"node_hosts": strings.Join(hosts, " "),
	}
	for k, v := range extra {
		params[k] = v
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var p []string
	for _, k := range keys {
		p = append(p, fmt.Sprintf("%s=%q", k, params[k]))
	}
	return fmt.Sprintf(`rsc_defaults rsc-options: resource-stickiness=INFINITY migration-threshold=1
primitive %[1]s ocf:rampart:pgsql \
	params %[2]s \
	op start timeout=60s interval=0 \
	op stop timeout=60s interval=0 \
	op promote timeout=60s interval=0 \
	op demote timeout=60s interval=0 \
	op notify timeout=30s interval=0 \
	op monitor interval=4s timeout=15s \
	op monitor interval=3s role=Promoted timeout=15s
clone %[1]s-clone %[1]s meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=%[3]d clone-node-max=1 notify=true
`, PgsqlResource, strings.Join(p, " "), len(l.DBHosts()))
}

// crmConfigure loads configuration text with `crm configure load update -`
// on the first database host that runs.
func (l *Lab) crmConfigure(ctx context.Context, text string) (string, error) {
	for _, h := range l.DBHosts() {
		if l.state.Crashed[h] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd, err := l.Exec(cctx, h, "crm", "configure", "load", "update", "-")
		if err != nil {
			return "", err
		}
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("crm configure load update on %s: %w: %s\n%s", h, err, tail(string(out), 600), text)
		}
		return string(out), nil
	}
	return "", fmt.Errorf("no database host runs")
}

// AgentLog returns the lines of host's Pacemaker log that the pgsql agent
// wrote (for tests that fail).
func (l *Lab) AgentLog(host string) string {
	b, err := os.ReadFile(filepath.Join(l.cfg.hostDir(host), "var-log-pacemaker", "pacemaker.log"))
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "pgsql_") && (strings.Contains(line, "error output") || strings.Contains(line, "Result of")) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// PostgresLog returns the last lines of the postmaster's start-up log that
// ocf:rampart:pgsql keeps on host (PGDATA.startup.log).
func (l *Lab) PostgresLog(host string, lines int) string {
	b, err := os.ReadFile(l.pgHostPath(host, PGData+".startup.log"))
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

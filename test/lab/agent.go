package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
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
		if err := l.writePG(h, NodeConf, nodeConf(spec.HostSpec, ""), 0o600); err != nil {
			return err
		}
		if err := os.Remove(l.pgHostPath(h, PGData+"/standby.signal")); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := l.change(func(s *State) { s.PacemakerPG = true }); err != nil {
		return err
	}
	if _, err := l.crmConfigure(ctx, l.pgsqlConfig(extra)); err != nil {
		return err
	}
	return l.waitPromotedAndStreaming(ctx)
}

// pgsqlConfig is the crm configuration of the promotable clone, with the
// lab recipe's monitor intervals (3 s promoted, 4 s unpromoted) and
// migration-threshold=1 (a failed primary is not recovered in place: the
// failover goes elsewhere at once). failure-timeout lets a failed instance
// start again by itself a little later: a standby the agent failed because
// it must be repaired (its start does it), a killed standby; an old primary
// is refused again at each try until it is rejoined.
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
	if !l.cfg.fences() {
		// A one-host lab has no fencing (stonith-enabled=false): the agent
		// refuses to promote there without this.
		params["unsafe_promote_without_fencing"] = "true"
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
	op monitor interval=3s role=Promoted timeout=15s \
	meta failure-timeout=15s
clone %[1]s-clone %[1]s meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=%[3]d clone-node-max=1 notify=true
`, PgsqlResource, strings.Join(p, " "), len(l.DBHosts()))
}

// crmConfigure loads configuration text with `crm configure load update -`
// on the first database host that runs.
func (l *Lab) crmConfigure(ctx context.Context, text string) (string, error) {
	st := l.current()
	for _, h := range l.DBHosts() {
		if st.Crashed[h] {
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
	return l.pacemakerLog(host, func(line string) bool {
		return strings.Contains(line, " rampart-pgsql(") || strings.Contains(line, "pgsql_") && (strings.Contains(line, "error output") || strings.Contains(line, "Result of"))
	})
}

// pacemakerLog returns the lines of host's Pacemaker log that keep
// accepts (the file's error instead when it cannot be read).
func (l *Lab) pacemakerLog(host string, keep func(string) bool) string {
	b, err := os.ReadFile(filepath.Join(l.cfg.hostDir(host), "var-log-pacemaker", "pacemaker.log"))
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if keep(line) {
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

// VIP agents AddVIP can configure: both take ip, cidr_netmask and nic.
const (
	IPaddr2    = "ocf:heartbeat:IPaddr2"
	RampartVIP = "ocf:rampart:vip"
)

// AddVIP adds a virtual IP (the lab's first, .100) run by agent (IPaddr2
// or RampartVIP) that follows the promoted instance of clone with advisory
// orders, and waits until PostgreSQL answers on it. critical=false: the
// VIP follows the primary and never holds it in place (with the
// colocation's influence, a move of the promoted role ties at INFINITY
// with the VIP's current node and does not happen).
//
// For ocf:rampart:vip the address leaves the old primary only once the
// new one is promoted (promote, then stop the VIP, then start it): while
// nobody holds it, a client's SYN is lost and waits out TCP's 1 s
// retransmission; while the old node holds it, a client is refused at once
// and tries again. IPaddr2 keeps the ClusterLabs wiki's orders (the VIP
// stops after the demotion), the baseline the benchmarks compare with.
func (l *Lab) AddVIP(ctx context.Context, clone, agent string) error {
	vip := l.cfg.VIP()
	stopAfter := "promote"
	if agent == IPaddr2 {
		stopAfter = "demote"
	}
	text := fmt.Sprintf(`primitive vip %[4]s params ip=%[1]s cidr_netmask=%[2]d nic=eth0 \
	op start timeout=60s interval=0 op monitor interval=10s timeout=60s op stop timeout=60s interval=0 on-fail=block \
	meta critical=false
colocation vip-with-promoted inf: vip %[3]s:Promoted
order promote-then-vip Optional: %[3]s:promote vip:start symmetrical=false
order %[5]s-then-stop-vip Optional: %[3]s:%[5]s vip:stop symmetrical=false
`, vip, l.cfg.Subnet.Bits(), clone, agent, stopAfter)
	if _, err := l.crmConfigure(ctx, text); err != nil {
		return err
	}
	return WaitFor(ctx, "PostgreSQL on the VIP "+vip.String(), pollEvery, func(ctx context.Context) (bool, string, error) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := l.ClientPsql(qctx, vip.String(), "SELECT pg_is_in_recovery()", 2)
		if err != nil {
			return false, err.Error(), nil
		}
		return out == "f", "in recovery: " + out, nil
	})
}

// ManageClusterLabsPgsql hands PostgreSQL to the ClusterLabs agent
// ocf:heartbeat:pgsql (rep_mode=sync, replication through the VIP), set up
// as that agent's documentation describes for a replicated cluster, with the VIP (AddVIP) its standbys
// stream from, so that benchmarks can run it side by side with
// ocf:rampart:pgsql. Its clone is "pgsql-clone" too.
func (l *Lab) ManageClusterLabsPgsql(ctx context.Context) error {
	// resource-agents 4.12 on Pacemaker 2.1.5: crm_attribute misparses
	// "-p -v -INFINITY"; name the resource, in a copy bound over the
	// original inside the hosts only.
	const shellfuncs = "/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs"
	orig, err := os.ReadFile(shellfuncs)
	if err != nil {
		return fmt.Errorf("ClusterLabs agent: %w (is resource-agents installed?)", err)
	}
	fixed := strings.Replace(string(orig), "${HA_SBIN_DIR}/crm_attribute -p $@", `${HA_SBIN_DIR}/crm_attribute -p "${OCF_RESOURCE_INSTANCE}" $@`, 1)
	if fixed == string(orig) {
		return fmt.Errorf("ClusterLabs agent: %s has no ocf_promotion_score line to fix", shellfuncs)
	}
	copyPath := filepath.Join(l.cfg.Dir(), "ocf-shellfuncs")
	if err := os.WriteFile(copyPath, []byte(fixed), 0o644); err != nil {
		return err
	}
	for _, h := range l.DBHosts() {
		hh, _ := l.host(h)
		if _, err := run(ctx, "nsenter", "--target", fmt.Sprint(hh.Anchor), "--mount", "--", "mount", "--bind", copyPath, shellfuncs); err != nil {
			return err
		}
		if err := l.StopPostgres(ctx, h); err != nil {
			return err
		}
		if err := l.writePG(h, NodeConf, nodeConf(hh.HostSpec, ""), 0o600); err != nil {
			return err
		}
		if err := os.Remove(l.pgHostPath(h, PGData+"/standby.signal")); err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := mkdirOwned(l.pgHostPath(h, "/var/lib/postgresql/lab/tmp"), "postgres", "postgres", 0o700); err != nil {
			return err
		}
	}
	if err := l.change(func(s *State) { s.PacemakerPG = true }); err != nil {
		return err
	}
	var nodes []string
	nodes = append(nodes, l.DBHosts()...)
	bin := l.cfg.PGBin
	text := fmt.Sprintf(`rsc_defaults rsc-options: resource-stickiness=INFINITY migration-threshold=1
primitive %[1]s ocf:heartbeat:pgsql \
	params pgctl=%[2]s/pg_ctl psql=%[2]s/psql pgdata=%[3]s config=%[3]s/postgresql.conf \
		tmpdir=/var/lib/postgresql/lab/tmp logfile=/var/lib/postgresql/lab/clusterlabs.log socketdir=/run/postgresql \
		pgport=5432 rep_mode=sync node_list="%[4]s" master_ip=%[5]s repuser=%[6]s restart_on_promote=false \
		primary_conninfo_opt="keepalives_idle=60 keepalives_interval=5 keepalives_count=5" \
	op start timeout=120s interval=0 on-fail=restart \
	op monitor interval=4s timeout=60s on-fail=restart \
	op monitor interval=3s role=Promoted timeout=60s on-fail=restart \
	op promote timeout=120s interval=0 on-fail=restart op demote timeout=120s interval=0 on-fail=stop \
	op stop timeout=120s interval=0 on-fail=block op notify timeout=90s interval=0
clone %[1]s-clone %[1]s meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=%[7]d clone-node-max=1 notify=true
`, PgsqlResource, bin, PGData, strings.Join(nodes, " "), l.cfg.VIP(), ReplicationUser, len(nodes))
	if _, err := l.crmConfigure(ctx, text); err != nil {
		return err
	}
	// Its standbys stream from master_ip: the VIP must follow the primary.
	if err := l.AddVIP(ctx, PgsqlResource+"-clone", IPaddr2); err != nil {
		return err
	}
	if err := l.waitPromotedAndStreaming(ctx); err != nil {
		return err
	}
	// Ready as the recipe defines it: the agent itself has a standby at
	// STREAMING|SYNC (promotion score 100); before that it promotes nobody.
	return WaitFor(ctx, "a STREAMING|SYNC standby in the ClusterLabs agent's attributes", pollEvery, func(ctx context.Context) (bool, string, error) {
		var seen []string
		for _, h := range l.DBHosts() {
			qctx, cancel := context.WithTimeout(ctx, observeTimeout)
			out, err := l.runIn(qctx, l.DBHosts()[0], "", "crm_attribute", "--lifetime=forever", "--node="+h, "--name=pgsql-data-status", "--query", "--quiet")
			cancel()
			if err == nil {
				seen = append(seen, h+"="+strings.TrimSpace(out))
				if strings.TrimSpace(out) == "STREAMING|SYNC" {
					return true, "", nil
				}
			}
		}
		return false, strings.Join(seen, " "), nil
	})
}

// waitPromotedAndStreaming waits for one promoted instance of the pgsql
// clone, every instance running, and every other streaming from it.
func (l *Lab) waitPromotedAndStreaming(ctx context.Context) error {
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

// NodeAttr returns a transient node attribute of node as attrd has it,
// read on node ("" when unset).
func (l *Lab) NodeAttr(ctx context.Context, node, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	values, err := pacemaker.QueryTransient(ctx, l.runner(node), name)
	if err != nil {
		return "", err
	}
	return values[node], nil
}

// WaitSyncStandby waits until ocf:rampart:pgsql reports a standby as
// "sync" (a candidate with every acknowledged commit) and returns it. Right
// after a promotion there is none for a few seconds: a primary lost then
// leaves no candidate (durability holds; availability waits).
func (l *Lab) WaitSyncStandby(ctx context.Context) (string, error) {
	var sync string
	err := WaitFor(ctx, "a synchronous standby in the agent's node attributes", pollEvery, func(ctx context.Context) (bool, string, error) {
		var seen []string
		for _, h := range l.DBHosts() {
			st, err := l.NodeAttr(ctx, h, "rampart-"+PgsqlResource+"-state")
			if err != nil {
				continue
			}
			seen = append(seen, h+"="+st)
			if st == "sync" {
				sync = h
				return true, "", nil
			}
		}
		return false, strings.Join(seen, " "), nil
	})
	return sync, err
}

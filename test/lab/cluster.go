package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ClusterOptions are the Pacemaker cluster options the lab sets, in the seed
// CIB every node starts from. `rampart lab status` prints them as the live
// CIB has them.
func ClusterOptions() []Option {
	return []Option{
		// Off until the lab has configured its fence devices (fence_rampart_ipmi
		// through each host's simulated BMC); a one-host lab has none.
		{"stonith-enabled", "false"},
		{"stonith-action", FenceAction},
		// A partition without quorum stops its resources.
		{"no-quorum-policy", "stop"},
		// An empty CIB waits 20 s for a DC on first start.
		{"dc-deadtime", "2s"},
		{"cluster-recheck-interval", "1min"},
		// Pacemaker runs one action at a time across the cluster once a
		// node's load average per core passes 2 × load-threshold (80 %):
		// most of the time on a busy database host, and a failover's
		// fifteen notifications then run one after another. Its few
		// resources need no throttling.
		{"load-threshold", "1000%"},
	}
}

// Option is one cluster option.
type Option struct{ Name, Value string }

// renderCorosyncConf is the one corosync.conf all database hosts share; each
// corosync finds its node id by matching ring0_addr to its own addresses.
func renderCorosyncConf(c Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# rampart lab %s: written by the lab, same on every node
totem {
	version: 2
	cluster_name: rampart-%s
	transport: knet
	crypto_cipher: none
	crypto_hash: none
	token: %d
	token_coefficient: 0
}

nodelist {
`, c.ID, c.ID, c.Token.Milliseconds())
	for _, h := range c.Hosts() {
		if h.Role != RoleDatabase {
			continue
		}
		fmt.Fprintf(&b, "\tnode {\n\t\tring0_addr: %s\n\t\tname: %s\n\t\tnodeid: %d\n\t}\n", h.Addr, h.Name, h.NodeID)
	}
	b.WriteString("}\n\nquorum {\n\tprovider: corosync_votequorum\n")
	if c.DBHosts == 2 {
		b.WriteString("\ttwo_node: 1\n")
	}
	b.WriteString("}\n\nlogging {\n\tto_stderr: yes\n\tto_logfile: no\n\tto_syslog: no\n\ttimestamp: on\n}\n")
	return b.String()
}

// renderSeedCIB is the CIB every node starts from: the output of
// `cibadmin --empty` (so its feature set is this Pacemaker's own) with the
// lab's cluster options added.
func renderSeedCIB(empty string) (string, error) {
	const slot = "<crm_config/>"
	if !strings.Contains(empty, slot) {
		return "", fmt.Errorf("seed CIB: no %s in the output of cibadmin --empty", slot)
	}
	var b strings.Builder
	b.WriteString("<crm_config>\n      <cluster_property_set id=\"cib-bootstrap-options\">\n")
	for _, o := range ClusterOptions() {
		fmt.Fprintf(&b, "        <nvpair id=\"cib-bootstrap-options-%s\" name=\"%s\" value=\"%s\"/>\n", o.Name, o.Name, o.Value)
	}
	b.WriteString("      </cluster_property_set>\n    </crm_config>")
	return strings.Replace(empty, slot, b.String(), 1), nil
}

// writeClusterConfig writes corosync.conf and the seed CIB of a database host.
func writeClusterConfig(ctx context.Context, c Config, h HostSpec) error {
	dir := c.hostDir(h.Name)
	if err := writeOwned(filepath.Join(dir, "etc-corosync", "corosync.conf"), []byte(renderCorosyncConf(c)), "root", "root", 0o644); err != nil {
		return fmt.Errorf("write corosync.conf of %s: %w", h.Name, err)
	}
	empty, err := run(ctx, "cibadmin", "--empty")
	if err != nil {
		return fmt.Errorf("seed CIB: %w", err)
	}
	cib, err := renderSeedCIB(empty)
	if err != nil {
		return err
	}
	if err := writeOwned(filepath.Join(dir, "var-lib-pacemaker", "cib", "cib.xml"), []byte(cib), "hacluster", "haclient", 0o600); err != nil {
		return fmt.Errorf("write seed CIB of %s: %w", h.Name, err)
	}
	return nil
}

// parseMembers reads `corosync-cmapctl -b runtime.members` and returns the
// members whose status is "joined", by node id.
func parseMembers(out string) []int {
	joined := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		// runtime.members.2.status (str) = joined
		key, value, ok := strings.Cut(line, " = ")
		f := strings.Fields(key)
		if !ok || len(f) == 0 {
			continue
		}
		parts := strings.Split(f[0], ".")
		if len(parts) != 4 || parts[0] != "runtime" || parts[1] != "members" || parts[3] != "status" {
			continue
		}
		id, err := strconv.Atoi(parts[2])
		if err != nil {
			continue
		}
		joined[id] = strings.TrimSpace(value) == "joined"
	}
	var ids []int
	for id, ok := range joined {
		if ok {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

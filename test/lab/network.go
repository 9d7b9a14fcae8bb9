package lab

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The lab network: one bridge, br0, inside the lab's own namespace; each host
// namespace gets a veth whose inside end is eth0 and whose bridge end is
// p-<host>. The machine's own namespace gets nothing, so no lab packet can
// leave the lab. A partition moves bridge ports onto extra bridges (brp1, …);
// a cut link is a bridge port set down, which the host sees as carrier loss.
//
// The management network is a second bridge, brm, in the same namespace:
// each database host's eth1 (bridge end m-<host>) and the simulated BMCs,
// whose addresses brm itself holds. Faults never touch it, as on a site
// whose BMCs sit on their own switch.

const (
	bridge     = "br0"
	mgmtBridge = "brm"
)

func bridgePort(host string) string { return "p-" + host }

func mgmtPort(host string) string { return "m-" + host }

func createNetwork(ctx context.Context, c Config) error {
	lnet := c.netNamespace()
	steps := [][]string{
		{"ip", "netns", "add", lnet},
		{"ip", "-n", lnet, "link", "add", bridge, "type", "bridge"},
		{"ip", "-n", lnet, "link", "set", bridge, "up"},
		{"ip", "-n", lnet, "link", "set", "lo", "up"},
		{"ip", "-n", lnet, "link", "add", mgmtBridge, "type", "bridge"},
		{"ip", "-n", lnet, "link", "set", mgmtBridge, "up"},
	}
	for _, h := range c.Hosts() {
		ns := c.hostNamespace(h.Name)
		port := bridgePort(h.Name)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", port, "netns", lnet, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", lnet, "link", "set", port, "master", bridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", h.Addr, c.Subnet.Bits()), "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
		if h.Mgmt.IsValid() {
			mport := mgmtPort(h.Name)
			steps = append(steps,
				[]string{"ip", "link", "add", mport, "netns", lnet, "type", "veth", "peer", "name", "eth1", "netns", ns},
				[]string{"ip", "-n", lnet, "link", "set", mport, "master", mgmtBridge, "up"},
				[]string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", h.Mgmt, c.Management.Bits()), "dev", "eth1"},
				[]string{"ip", "-n", ns, "link", "set", "eth1", "up"},
				[]string{"ip", "-n", lnet, "addr", "add", fmt.Sprintf("%s/%d", h.BMC, c.Management.Bits()), "dev", mgmtBridge},
			)
		}
	}
	for _, s := range steps {
		if _, err := run(ctx, s...); err != nil {
			return fmt.Errorf("create lab network: %w", err)
		}
	}
	return nil
}

// labNamespaces lists the namespaces of lab id, found by name, so a lab whose
// state file is gone can still be cleaned up.
func labNamespaces(id string) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	prefix := NamespacePrefix(id)
	if id == "" { // every lab's
		prefix = "rampart-"
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// resetAddresses gives host's eth0 what a boot gives it: its lab address
// and nothing else (a crashed host's virtual IPs do not survive a power
// cycle; the namespace does, so they must go by hand).
func resetAddresses(ctx context.Context, c Config, h Host) error {
	ns := c.hostNamespace(h.Name)
	for _, s := range [][]string{
		{"ip", "-n", ns, "addr", "flush", "dev", "eth0"},
		{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", h.Addr, c.Subnet.Bits()), "dev", "eth0"},
		{"ip", "-n", ns, "neigh", "flush", "dev", "eth0"},
	} {
		if _, err := run(ctx, s...); err != nil {
			return fmt.Errorf("boot %s: %w", h.Name, err)
		}
	}
	return nil
}

// setPort sets a host's bridge port up or down.
func setPort(ctx context.Context, c Config, host string, up bool) error {
	return setPortIn(ctx, c.netNamespace(), host, up)
}

// setPortIn sets host's port on the bridge of network namespace ns up or
// down (a cut link: both sides see the carrier go).
func setPortIn(ctx context.Context, ns, host string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if _, err := run(ctx, "ip", "-n", ns, "link", "set", bridgePort(host), state); err != nil {
		return fmt.Errorf("set link of %s %s: %w", host, state, err)
	}
	return nil
}

// partition moves each group of hosts onto a bridge of its own; hosts in no
// group stay on br0.
func partition(ctx context.Context, c Config, groups [][]string) error {
	return partitionIn(ctx, c.netNamespace(), groups)
}

// partitionIn is partition on the bridges of network namespace ns.
func partitionIn(ctx context.Context, ns string, groups [][]string) error {
	for i, g := range groups {
		br := "brp" + strconv.Itoa(i+1)
		if _, err := run(ctx, "ip", "-n", ns, "link", "add", br, "type", "bridge"); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", br, "up"); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		for _, h := range g {
			if _, err := run(ctx, "ip", "-n", ns, "link", "set", bridgePort(h), "master", br); err != nil {
				return fmt.Errorf("partition: move %s: %w", h, err)
			}
		}
	}
	return nil
}

// heal puts every host back on br0 and deletes the partition bridges.
func heal(ctx context.Context, c Config, groups int) error {
	var hosts []string
	for _, h := range c.Hosts() {
		hosts = append(hosts, h.Name)
	}
	return healIn(ctx, c.netNamespace(), hosts, groups)
}

// healIn is heal on the bridges of network namespace ns.
func healIn(ctx context.Context, ns string, hosts []string, groups int) error {
	for _, h := range hosts {
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", bridgePort(h), "master", bridge); err != nil {
			return fmt.Errorf("heal: move %s back: %w", h, err)
		}
	}
	for i := 1; i <= groups; i++ {
		if _, err := run(ctx, "ip", "-n", ns, "link", "del", "brp"+strconv.Itoa(i)); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	return nil
}

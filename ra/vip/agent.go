package vip

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/vip"
)

// Version is the agent's own version in meta-data.
const Version = "0.1"

// Params is the agent's parameter table.
var Params = []ocf.Param{
	{Name: "ip", Type: ocf.String, Required: true, Unique: true, Check: checkAddr,
		Short: "the virtual IP address", Long: "The IPv4 or IPv6 address to hold, e.g. 192.168.1.100 or fd00::100."},
	{Name: "cidr_netmask", Type: ocf.String, Default: "", Check: checkNetmask,
		Short: "prefix length", Long: "The prefix length (24) or an IPv4 netmask (255.255.255.0). Default: that of the directly connected subnet the address lies in."},
	{Name: "nic", Type: ocf.String, Default: "", Check: checkNIC,
		Short: "network interface", Long: "The interface to put the address on. Default: the interface of the directly connected subnet the address lies in (from the routing table)."},
	{Name: "iflabel", Type: ocf.String, Default: "", Check: checkLabel,
		Short: "address label (IPv4)", Long: "Label the address NIC:LABEL (ip addr shows it; at most 15 characters in all)."},
	{Name: "arp_count", Type: ocf.Integer, Default: "5", Min: 0, Max: 1000,
		Short: "announcements at start", Long: "Gratuitous ARP pairs (a request and a reply) or unsolicited neighbour advertisements (IPv6) sent when the address is added. A second burst follows at the first monitor at least arp_repeat_delay later."},
	{Name: "arp_interval", Type: ocf.Integer, Default: "200", Min: 0, Max: 60000,
		Short: "milliseconds between announcements", Long: "Milliseconds between two announcements (IPv4: the request and the reply of a pair are half of it apart)."},
	{Name: "arp_repeat_delay", Type: ocf.Time, Default: "5s",
		Short: "delay of the second burst", Long: "A second burst of arp_count announcements is sent by the first monitor at least this long after start (0: none), for switches and routers that missed the first."},
	{Name: "arp_count_refresh", Type: ocf.Integer, Default: "0", Min: 0, Max: 1000,
		Short: "announcements at every monitor", Long: "Announcements sent at every monitor (0: none), to heal neighbour caches left stale by a split brain."},
	{Name: "run_arping", Type: ocf.Boolean, Default: "false",
		Short: "probe before taking the address (IPv4)", Long: "Before adding the address, send RFC 5227 ARP probes (no arping binary needed; the name is IPaddr2's) and refuse to start when another host answers for it. A frozen host still answers ARP for addresses it holds: probing works with fencing, not instead of it. IPv6 always runs duplicate address detection unless nodad."},
	{Name: "nodad", Type: ocf.Boolean, Default: "false",
		Short: "skip IPv6 duplicate address detection", Long: "Add an IPv6 address without duplicate address detection (no wait, no collision check)."},
	{Name: "allow_outside_subnet", Type: ocf.Boolean, Default: "false",
		Short: "allow an address outside the interface's subnets", Long: "Allow an address that lies outside every subnet of the interface (as a host address unless cidr_netmask says otherwise). Off: such an address is refused, since clients on the interface's networks could not reach it."},
}

func checkAddr(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("not an IP address")
	}
	return vip.Config{Addr: a}.Validate()
}

// parseNetmask reads a prefix length or an IPv4 netmask ("" is 0: from the
// subnet).
func parseNetmask(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 128 {
			return 0, fmt.Errorf("prefix length %d out of range 1–128", n)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("neither a prefix length nor an IPv4 netmask")
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	if v != 0 || ones == 0 {
		return 0, fmt.Errorf("netmask %s is not contiguous", s)
	}
	return ones, nil
}

func checkNetmask(s string) error { _, err := parseNetmask(s); return err }

func checkNIC(s string) error {
	if len(s) > 15 || strings.ContainsAny(s, "/: \t") {
		return fmt.Errorf("not an interface name")
	}
	return nil
}

func checkLabel(s string) error {
	if len(s) > 14 || strings.ContainsAny(s, "/ \t") {
		return fmt.Errorf("not a label")
	}
	return nil
}

// config turns validated values into a vip.Config.
func config(v ocf.Values) (vip.Config, error) {
	a, err := netip.ParseAddr(v.String("ip"))
	if err != nil {
		return vip.Config{}, ocf.Errorf(ocf.ErrConfigured, "parameter ip=%q: not an IP address", v.String("ip"))
	}
	bits, _ := parseNetmask(v.String("cidr_netmask"))
	if bits > a.BitLen() {
		return vip.Config{}, ocf.Errorf(ocf.ErrConfigured, "parameter cidr_netmask=%q: longer than an address of %s (%d bits)", v.String("cidr_netmask"), a, a.BitLen())
	}
	c := vip.Config{
		Addr: a, Bits: bits, Interface: v.String("nic"), Label: v.String("iflabel"),
		AllowOutsideSubnet: v.Bool("allow_outside_subnet"), NoDAD: v.Bool("nodad"),
		Announce: vip.Announce{Count: int(v.Int("arp_count")), Interval: time.Duration(v.Int("arp_interval")) * time.Millisecond,
			RepeatAfter: v.Duration("arp_repeat_delay")},
	}
	if v.Bool("run_arping") {
		c.Probe = vip.DefaultProbe
		c.Probe.Enabled = true
	}
	if err := c.Validate(); err != nil {
		return vip.Config{}, ocf.Errorf(ocf.ErrConfigured, "parameters ip=%q nic=%q iflabel=%q: %v", v.String("ip"), v.String("nic"), v.String("iflabel"), err)
	}
	return c, nil
}

// Ops are the actions meta-data advertises.
var Ops = []ocf.Op{
	{Name: "start", Timeout: 20 * time.Second},
	{Name: "stop", Timeout: 20 * time.Second},
	{Name: "monitor", Timeout: 20 * time.Second, Interval: 10 * time.Second},
}

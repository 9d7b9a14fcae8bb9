package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// State is whether this host holds the address.
type State int

// States. Unknown means the question could not be answered (the interface
// is gone, netlink failed): callers must not treat it as "not held".
const (
	Unknown State = iota
	Held
	NotHeld
)

func (s State) String() string {
	switch s {
	case Held:
		return "held"
	case NotHeld:
		return "not held"
	}
	return "unknown"
}

// VIP is one virtual address on this host's network namespace.
type VIP struct {
	cfg   Config
	place Placement
	log   *slog.Logger
}

// New validates c and places the address (interface, prefix) from this
// host's routes and addresses. Nothing changes on the host.
func New(c Config, log *slog.Logger) (*VIP, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	routes, subnets, err := readNetwork(c.Addr)
	if err != nil {
		return nil, err
	}
	p, err := Place(c, routes, subnets)
	if err != nil {
		return nil, err
	}
	return &VIP{cfg: c, place: p, log: log.With("vip", p.Prefix.String(), "interface", p.Interface)}, nil
}

// Placement says where the address goes.
func (v *VIP) Placement() Placement { return v.place }

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// readNetwork lists the routes and the subnets of every interface.
func readNetwork(a netip.Addr) ([]Route, map[string][]netip.Prefix, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := map[int]string{}
	subnets := map[string][]netip.Prefix{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
		subnets[l.Attrs().Name] = nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			subnets[names[ad.LinkIndex]] = append(subnets[names[ad.LinkIndex]], p)
		}
	}
	rs, err := netlink.RouteList(nil, family(a))
	if err != nil {
		return nil, nil, fmt.Errorf("list routes: %w", err)
	}
	var routes []Route
	for _, r := range rs {
		if r.Dst == nil || r.Type != unix.RTN_UNICAST {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok {
			// Connected subnets: IPv4 ones have scope link, IPv6 ones scope
			// universe; neither has a gateway.
			direct := r.Gw == nil && r.Via == nil && len(r.MultiPath) == 0
			routes = append(routes, Route{Interface: names[r.LinkIndex], Dst: p.Masked(), Direct: direct, Metric: r.Priority})
		}
	}
	return routes, subnets, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

func (v *VIP) link() (netlink.Link, *net.Interface, error) {
	l, err := netlink.LinkByName(v.place.Interface)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w", v.place.Interface, err)
	}
	ifi, err := net.InterfaceByIndex(l.Attrs().Index)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w", v.place.Interface, err)
	}
	return l, ifi, nil
}

func (v *VIP) nlAddr() *netlink.Addr {
	a := v.place.Prefix.Addr()
	ipn := &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(v.place.Prefix.Bits(), a.BitLen())}
	na := &netlink.Addr{IPNet: ipn}
	if v.cfg.Label != "" {
		na.Label = v.place.Interface + ":" + v.cfg.Label
	}
	if a.Is6() && v.cfg.NoDAD {
		na.Flags |= unix.IFA_F_NODAD
	}
	if v.cfg.Lifetime > 0 {
		secs := int((v.cfg.Lifetime + time.Second - 1) / time.Second)
		na.ValidLft, na.PreferedLft = secs, secs
	}
	return na
}

// ErrNotHeld: Renew found the address gone.
var ErrNotHeld = errors.New("the address is not held here")

// Renew extends a held address's lifetime (Config.Lifetime); it fails with
// ErrNotHeld when the address has gone (expired, or removed by someone).
func (v *VIP) Renew() error {
	l, _, err := v.link()
	if err != nil {
		return err
	}
	if _, held, err := v.find(l); err != nil {
		return err
	} else if !held {
		return ErrNotHeld
	}
	if v.cfg.Lifetime == 0 {
		return nil
	}
	if err := netlink.AddrReplace(l, v.nlAddr()); err != nil {
		return fmt.Errorf("renew %s on %s: %w", v.place.Prefix, v.place.Interface, err)
	}
	return nil
}

// find returns the address's flags on the interface, or ok=false.
func (v *VIP) find(l netlink.Link) (flags int, ok bool, err error) {
	addrs, err := netlink.AddrList(l, family(v.cfg.Addr))
	if err != nil {
		return 0, false, err
	}
	for _, ad := range addrs {
		if p, good := prefixOf(ad.IPNet); good && p.Addr() == v.cfg.Addr {
			return ad.Flags, true, nil
		}
	}
	return 0, false, nil
}

// Held says whether this host holds the address on its interface.
func (v *VIP) Held() (State, error) {
	l, _, err := v.link()
	if err != nil {
		return Unknown, err
	}
	_, ok, err := v.find(l)
	switch {
	case err != nil:
		return Unknown, fmt.Errorf("list addresses of %s: %w", v.place.Interface, err)
	case ok:
		return Held, nil
	}
	return NotHeld, nil
}

// Acquire takes the address: an RFC 5227 probe first if configured (an
// answer from another host refuses the takeover and changes nothing), the
// address added, IPv6 duplicate address detection awaited, and the first
// burst of announcements sent before it returns. Already held: it only
// announces. It returns when the address is usable.
func (v *VIP) Acquire(ctx context.Context) error {
	l, ifi, err := v.link()
	if err != nil {
		return err
	}
	if _, held, err := v.find(l); err != nil {
		return err
	} else if held {
		v.log.Info("address already held here: announcing it again")
		return v.Announce(ctx)
	}
	var ac *arpConn
	if v.cfg.Addr.Is4() {
		// Open before adding, so the first announcement follows at once.
		if ac, err = openARP(ifi); err != nil {
			return err
		}
		defer ac.Close()
		if v.cfg.Probe.Enabled {
			if err := ac.probe(ctx, v.cfg.Addr, v.cfg.Probe); err != nil {
				return fmt.Errorf("takeover of %s refused: %w", v.cfg.Addr, err)
			}
		}
	}
	if err := netlink.AddrAdd(l, v.nlAddr()); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", v.place.Prefix, v.place.Interface, err)
	}
	if ac != nil {
		if err := ac.announce(ctx, v.cfg.Addr, v.cfg.Announce.Count, v.cfg.Announce.Interval, v.stillHeld(l)); err != nil {
			v.log.Error("address added but not announced: clients may keep the old MAC", "err", err)
		}
		v.log.Info("address added and announced", "count", v.cfg.Announce.Count, "interval", v.cfg.Announce.Interval)
		return nil
	}
	if err := v.awaitDAD(ctx, l); err != nil {
		return err
	}
	if err := v.advertise(ctx, ifi); err != nil {
		v.log.Error("address added but not advertised: clients may keep the old MAC", "err", err)
	}
	v.log.Info("address added and advertised", "count", v.cfg.Announce.Count, "interval", v.cfg.Announce.Interval)
	return nil
}

// awaitDAD waits while the IPv6 address is tentative; a duplicate found by
// the kernel removes it again and fails.
func (v *VIP) awaitDAD(ctx context.Context, l netlink.Link) error {
	deadline := time.Now().Add(v.cfg.DADTimeout)
	for {
		flags, ok, err := v.find(l)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("%s vanished from %s during duplicate address detection", v.cfg.Addr, v.place.Interface)
		case flags&unix.IFA_F_DADFAILED != 0:
			_ = netlink.AddrDel(l, v.nlAddr())
			return fmt.Errorf("takeover of %s refused: %w (duplicate address detection failed)", v.cfg.Addr, ErrInUse)
		case flags&unix.IFA_F_TENTATIVE == 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%s still tentative after %s of duplicate address detection", v.cfg.Addr, v.cfg.DADTimeout)
		}
		if !pause(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// advertise sends unsolicited neighbour advertisements for the IPv6
// address: to all nodes, Override set, Solicited clear, Router as the
// interface forwards, with the target link-layer address.
func (v *VIP) advertise(ctx context.Context, ifi *net.Interface) error {
	c, _, err := ndp.Listen(ifi, ndp.Addr(v.cfg.Addr.String()))
	if err != nil {
		return fmt.Errorf("NDP socket on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	na := &ndp.NeighborAdvertisement{
		Router: forwarding(ifi.Name), Override: true, TargetAddress: v.cfg.Addr,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	l, _, err := v.link()
	if err != nil {
		return err
	}
	held := v.stillHeld(l)
	for i := 0; i < v.cfg.Announce.Count; i++ {
		if i > 0 && !pause(ctx, v.cfg.Announce.Interval) {
			return ctx.Err()
		}
		if !held() {
			return ErrNotHeld
		}
		if err := c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
			return fmt.Errorf("send neighbour advertisement: %w", err)
		}
	}
	return nil
}

func forwarding(ifName string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifName + "/forwarding")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Announce sends one burst of announcements for a held address.
func (v *VIP) Announce(ctx context.Context) error {
	return v.AnnounceN(ctx, v.cfg.Announce.Count)
}

// AnnounceN sends count announcements for a held address.
func (v *VIP) AnnounceN(ctx context.Context, count int) error {
	c := *v
	c.cfg.Announce.Count = count
	return c.announce(ctx)
}

func (v *VIP) announce(ctx context.Context) error {
	_, ifi, err := v.link()
	if err != nil {
		return err
	}
	if v.cfg.Addr.Is6() {
		return v.advertise(ctx, ifi)
	}
	ac, err := openARP(ifi)
	if err != nil {
		return err
	}
	defer ac.Close()
	l, _, err := v.link()
	if err != nil {
		return err
	}
	return ac.announce(ctx, v.cfg.Addr, v.cfg.Announce.Count, v.cfg.Announce.Interval, v.stillHeld(l))
}

// stillHeld asks the kernel, before each announcement, whether the address
// is still here (it may have expired, or been given back).
func (v *VIP) stillHeld(l netlink.Link) func() bool {
	return func() bool {
		_, held, err := v.find(l)
		return err == nil && held
	}
}

// Release removes the address; absent already is success.
func (v *VIP) Release() error {
	l, _, err := v.link()
	if err != nil {
		return err
	}
	err = netlink.AddrDel(l, v.nlAddr())
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove %s from %s: %w", v.place.Prefix, v.place.Interface, err)
	}
	if err == nil {
		v.log.Info("address removed")
	}
	return nil
}

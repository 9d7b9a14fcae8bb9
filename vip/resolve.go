package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Route is what the choice of interface needs of one route.
type Route struct {
	Interface string
	Dst       netip.Prefix
	Direct    bool // no gateway: a subnet reached directly on Interface
	Metric    int
}

// Placement is where the address goes.
type Placement struct {
	Interface string
	Prefix    netip.Prefix // the address with its prefix length
}

// Place chooses the interface and prefix for c.Addr: the given interface,
// or that of the most specific directly connected route (lowest metric
// among equals), as IPaddr2's findif does; the prefix length of that
// subnet unless c.Bits says otherwise. subnets maps each interface to the
// subnets of its addresses. An address outside every subnet of the
// interface is refused unless c.AllowOutsideSubnet.
func Place(c Config, routes []Route, subnets map[string][]netip.Prefix) (Placement, error) {
	ifName, bits := c.Interface, c.Bits
	if ifName == "" {
		var best *Route
		for i, r := range routes {
			if !r.Direct || !r.Dst.Contains(c.Addr) || r.Dst.Bits() == 0 {
				continue
			}
			if best == nil || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
				best = &routes[i]
			}
		}
		if best == nil {
			return Placement{}, fmt.Errorf("no directly connected subnet contains %s: name the interface (and prefix length) to use", c.Addr)
		}
		ifName = best.Interface
	}
	own, ok := subnets[ifName]
	if !ok {
		return Placement{}, fmt.Errorf("interface %q not found", ifName)
	}
	var inside []netip.Prefix
	for _, s := range own {
		if s.Contains(c.Addr) && s.Addr().Is4() == c.Addr.Is4() {
			inside = append(inside, s)
		}
	}
	slices.SortFunc(inside, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	switch {
	case len(inside) > 0 && bits == 0:
		bits = inside[0].Bits()
	case len(inside) == 0 && !c.AllowOutsideSubnet:
		var have []string
		for _, s := range own {
			have = append(have, s.Masked().String())
		}
		return Placement{}, fmt.Errorf("%s lies outside every subnet of %s (%s): clients there could not reach it; allow it explicitly if that is what you want",
			c.Addr, ifName, strings.Join(have, ", "))
	case bits == 0:
		bits = c.Addr.BitLen()
	}
	p, err := c.Addr.Prefix(bits)
	if err != nil {
		return Placement{}, err
	}
	return Placement{Interface: ifName, Prefix: netip.PrefixFrom(c.Addr, p.Bits())}, nil
}

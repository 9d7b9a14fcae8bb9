package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlace(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	routes := []Route{
		{Interface: "eth0", Dst: pfx("192.168.77.0/24"), Direct: true, Metric: 100},
		{Interface: "eth1", Dst: pfx("192.168.77.0/25"), Direct: true, Metric: 200},
		{Interface: "eth2", Dst: pfx("10.0.0.0/8"), Direct: true, Metric: 5},
		{Interface: "eth3", Dst: pfx("10.0.0.0/8"), Direct: true, Metric: 1},
		{Interface: "eth0", Dst: pfx("0.0.0.0/0"), Metric: 0},
		{Interface: "eth4", Dst: pfx("172.16.0.0/16"), Direct: false},
		{Interface: "eth0", Dst: pfx("fd00::/64"), Direct: true},
	}
	subnets := map[string][]netip.Prefix{
		"eth0": {pfx("192.168.77.11/24"), pfx("fd00::11/64")},
		"eth1": {pfx("192.168.77.12/25")},
		"eth2": {pfx("10.1.1.1/8")},
		"eth3": {pfx("10.1.1.2/8")},
		"eth4": {pfx("172.16.0.1/16")},
	}
	tests := []struct {
		name string
		cfg  Config
		want Placement
		err  string
	}{
		{"the most specific connected subnet wins", Config{Addr: addr("192.168.77.100")}, Placement{"eth1", pfx("192.168.77.100/25")}, ""},
		{"outside the /25 only the /24 contains it", Config{Addr: addr("192.168.77.200")}, Placement{"eth0", pfx("192.168.77.200/24")}, ""},
		{"lowest metric among equals", Config{Addr: addr("10.9.9.9")}, Placement{"eth3", pfx("10.9.9.9/8")}, ""},
		{"the default route is no subnet", Config{Addr: addr("8.8.8.8")}, Placement{}, "no directly connected subnet"},
		{"a gateway route is no subnet", Config{Addr: addr("172.16.5.5")}, Placement{}, "no directly connected subnet"},
		{"a named interface and its subnet's prefix", Config{Addr: addr("192.168.77.100"), Interface: "eth0"}, Placement{"eth0", pfx("192.168.77.100/24")}, ""},
		{"a given prefix length is kept", Config{Addr: addr("192.168.77.100"), Interface: "eth0", Bits: 32}, Placement{"eth0", pfx("192.168.77.100/32")}, ""},
		{"outside the named interface's subnets: refused", Config{Addr: addr("10.9.9.9"), Interface: "eth0"}, Placement{}, "outside every subnet of eth0 (192.168.77.0/24, fd00::/64)"},
		{"outside, allowed: a host route", Config{Addr: addr("10.9.9.9"), Interface: "eth0", AllowOutsideSubnet: true}, Placement{"eth0", pfx("10.9.9.9/32")}, ""},
		{"unknown interface", Config{Addr: addr("192.168.77.100"), Interface: "eth9"}, Placement{}, `interface "eth9" not found`},
		{"IPv6 from its subnet", Config{Addr: addr("fd00::100")}, Placement{"eth0", pfx("fd00::100/64")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Place(tt.cfg, routes, subnets)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	addr := netip.MustParseAddr
	for name, c := range map[string]Config{
		"no address":       {},
		"unspecified":      {Addr: addr("0.0.0.0")},
		"multicast":        {Addr: addr("224.0.0.1")},
		"loopback":         {Addr: addr("::1")},
		"prefix too long":  {Addr: addr("10.0.0.1"), Bits: 33},
		"v6 prefix":        {Addr: addr("fd00::1"), Bits: 129},
		"v6 label":         {Addr: addr("fd00::1"), Label: "x"},
		"long interface":   {Addr: addr("10.0.0.1"), Interface: "abcdefghijklmnop"},
		"long label":       {Addr: addr("10.0.0.1"), Interface: "eth0", Label: "abcdefghijk"},
		"negative count":   {Addr: addr("10.0.0.1"), Announce: Announce{Count: -1}},
		"negative probing": {Addr: addr("10.0.0.1"), Probe: Probe{Wait: -1}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
	}
	if err := (Config{Addr: addr("192.168.77.100"), Bits: 24, Interface: "eth0", Label: "vip"}).Validate(); err != nil {
		t.Errorf("a good config refused: %v", err)
	}
}

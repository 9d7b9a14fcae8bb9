package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config says which address to hold and how to announce it.
type Config struct {
	Addr      netip.Addr
	Bits      int    // prefix length; 0: that of the subnet the address lies in
	Interface string // "": the interface of the subnet the address lies in
	Label     string // IPv4 address label suffix: the label is Interface:Label ("" none)

	// AllowOutsideSubnet lets an address outside every subnet of the
	// interface be added (as /32 or /128 unless Bits says otherwise).
	AllowOutsideSubnet bool

	Announce Announce
	Probe    Probe

	// NoDAD adds an IPv6 address without duplicate address detection.
	NoDAD bool
	// Lifetime, when set, adds the address with that valid lifetime
	// (whole seconds, rounded up): the kernel removes it unless Renew
	// comes first, so a holder that hangs or is killed lets go by itself.
	Lifetime time.Duration
	// DADTimeout bounds the wait for IPv6 duplicate address detection.
	DADTimeout time.Duration
}

// Announce is how the address is made known after it is added.
type Announce struct {
	Count    int           // announcements per burst (IPv4: request+reply pairs)
	Interval time.Duration // between announcements
	// RepeatAfter is the delay of a second burst (0: none): switches and
	// routers that missed the first learn the move then.
	RepeatAfter time.Duration
}

// Probe is an RFC 5227 check that no other host answers for the address
// before it is added (IPv4; for IPv6 the kernel's duplicate address
// detection does it).
type Probe struct {
	Enabled  bool
	Count    int           // probes sent
	Interval time.Duration // between probes
	Wait     time.Duration // listening after the last probe
}

// Defaults: IPaddr2's 5 pairs 200 ms apart, keepalived's second burst
// after 5 s; probes shorter than RFC 5227's 1–2 s, since a takeover waits
// for them (configurable).
var (
	DefaultAnnounce = Announce{Count: 5, Interval: 200 * time.Millisecond, RepeatAfter: 5 * time.Second}
	DefaultProbe    = Probe{Count: 3, Interval: 200 * time.Millisecond, Wait: 400 * time.Millisecond}
)

// DefaultDADTimeout bounds IPv6 duplicate address detection (IPaddr2 waits
// up to 10 s).
const DefaultDADTimeout = 10 * time.Second

// withDefaults fills what is unset.
func (c Config) withDefaults() Config {
	if c.Announce.Count == 0 && c.Announce.Interval == 0 {
		c.Announce = DefaultAnnounce
	}
	if c.Probe.Enabled && c.Probe.Count == 0 {
		enabled := c.Probe.Enabled
		c.Probe = DefaultProbe
		c.Probe.Enabled = enabled
	}
	if c.DADTimeout == 0 {
		c.DADTimeout = DefaultDADTimeout
	}
	return c
}

// Validate checks what can be checked without the network.
func (c Config) Validate() error {
	if c.Lifetime < 0 || c.Lifetime > time.Hour {
		return fmt.Errorf("lifetime %s: use 0 (permanent) to 1h", c.Lifetime)
	}
	switch {
	case !c.Addr.IsValid():
		return errors.New("no address given")
	case c.Addr.IsUnspecified(), c.Addr.IsMulticast(), c.Addr.IsLoopback():
		return fmt.Errorf("%s cannot be a virtual IP (unspecified, multicast or loopback)", c.Addr)
	case c.Addr.Is4() && (c.Bits < 0 || c.Bits > 32):
		return fmt.Errorf("prefix length %d out of range 0–32 for %s", c.Bits, c.Addr)
	case c.Addr.Is6() && (c.Bits < 0 || c.Bits > 128):
		return fmt.Errorf("prefix length %d out of range 0–128 for %s", c.Bits, c.Addr)
	case c.Addr.Is6() && c.Label != "":
		return errors.New("address labels exist for IPv4 only")
	case len(c.Interface) > 15:
		return fmt.Errorf("interface name %q longer than 15 characters", c.Interface)
	case c.Label != "" && len(c.Interface)+1+len(c.Label) > 15:
		return fmt.Errorf("label %q: interface:label must fit 15 characters", c.Label)
	case c.Announce.Count < 0 || c.Announce.Interval < 0 || c.Announce.RepeatAfter < 0:
		return errors.New("announcement count and intervals must not be negative")
	case c.Probe.Count < 0 || c.Probe.Interval < 0 || c.Probe.Wait < 0:
		return errors.New("probe count and intervals must not be negative")
	}
	return nil
}

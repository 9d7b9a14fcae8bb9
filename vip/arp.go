package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

const etherTypeARP = 0x0806

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// GratuitousARP returns the two announcement frames for ip at mac, both
// broadcast: a request with a zero target MAC (RFC 5227's announcement)
// and a reply with target MAC = sender MAC (RFC 5944 §4.6). Linux honours
// both; some switches only one of them.
func GratuitousARP(mac net.HardwareAddr, ip netip.Addr) (request, reply []byte, err error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, ip, zeroMAC, ip)
	if err != nil {
		return nil, nil, err
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, ip, mac, ip)
	if err != nil {
		return nil, nil, err
	}
	if request, err = arpFrame(mac, req); err != nil {
		return nil, nil, err
	}
	reply, err = arpFrame(mac, rep)
	return request, reply, err
}

// ProbeFrame is an RFC 5227 probe for ip: a broadcast request with sender
// address 0.0.0.0, so that it changes no neighbour table.
func ProbeFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, netip.IPv4Unspecified(), zeroMAC, ip)
	if err != nil {
		return nil, err
	}
	return arpFrame(mac, p)
}

func arpFrame(mac net.HardwareAddr, p *arp.Packet) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: b}
	return f.MarshalBinary()
}

// ParseARP reads an Ethernet frame carrying ARP.
func ParseARP(frame []byte) (*ethernet.Frame, *arp.Packet, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		return nil, nil, err
	}
	if f.EtherType != ethernet.EtherTypeARP {
		return nil, nil, fmt.Errorf("ethertype %#04x is not ARP", uint16(f.EtherType))
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, nil, err
	}
	return &f, &p, nil
}

// Conflict says whether an ARP packet seen while probing for ip shows
// another host using (or probing for) it, RFC 5227 §2.1.1: any packet with
// ip as sender address, or a probe for ip from another MAC.
func Conflict(p *arp.Packet, own net.HardwareAddr, ip netip.Addr) bool {
	if p.SenderHardwareAddr.String() == own.String() {
		return false
	}
	if p.SenderIP == ip {
		return true
	}
	return p.Operation == arp.OperationRequest && p.SenderIP == netip.IPv4Unspecified() && p.TargetIP == ip
}

// ErrInUse says another host answers for the address.
var ErrInUse = errors.New("address in use by another host")

// arpConn is a raw ARP socket on one interface.
type arpConn struct {
	c   *packet.Conn
	mac net.HardwareAddr
}

func openARP(ifi *net.Interface) (*arpConn, error) {
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("raw ARP socket on %s (needs CAP_NET_RAW): %w", ifi.Name, err)
	}
	return &arpConn{c: c, mac: ifi.HardwareAddr}, nil
}

func (a *arpConn) Close() error { return a.c.Close() }

func (a *arpConn) send(frame []byte) error {
	_, err := a.c.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast})
	return err
}

// announce sends count request+reply pairs, interval apart (the pair's two
// frames half an interval apart, as send_arp does). The first frame goes
// out at once. held is asked before every frame: a host that stopped (a
// frozen process, thawed) must not announce an address it no longer has.
func (a *arpConn) announce(ctx context.Context, ip netip.Addr, count int, interval time.Duration, held func() bool) error {
	req, rep, err := GratuitousARP(a.mac, ip)
	if err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		if i > 0 && !pause(ctx, interval/2) {
			return ctx.Err()
		}
		if !held() {
			return ErrNotHeld
		}
		if err := a.send(req); err != nil {
			return fmt.Errorf("send gratuitous ARP request: %w", err)
		}
		if !pause(ctx, interval/2) {
			return ctx.Err()
		}
		if !held() {
			return ErrNotHeld
		}
		if err := a.send(rep); err != nil {
			return fmt.Errorf("send gratuitous ARP reply: %w", err)
		}
	}
	return nil
}

// probe sends p.Count probes for ip and listens until p.Wait after the
// last; it returns ErrInUse (with the other host's MAC) on a conflict.
func (a *arpConn) probe(ctx context.Context, ip netip.Addr, p Probe) error {
	frame, err := ProbeFrame(a.mac, ip)
	if err != nil {
		return err
	}
	found := make(chan net.HardwareAddr, 1)
	end := time.Now().Add(time.Duration(max(p.Count-1, 0))*p.Interval + p.Wait)
	if err := a.c.SetReadDeadline(end); err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := a.c.ReadFrom(buf)
			if err != nil {
				close(found)
				return
			}
			if _, pk, err := ParseARP(buf[:n]); err == nil && Conflict(pk, a.mac, ip) {
				found <- pk.SenderHardwareAddr
				return
			}
		}
	}()
	for i := 0; i < p.Count; i++ {
		if i > 0 && !pause(ctx, p.Interval) {
			return ctx.Err()
		}
		if err := a.send(frame); err != nil {
			return fmt.Errorf("send ARP probe: %w", err)
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case mac, ok := <-found:
		if ok {
			return fmt.Errorf("%s: %w (%s answers for it)", ip, ErrInUse, mac)
		}
		return nil
	}
}

// pause waits d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

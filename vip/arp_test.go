package vip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

func TestGratuitousARPFrames(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	ip := netip.MustParseAddr("192.168.77.100")
	req, rep, err := GratuitousARP(mac, ip)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		frame []byte
		op    arp.Operation
		tha   net.HardwareAddr
	}{
		{"request: target MAC zero (RFC 5227 announcement)", req, arp.OperationRequest, zeroMAC},
		{"reply: target MAC = sender MAC (RFC 5944)", rep, arp.OperationReply, mac},
	} {
		f, p, err := ParseARP(tt.frame)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, mac) {
			t.Errorf("%s: ethernet %s → %s, want %s → broadcast", tt.name, f.Source, f.Destination, mac)
		}
		if p.Operation != tt.op || p.HardwareType != 1 || p.ProtocolType != 0x0800 || p.HardwareAddrLength != 6 || p.IPLength != 4 {
			t.Errorf("%s: header %+v", tt.name, p)
		}
		if !bytes.Equal(p.SenderHardwareAddr, mac) || p.SenderIP != ip || p.TargetIP != ip || !bytes.Equal(p.TargetHardwareAddr, tt.tha) {
			t.Errorf("%s: SHA %s SPA %s THA %s TPA %s", tt.name, p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP)
		}
	}
	probe, err := ProbeFrame(mac, ip)
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := ParseARP(probe); err != nil || p.SenderIP != netip.IPv4Unspecified() || p.TargetIP != ip || p.Operation != arp.OperationRequest {
		t.Errorf("probe: %+v %v", p, err)
	}
}

func TestConflict(t *testing.T) {
	own := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip := netip.MustParseAddr("192.168.77.100")
	peer := netip.MustParseAddr("192.168.77.11")
	zero := netip.IPv4Unspecified()
	pk := func(op arp.Operation, sha net.HardwareAddr, spa, tpa netip.Addr) *arp.Packet {
		p, err := arp.NewPacket(op, sha, spa, zeroMAC, tpa)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		p    *arp.Packet
		want bool
	}{
		{"another host answers for it", pk(arp.OperationReply, other, ip, peer), true},
		{"another host announces it", pk(arp.OperationRequest, other, ip, ip), true},
		{"another host probes for it at the same time", pk(arp.OperationRequest, other, zero, ip), true},
		{"our own probe, seen on the socket", pk(arp.OperationRequest, own, zero, ip), false},
		{"someone asks who has it (nobody answered yet)", pk(arp.OperationRequest, other, peer, ip), false},
		{"unrelated traffic", pk(arp.OperationReply, other, peer, ip), false},
	} {
		if got := Conflict(tt.p, own, ip); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzParseARP(f *testing.F) {
	req, rep, _ := GratuitousARP(net.HardwareAddr{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("10.0.0.1"))
	f.Add(req)
	f.Add(rep)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, p, err := ParseARP(b)
		if err == nil && (fr == nil || p == nil) {
			t.Fatal("nil result without error")
		}
	})
}

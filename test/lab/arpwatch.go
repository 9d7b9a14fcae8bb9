package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/arp"
)

// ARPObserver asks, from one lab host every 50 ms, who has an address, and
// records every answer: how tests see which host holds a virtual IP, and
// whether two ever do.
type ARPObserver struct {
	mu      sync.Mutex
	samples []ARPSample
	macs    map[string]string // MAC → host
	stop    func()
}

// ARPSample is one question and its answers.
type ARPSample struct {
	At      time.Time
	Holders []string // hosts that answered (a MAC when no lab host has it)
	Frames  []string // the answers, for a report
}

// ObserveARP starts asking from host (on its eth0) who has ip, until Stop.
func ObserveARP(l *Lab, host string, ip netip.Addr) (*ARPObserver, error) {
	o := &ARPObserver{macs: map[string]string{}}
	for _, h := range l.Hosts() {
		if err := l.InNetwork(h.Name, func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err == nil {
				o.macs[ifi.HardwareAddr.String()] = h.Name
			}
			return err
		}); err != nil {
			return nil, err
		}
	}
	var c *arp.Client
	if err := l.InNetwork(host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	}); err != nil {
		return nil, fmt.Errorf("ARP observer on %s: %w", host, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	o.stop = func() { stop(); c.Close() }
	go func() {
		for ctx.Err() == nil {
			start := time.Now()
			if err := c.Request(ip); err != nil {
				return
			}
			seen := map[string]bool{}
			var frames []string
			c.SetReadDeadline(start.Add(45 * time.Millisecond))
			for {
				p, eth, err := c.Read()
				if err != nil {
					break
				}
				if p.Operation == arp.OperationReply && p.SenderIP == ip {
					name := o.macs[p.SenderHardwareAddr.String()]
					if name == "" {
						name = p.SenderHardwareAddr.String()
					}
					seen[name] = true
					frames = append(frames, fmt.Sprintf("+%s reply from %s (eth %s→%s) for %s→%s", time.Since(start).Round(time.Millisecond),
						name, eth.Source, eth.Destination, p.TargetHardwareAddr, p.TargetIP))
				}
			}
			s := ARPSample{At: start, Frames: frames}
			for h := range seen {
				s.Holders = append(s.Holders, h)
			}
			sort.Strings(s.Holders)
			o.mu.Lock()
			o.samples = append(o.samples, s)
			o.mu.Unlock()
			time.Sleep(time.Until(start.Add(50 * time.Millisecond))) // the sampling period
		}
	}()
	return o, nil
}

// Stop ends the observation.
func (o *ARPObserver) Stop() { o.stop() }

// Transitions lists who answered from t on, each change once.
func (o *ARPObserver) Transitions(t time.Time) string {
	var b strings.Builder
	last := "?"
	for _, s := range o.Since(t) {
		h := strings.Join(s.Holders, "+")
		if h != last {
			fmt.Fprintf(&b, " +%s %q", s.At.Sub(t).Round(10*time.Millisecond), h)
			last = h
		}
	}
	return b.String()
}

// Holder is who answered the latest sample ("" none, "a+b" several).
func (o *ARPObserver) Holder() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) == 0 {
		return ""
	}
	return strings.Join(o.samples[len(o.samples)-1].Holders, "+")
}

// Since returns the samples taken after t.
func (o *ARPObserver) Since(t time.Time) []ARPSample {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []ARPSample
	for _, s := range o.samples {
		if s.At.After(t) {
			out = append(out, s)
		}
	}
	return out
}

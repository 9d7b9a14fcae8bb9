package vip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/vip"
)

// stateDir holds, per resource, when its address was added: the second
// burst of announcements is due arp_repeat_delay later (tmpfs, emptied at
// boot).
const stateDir = "/run/rampart"

// New returns the agent. now is the clock.
func New(now func() time.Time) *ocf.Agent {
	a := &actions{now: now}
	return &ocf.Agent{
		Name: "vip", Version: Version,
		Short: "a virtual IP address, announced with gratuitous ARP or unsolicited neighbour advertisements",
		Long: "Adds and removes a virtual IPv4 or IPv6 address with netlink and announces it: IPv4 with gratuitous ARP in both forms " +
			"(a request with a zero target MAC and a reply with target MAC = sender MAC, as switches differ in which they honour), " +
			"IPv6 with unsolicited neighbour advertisements after duplicate address detection; a second burst follows later. " +
			"Optionally probes (RFC 5227) that no other host answers for the address before taking it. " +
			"Parameters follow ocf:heartbeat:IPaddr2 where the meaning is the same.",
		Params: Params, Ops: Ops,
		Actions: map[string]ocf.Action{"start": a.start, "stop": a.stop, "monitor": a.monitor, "validate-all": a.validate},
	}
}

type actions struct {
	now func() time.Time
}

func (a *actions) open(r *ocf.Request) (*vip.VIP, vip.Config, error) {
	c, err := config(r.Values)
	if err != nil {
		return nil, c, err
	}
	v, err := vip.New(c, r.Log)
	return v, c, err
}

func (a *actions) validate(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	if _, _, err := a.open(r); err != nil {
		return 0, ocf.Errorf(ocf.ErrConfigured, "%v", err)
	}
	return ocf.Success, nil
}

func statePath(rsc string) string { return filepath.Join(stateDir, "vip-"+rsc+".added") }

func (a *actions) start(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	v, _, err := a.open(r)
	if err != nil {
		// The address cannot be placed here (no such interface, outside
		// every subnet): the configuration is wrong for this node.
		return 0, ocf.Errorf(ocf.ErrConfigured, "%v", err)
	}
	if err := v.Acquire(ctx); err != nil {
		if errors.Is(err, vip.ErrInUse) {
			return 0, ocf.Errorf(ocf.ErrGeneric, "%v: fence or stop the other holder first", err)
		}
		return 0, ocf.Errorf(ocf.ErrGeneric, "%v", err)
	}
	if err := os.MkdirAll(stateDir, 0o755); err == nil {
		_ = os.WriteFile(statePath(r.Env.Resource), []byte(strconv.FormatInt(a.now().UnixMilli(), 10)), 0o644)
	}
	return ocf.Success, nil
}

func (a *actions) stop(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	_ = os.Remove(statePath(r.Env.Resource))
	v, _, err := a.open(r)
	if err != nil {
		// Not placeable here, so not held here either.
		r.Log.Warn("stop: address not placeable on this node; nothing to remove", "err", err)
		return ocf.Success, nil
	}
	if err := v.Release(); err != nil {
		return 0, ocf.Errorf(ocf.ErrGeneric, "%v", err)
	}
	return ocf.Success, nil
}

func (a *actions) monitor(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	v, c, err := a.open(r)
	if err != nil {
		if r.Env.Probe() {
			return ocf.NotRunning, nil
		}
		return 0, ocf.Errorf(ocf.ErrGeneric, "%v", err)
	}
	st, err := v.Held()
	switch st {
	case vip.NotHeld:
		return ocf.NotRunning, nil
	case vip.Unknown:
		return 0, ocf.Errorf(ocf.ErrGeneric, "cannot tell whether %s is held: %v", c.Addr, err)
	}
	if !r.Env.Probe() {
		a.announceDue(ctx, v, c, r)
	}
	return ocf.Success, nil
}

// announceDue sends the second burst once it is due, and the refresh
// announcements (arp_count_refresh) at every monitor. Failures are logged:
// the address is held, which is what monitor reports.
func (a *actions) announceDue(ctx context.Context, v *vip.VIP, c vip.Config, r *ocf.Request) {
	burst := 0
	path := statePath(r.Env.Resource)
	if b, err := os.ReadFile(path); err == nil && c.Announce.RepeatAfter > 0 {
		added, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if a.now().Sub(time.UnixMilli(added)) >= c.Announce.RepeatAfter {
			burst = c.Announce.Count
			_ = os.Remove(path)
		}
	}
	burst = max(burst, int(r.Values.Int("arp_count_refresh")))
	if burst == 0 {
		return
	}
	if err := v.AnnounceN(ctx, burst); err != nil {
		r.Log.Warn("announcing the address failed", "err", err)
		return
	}
	r.Log.Debug(fmt.Sprintf("announced %s %d times", c.Addr, burst))
}

// Main runs the agent as Pacemaker calls it (as root: netlink and raw
// sockets need CAP_NET_ADMIN and CAP_NET_RAW).
func Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int {
	return int(ocf.Run(ctx, New(time.Now), args, environ, stdout, stderr, log))
}

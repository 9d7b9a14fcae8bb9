package fence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Power is a plug's state.
type Power int

// Power states.
const (
	Off Power = iota
	On
)

func (p Power) String() string {
	if p == On {
		return "ON"
	}
	return "OFF"
}

// Device is one fence device, connected.
type Device interface {
	Status(ctx context.Context) (Power, error)
	SetPower(ctx context.Context, on bool) error
	Close() error
}

// Agent is a fence agent: its description, its own parameters (Common
// are added), and how to reach its device.
type Agent struct {
	Name, Short, Long, VendorURL string
	Params                       []Param
	// Open connects to the device the options describe.
	Open func(ctx context.Context, o Options) (Device, error)
	// Nodes are the nodes the device fences, from the options ("" means
	// any plug is accepted: a single-node device configured without its
	// node's name).
	Nodes func(o Options) []string
	// Validate checks the options further (validate-all and before every
	// action).
	Validate func(o Options) error
}

func (a *Agent) params() []Param {
	out := slices.Clone(Common)
	for _, p := range a.Params {
		i := slices.IndexFunc(out, func(q Param) bool { return q.Name == p.Name })
		if i >= 0 {
			out[i] = p // an agent's own default (power_wait) wins
			continue
		}
		out = append(out, p)
	}
	return out
}

// Exit codes, as fence-agents use them.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitOff    = 2 // status: off
)

// ErrNotOurs says the target is not a node this device fences.
var ErrNotOurs = errors.New("not a node this device fences")

// Run runs the agent: options from args when there are any, else from
// stdin; then the action. It returns the exit code.
func (a *Agent) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) int {
	params := a.params()
	var o Options
	var err error
	if len(args) > 0 {
		for _, h := range args {
			if h == "-h" || h == "--help" {
				fmt.Fprint(stdout, a.Usage())
				return ExitOK
			}
		}
		o, err = ParseArgs(args, params)
	} else {
		var warnings []string
		o, warnings, err = ParseStdin(stdin, params)
		for _, w := range warnings {
			fmt.Fprintln(stderr, w)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "Failed: %v\n", err)
		return ExitFailed
	}
	if o["action"] == "meta-data" || o["action"] == "metadata" || o["action"] == "manpage" {
		if err := a.WriteMetadata(stdout); err != nil {
			return ExitFailed
		}
		return ExitOK
	}
	if o, err = withDefaults(o, params); err != nil {
		fmt.Fprintf(stderr, "Failed: %v\n", err)
		return ExitFailed
	}
	if a.Validate != nil {
		if err := a.Validate(o); err != nil {
			fmt.Fprintf(stderr, "Failed: %v\n", err)
			return ExitFailed
		}
	}
	if !o.Bool("verbose") {
		log = slog.New(slog.DiscardHandler)
	}
	code, msg := a.act(ctx, o, stdout, log)
	if msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	return code
}

// target is the node an action is for: the plug (Pacemaker's host
// argument) or else nodename.
func target(o Options) string {
	if o["plug"] != "" {
		return o["plug"]
	}
	return o["nodename"]
}

func (a *Agent) ours(o Options) error {
	t := target(o)
	nodes := a.Nodes(o)
	if t == "" || len(nodes) == 0 || slices.Contains(nodes, t) {
		return nil
	}
	return fmt.Errorf("%s is %w (it fences %s)", t, ErrNotOurs, strings.Join(nodes, ", "))
}

// act runs one action and returns the exit code and a message for stderr.
func (a *Agent) act(ctx context.Context, o Options, stdout io.Writer, log *slog.Logger) (int, string) {
	action := o["action"]
	switch action {
	case "validate-all":
		return ExitOK, ""
	case "list", "list-status":
		nodes := a.Nodes(o)
		if len(nodes) == 0 {
			return ExitFailed, "Failed: this device does not know its node's name: set the node option"
		}
		if action == "list" {
			for _, n := range nodes {
				fmt.Fprintf(stdout, "%s,\n", n)
			}
			return ExitOK, ""
		}
	case "on", "off", "reboot", "status", "monitor":
	default:
		return ExitFailed, fmt.Sprintf("Failed: Unrecognised action '%s'", action)
	}
	if action != "monitor" {
		if err := a.ours(o); err != nil {
			return ExitFailed, "Failed: " + err.Error()
		}
	}
	if d := o.Duration("delay"); d > 0 && (action == "off" || action == "reboot") {
		log.Info("delay before fencing", "delay", d)
		if !sleep(ctx, d) {
			return ExitFailed, "Failed: timed out during the delay"
		}
	}
	dev, err := a.Open(ctx, o)
	if err != nil {
		return ExitFailed, fmt.Sprintf("Failed: Unable to connect/login to fencing device: %v", err)
	}
	defer dev.Close()
	switch action {
	case "status":
		p, err := dev.Status(ctx)
		if err != nil {
			return ExitFailed, fmt.Sprintf("Failed: Unable to obtain correct plug status or plug is not available: %v", err)
		}
		fmt.Fprintf(stdout, "Status: %s\n", p)
		if p == Off {
			return ExitOff, ""
		}
		return ExitOK, ""
	case "list-status":
		p, err := dev.Status(ctx)
		state := p.String()
		if err != nil {
			state = "UNKNOWN"
		}
		for _, n := range a.Nodes(o) {
			fmt.Fprintf(stdout, "%s,,%s\n", n, state)
		}
		return ExitOK, ""
	case "monitor":
		if _, err := dev.Status(ctx); err != nil {
			return ExitFailed, fmt.Sprintf("Failed: device does not answer: %v", err)
		}
		return ExitOK, ""
	case "on", "off":
		if err := a.setAndConfirm(ctx, dev, o, action == "on", log); err != nil {
			return ExitFailed, "Failed: " + err.Error()
		}
		fmt.Fprintf(stdout, "Success: Powered %s\n", strings.ToUpper(action))
		return ExitOK, ""
	}
	// reboot: off (confirmed) then on; success once off is confirmed.
	if err := a.setAndConfirm(ctx, dev, o, false, log); err != nil {
		return ExitFailed, "Failed: " + err.Error()
	}
	if err := a.setAndConfirm(ctx, dev, o, true, log); err != nil {
		fmt.Fprintf(stdout, "Success: Rebooted\n")
		return ExitOK, "Warning: powered off but not back on: " + err.Error()
	}
	fmt.Fprintf(stdout, "Success: Rebooted\n")
	return ExitOK, ""
}

// setAndConfirm sets the power and polls the status until it reads back:
// power_wait after the command, then every statusPoll for power_timeout.
// Already in that state: nothing to do.
func (a *Agent) setAndConfirm(ctx context.Context, dev Device, o Options, on bool, log *slog.Logger) error {
	want := Off
	if on {
		want = On
	}
	if p, err := dev.Status(ctx); err == nil && p == want {
		log.Info("already in the wanted state", "power", want)
		return nil
	}
	if err := dev.SetPower(ctx, on); err != nil {
		return fmt.Errorf("power %s: %w", want, err)
	}
	if !sleep(ctx, o.Duration("power_wait")) {
		return ctx.Err()
	}
	deadline := time.Now().Add(o.Duration("power_timeout"))
	for {
		p, err := dev.Status(ctx)
		if err == nil && p == want {
			log.Info("power state confirmed", "power", want)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("power still not %s after power_timeout=%s (last status %v, %v)", want, o["power_timeout"], p, err)
		}
		if !sleep(ctx, statusPoll) {
			return ctx.Err()
		}
	}
}

// statusPoll is how often setAndConfirm asks a device for its power state.
// fence-agents ask every second; a host whose BMC reports it off a moment
// after the command then waits out most of that second before Pacemaker
// may promote anything (measured in the lab: 1 s of about 4 on a frozen
// primary). A status query is one small request to the BMC.
const statusPoll = 200 * time.Millisecond

func sleep(ctx context.Context, d time.Duration) bool {
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

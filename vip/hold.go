package vip

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Condition says whether this host should hold the address now, and why.
// An error means it cannot tell.
type Condition func(ctx context.Context) (ok bool, why string, err error)

// Step is what Hold does after one look.
type Step int

// Steps.
const (
	Keep Step = iota
	Take
	Drop
)

func (s Step) String() string { return [...]string{"keep", "take", "drop"}[s] }

// HoldStep decides from the condition and the address's state. A
// condition that cannot be told counts as false: an address kept on a
// guess could answer beside the real primary's (fail safe; the cost is an
// outage while the check fails). An unknown address state is acted on as
// the condition says: taking and dropping are both idempotent.
func HoldStep(ok bool, condErr error, st State) Step {
	want := ok && condErr == nil
	switch {
	case want && st != Held:
		return Take
	case !want && st != NotHeld:
		return Drop
	}
	return Keep
}

// HoldOptions tunes Hold.
type HoldOptions struct {
	Every      time.Duration // between looks (default 1 s)
	Reannounce time.Duration // a burst this often while held (0: never)
	// Report, when set, hears every change ("held: …", "released: …") and
	// is called once after the first look (systemd READY and STATUS).
	Report func(status string, first bool)
	// Alive, when set, is called after every look (systemd WATCHDOG).
	Alive func()
}

// Hold keeps the address while cond holds and releases it when it stops
// holding, when ctx ends (SIGTERM, SIGINT) and when Hold fails: every way
// out releases. It returns ctx's error after a clean stop.
func (v *VIP) Hold(ctx context.Context, cond Condition, o HoldOptions) (err error) {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	defer func() {
		if rerr := v.Release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if o.Report != nil {
			o.Report("released: stopping", false)
		}
	}()
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	var heldSince, lastBurst time.Time
	repeatDone := true
	first := true
	last := ""
	for {
		look, cancel := context.WithTimeout(ctx, o.Every)
		ok, why, cerr := cond(look)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, serr := v.Held()
		step := HoldStep(ok, cerr, st)
		status := ""
		switch step {
		case Take:
			if err := v.Acquire(ctx); err != nil {
				status = fmt.Sprintf("not held: taking it failed: %v", err)
				v.log.Error("taking the address failed", "err", err)
			} else {
				status = "held: " + why
				heldSince, lastBurst, repeatDone = time.Now(), time.Now(), v.cfg.Announce.RepeatAfter == 0
			}
		case Drop:
			if err := v.Release(); err != nil {
				return fmt.Errorf("release %s: %w", v.cfg.Addr, err)
			}
			if cerr != nil {
				why = fmt.Sprintf("cannot tell whether to hold it: %v", cerr)
			}
			status = "released: " + why
		default:
			switch {
			case st == Held && !repeatDone && time.Since(heldSince) >= v.cfg.Announce.RepeatAfter:
				repeatDone, lastBurst = true, time.Now()
				v.announceLogged(ctx)
			case st == Held && o.Reannounce > 0 && time.Since(lastBurst) >= o.Reannounce:
				lastBurst = time.Now()
				v.announceLogged(ctx)
			}
			if serr != nil {
				v.log.Warn("address state unknown", "err", serr)
			}
			if st == Held {
				status = "held: " + why
			} else {
				status = "not held: " + why
				if cerr != nil {
					status = fmt.Sprintf("not held: cannot tell whether to hold it: %v", cerr)
				}
			}
		}
		if status != last || first {
			v.log.Info(status)
			if o.Report != nil {
				o.Report(status, first)
			}
			last, first = status, false
		}
		if o.Alive != nil {
			o.Alive()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (v *VIP) announceLogged(ctx context.Context) {
	if err := v.Announce(ctx); err != nil {
		v.log.Warn("announcing the address failed", "err", err)
	}
}

package lab

import (
	"context"
	"fmt"
	"time"
)

// WaitFor polls check every interval until it reports done, returns an
// error, or ctx ends. On timeout the error names what was awaited and the
// last state check described, so a failing test says what it saw.
func WaitFor(ctx context.Context, what string, every time.Duration, check func(context.Context) (done bool, state string, err error)) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := "(not checked yet)"
	for {
		done, state, err := check(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if state != "" {
			last = state
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w; last state: %s", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

package vip

import (
	"errors"
	"testing"
)

func TestHoldStep(t *testing.T) {
	cannot := errors.New("connection refused")
	for _, tt := range []struct {
		name string
		ok   bool
		err  error
		st   State
		want Step
	}{
		{"condition holds, address absent: take it", true, nil, NotHeld, Take},
		{"condition holds, address here: keep", true, nil, Held, Keep},
		{"condition holds, state unknown: take (idempotent)", true, nil, Unknown, Take},
		{"condition false, address here: drop it", false, nil, Held, Drop},
		{"condition false, address absent: nothing", false, nil, NotHeld, Keep},
		{"condition false, state unknown: drop (idempotent)", false, nil, Unknown, Drop},
		{"cannot tell: fail safe, drop", true, cannot, Held, Drop},
		{"cannot tell, absent: stay away", true, cannot, NotHeld, Keep},
	} {
		if got := HoldStep(tt.ok, tt.err, tt.st); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

package chaos

import (
	"slices"
	"testing"
	"time"
)

func TestPlanIsReproducible(t *testing.T) {
	a, err := Plan(42, 20, Kinds())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Plan(42, 20, Kinds())
	if !slices.Equal(a, b) {
		t.Errorf("same seed, two plans:\n%v\n%v", a, b)
	}
	c, _ := Plan(43, 20, Kinds())
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same plan %v", a)
	}
}

func TestPlanKeepsToItsKindsAndBounds(t *testing.T) {
	for seed := range uint64(50) {
		steps, err := Plan(seed, 12, []Kind{Freeze, PoolerFreeze, Overlap})
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != 12 {
			t.Fatalf("seed %d: %d steps, want 12", seed, len(steps))
		}
		for i, s := range steps {
			if s.Kind != Freeze && s.Kind != PoolerFreeze {
				t.Errorf("seed %d step %d: kind %s not asked for", seed, i, s.Kind)
			}
			if !slices.Contains(roles(s.Kind), s.Target) {
				t.Errorf("seed %d step %d: %s cannot hit the %s", seed, i, s.Kind, s.Target)
			}
			if s.Hold < MinHold || s.Hold > MaxHold {
				t.Errorf("seed %d step %d: hold %v out of [%v, %v]", seed, i, s.Hold, MinHold, MaxHold)
			}
			if s.Overlap {
				if i == len(steps)-1 {
					t.Errorf("seed %d: the last step overlaps nothing", seed)
					continue
				}
				next := steps[i+1]
				if !light(next.Kind) || next.Target == s.Target || next.Overlap {
					t.Errorf("seed %d step %d: %v overlapped by %v", seed, i, s, next)
				}
			}
		}
	}
}

func TestPlanOverlapsOnlyWhenAsked(t *testing.T) {
	for seed := range uint64(50) {
		steps, _ := Plan(seed, 10, []Kind{Freeze, PostmasterKill})
		for _, s := range steps {
			if s.Overlap {
				t.Fatalf("seed %d: overlap without asking: %v", seed, steps)
			}
		}
	}
	overlapped := false
	for seed := range uint64(50) {
		steps, _ := Plan(seed, 10, Kinds())
		overlapped = overlapped || slices.ContainsFunc(steps, func(s Step) bool { return s.Overlap })
	}
	if !overlapped {
		t.Error("50 seeds over every kind and not one overlap")
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Kind
		bad      bool
	}{
		{name: "empty means every kind", in: "", want: Kinds()},
		{name: "all means every kind", in: "all", want: Kinds()},
		{name: "a list keeps its order and drops repeats", in: "freeze, host-crash,freeze", want: []Kind{Freeze, HostCrash}},
		{name: "an unknown kind is refused", in: "freeze,meteor", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKinds(tt.in)
			if (err != nil) != tt.bad {
				t.Fatalf("ParseKinds(%q): error %v, want error %v", tt.in, err, tt.bad)
			}
			if !tt.bad && !slices.Equal(got, tt.want) {
				t.Errorf("ParseKinds(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if _, err := Plan(1, 3, []Kind{Overlap}); err == nil {
		t.Error("a plan of overlaps alone: no error")
	}
}

// Recovering hurries some steps' successors (1–5 s after the heal, never
// after the last step); without it no step hurries and the plan of the
// other kinds is the one it was.
func TestPlanRecovering(t *testing.T) {
	steps, err := Plan(7, 40, []Kind{Freeze, HostCrash, Recovering})
	if err != nil {
		t.Fatal(err)
	}
	hurried := 0
	for i, s := range steps {
		if s.Hurry == 0 {
			continue
		}
		hurried++
		if s.Hurry < time.Second || s.Hurry > 5*time.Second || i == len(steps)-1 {
			t.Errorf("step %d of %d: %s", i+1, len(steps), s)
		}
	}
	if hurried == 0 {
		t.Errorf("no step hurried in 40:\n%v", steps)
	}
	without, _ := Plan(7, 40, []Kind{Freeze, HostCrash})
	for i, s := range without {
		if s.Hurry != 0 {
			t.Errorf("step %d hurries without recovering: %s", i+1, s)
		}
	}
}

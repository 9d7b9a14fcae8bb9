package chaos

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rampart-ha/rampart/test/chaos/history"
)

func TestTimeline(t *testing.T) {
	for in, want := range map[string]uint32{"00000003000000000000000A": 3, "0000000A0000000100000002": 10, "": 0, "zz": 0, "GGGGGGGG00": 0} {
		if got := Timeline(in); got != want {
			t.Errorf("Timeline(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseFinal(t *testing.T) {
	got, err := ParseFinal("0:3,1,2\n2:7\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]int64{0: {3, 1, 2}, 2: {7}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("ParseFinal = %v, want %v", got, want)
	}
	if _, err := ParseFinal("0:1,x"); err == nil {
		t.Error("a bad id: no error")
	}
}

func TestChooseStaysInShape(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	kinds := map[history.Kind]int{}
	for range 1000 {
		op := Choose(r, map[int]int64{0: 5})
		kinds[op.Kind]++
		limit := Lists
		if op.Kind.IsRegister() {
			limit = Registers
		}
		if op.Key < 0 || op.Key >= limit {
			t.Fatalf("%v: key out of range", op)
		}
		if op.Kind == history.CompareAndSet && op.Key == 0 && op.Expect != 5 {
			t.Fatalf("%v: expects %d, want the last value seen, 5", op, op.Expect)
		}
	}
	if len(kinds) != 5 {
		t.Errorf("1000 draws gave kinds %v, want all five", kinds)
	}
}

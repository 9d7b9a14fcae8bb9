package chaos

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
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

// Each epoch has its own lists and registers (so that a list read and a
// register's history stay short); past the last epoch the last one's stay.
func TestChooseStaysInShape(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct{ epoch, want int }{{0, 0}, {3, 3}, {Epochs + 5, Epochs - 1}} {
		kinds := map[history.Kind]int{}
		for range 1000 {
			op := Choose(r, map[int]int64{tt.want * Registers: 5}, tt.epoch)
			kinds[op.Kind]++
			per := Lists
			if op.Kind.IsRegister() {
				per = Registers
			}
			if op.Key < tt.want*per || op.Key >= (tt.want+1)*per {
				t.Fatalf("epoch %d: %v: key out of epoch %d's range", tt.epoch, op, tt.want)
			}
			if op.Kind == history.CompareAndSet && op.Key == tt.want*Registers && op.Expect != 5 {
				t.Fatalf("%v: expects %d, want the last value seen, 5", op, op.Expect)
			}
		}
		if len(kinds) != 5 {
			t.Errorf("epoch %d: 1000 draws gave kinds %v, want all five", tt.epoch, kinds)
		}
	}
	// The schema creates every epoch's registers.
	if !strings.Contains(Schema, fmt.Sprintf("generate_series(0, %d)", Registers*Epochs-1)) {
		t.Errorf("Schema does not create %d registers:\n%s", Registers*Epochs, Schema)
	}
}

package history

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	four := []time.Duration{300 * ms, 100 * ms, 400 * ms, 200 * ms}
	var twenty []time.Duration
	for i := 20; i >= 1; i-- {
		twenty = append(twenty, time.Duration(i)*time.Second)
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"median of four: the second", four, 50, 200 * ms},
		{"95th of four: the fourth", four, 95, 400 * ms},
		{"a quarter of four: the first", four, 25, 100 * ms},
		{"a bit over a quarter: the second", four, 26, 200 * ms},
		{"the maximum", four, 100, 400 * ms},
		{"0 gives the minimum", four, 0, 100 * ms},
		{"past 100 gives the maximum", four, 150, 400 * ms},
		{"NaN gives the minimum", four, math.NaN(), 100 * ms},
		{"median of twenty", twenty, 50, 10 * time.Second},
		{"95th of twenty", twenty, 95, 19 * time.Second},
		{"one", []time.Duration{7 * ms}, 95, 7 * ms},
		{"none", nil, 50, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.ds)
			if got := Percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v; want %v", tt.ds, tt.p, got, tt.want)
			}
			if !slices.Equal(tt.ds, before) {
				t.Errorf("Percentile reordered its input: %v", tt.ds)
			}
		})
	}
}

func TestOutages(t *testing.T) {
	crash1 := Fault{Kind: "host-crash", Target: "pg1", Start: 1000 * ms, Healed: 5000 * ms}
	freeze := Fault{Kind: "freeze", Target: "pg2", Start: 10000 * ms, Healed: 12000 * ms}
	crash2 := Fault{Kind: "host-crash", Target: "pg2", Start: 20000 * ms, Healed: 21000 * ms}
	ops := []Op{
		op(1, 1, Append, 1, 1, 500, 510, OK),       // before any fault
		op(2, 2, Append, 1, 2, 900, 3000, OK),      // invoked before crash1: does not end it
		op(3, 1, Append, 1, 3, 1100, 3100, Failed), // errors in crash1
		op(4, 3, WriteRegister, 1, 4, 1200, 3200, Unknown),
		read(5, 4, 1, nil, 1050, 1500), // first read after crash1: 500ms
		op(6, 3, Append, 1, 6, 3300, 3700, OK),
		cas(7, 1, 1, 9, 10, false, 3500, 3600, OK), // first write after crash1, though it did not swap: 2600ms
		op(8, 1, Append, 1, 8, 10100, 11000, OK),   // freeze: write 1000ms
		rd(9, 2, 1, 4, 10200, 10300),               // freeze: read 300ms
		op(10, 3, Append, 1, 10, 10500, 10600, Failed),
		op(11, 3, Append, 1, 11, 12400, 12500, Failed), // after the freeze healed
		read(12, 4, 1, nil, 20100, 20200),              // crash2: read 200ms
		op(13, 1, Append, 1, 13, 20500, 20900, Failed), // crash2: no write comes back
	}
	want := []Outage{
		{Fault: crash1, ToWrite: 2600 * ms, Wrote: true, ToRead: 500 * ms, Read: true, Errors: 2},
		{Fault: freeze, ToWrite: 1000 * ms, Wrote: true, ToRead: 300 * ms, Read: true, Errors: 1},
		{Fault: crash2, ToRead: 200 * ms, Read: true, Errors: 1},
	}
	got := Outages(ops, []Fault{crash1, freeze, crash2})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outages\n got %+v\nwant %+v", got, want)
	}
	wantSums := []FaultSummary{
		{Kind: "freeze", Faults: 1, Errors: 1,
			ToWrite: Spread{N: 1, P50: 1000 * ms, P95: 1000 * ms, Max: 1000 * ms},
			ToRead:  Spread{N: 1, P50: 300 * ms, P95: 300 * ms, Max: 300 * ms}},
		{Kind: "host-crash", Faults: 2, NoWrite: 1, Errors: 3,
			ToWrite: Spread{N: 1, P50: 2600 * ms, P95: 2600 * ms, Max: 2600 * ms},
			ToRead:  Spread{N: 2, P50: 200 * ms, P95: 500 * ms, Max: 500 * ms}},
	}
	if sums := Summarize(got); !reflect.DeepEqual(sums, wantSums) {
		t.Errorf("summary\n got %+v\nwant %+v", sums, wantSums)
	}
}

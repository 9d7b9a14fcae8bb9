package history

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sample uses every field, so a field that does not survive the round
// trip fails the test.
func sample() History {
	cas := op(3, 2, CompareAndSet, 1, 8, 10, 30, OK)
	cas.Expect, cas.Swapped, cas.Session = 7, true, 2
	cas.Server.Pooler = &PoolerView{Name: "pooler1", Leader: true, Primary: "pg1"}
	cas.Path = ViaPooler
	big := op(4, 3, WriteRegister, 2, -5, 40, 90, OK)
	big.Server.SystemID = 7309421862153748521 // more digits than a double keeps
	return History{
		Started: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Ops: []Op{
			op(1, 1, Append, 1, 101, 0, 5, OK),
			read(2, 1, 1, []int64{101}, 6, 8),
			cas, big,
			read(5, 2, 2, []int64{}, 50, 51), // an empty list read, not a missing one
			op(6, 4, Append, 1, 102, 60, 2060, Unknown),
		},
		Faults: []Fault{{Kind: "host-crash", Target: "pg1", Start: 20 * ms, Healed: 3 * time.Second}},
		Final: []NodeState{
			{Node: "pg1", Lists: map[int][]int64{1: {101}, 2: {}}},
			{Node: "pg2", Standby: true, Lists: map[int][]int64{1: {101, 102}}},
		},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	want := sample()
	var buf bytes.Buffer
	if err := Encode(&buf, want); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"system_id":"7309421862153748521"`) {
		t.Errorf("system id not written as a string: %s", buf.String())
	}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the history:\n got %+v\nwant %+v", got, want)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		error string // a part of the message
	}{
		{"not JSON", `{"ops":[`, "unexpected end"},
		{"unknown kind", `{"ops":[{"id":1,"kind":"delete","outcome":"ok","path":"vip"}]}`, `kind "delete"`},
		{"unknown outcome", `{"ops":[{"id":1,"kind":"append","outcome":"maybe","path":"vip"}]}`, `outcome "maybe"`},
		{"no path", `{"ops":[{"id":1,"kind":"append","outcome":"ok"}]}`, `path ""`},
		{"completed before invoked", `{"ops":[{"id":1,"kind":"append","outcome":"ok","path":"vip","invoked_ns":5,"completed_ns":4}]}`, "invoked at 5ns, completed at 4ns"},
		{"id used twice", `{"ops":[{"id":1,"kind":"append","outcome":"ok","path":"vip"},{"id":1,"kind":"read","outcome":"ok","path":"vip"}]}`, "id 1 used twice"},
		{"fault healed before it started", `{"faults":[{"kind":"freeze","start_ns":9,"healed_ns":3}]}`, "started at 9ns, healed at 3ns"},
		{"fault without kind", `{"faults":[{"start_ns":1,"healed_ns":3}]}`, "no kind"},
		{"node named twice", `{"final":[{"node":"pg1"},{"node":"pg1"}]}`, `node "pg1" is empty or named twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.error) {
				t.Errorf("Decode(%s) = %v; want an error with %q", tt.json, err, tt.error)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	o := on(op(12, 3, Append, 2, 17, 1200, 1210, OK), ViaPooler, pg2tl2)
	want := "op 12 (client 3: append 17 to list 2, ok 1.2s–1.21s via pooler on pg2 tl 2)"
	if got := o.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	long := read(13, 1, 2, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, 1)
	if got := long.String(); !strings.Contains(got, "→ [1 2 3 4] … [7 8 9 10] (10 ids)") {
		t.Errorf("long list not shortened: %s", got)
	}
}

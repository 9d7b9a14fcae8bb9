package history

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeHistory: Decode never panics, what it accepts encodes and
// decodes to the same history (what a saved run replays is what was
// checked), and the checks do not panic on it. Registers is left out: its
// search is exponential by nature, and its input is the same validated ops.
func FuzzDecodeHistory(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"ops":[{"id":1,"kind":"read","outcome":"ok","path":"pooler","list":[]}]}`))
	f.Add([]byte(`{"final":[{"node":"pg1","lists":{"-3":null,"4":[1,1]}}]}`))
	f.Add([]byte(`{"ops":[{"id":1,"kind":"append","outcome":"ok","path":"vip","server":{"system_id":"18446744073709551615","pooler":{}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Decode(data)
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := Encode(&again, h); err != nil {
			t.Fatalf("a decoded history does not encode: %v", err)
		}
		h2, err := Decode(again.Bytes())
		if err != nil {
			t.Fatalf("an encoded history does not decode: %v\n%s", err, again.Bytes())
		}
		// Started compares as an instant: its zone's pointer may differ.
		if !h2.Started.Equal(h.Started) {
			t.Fatalf("started %v became %v", h.Started, h2.Started)
		}
		h.Started = h2.Started
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip changed the history:\n got %+v\nwant %+v\n%s", h2, h, again.Bytes())
		}
		SplitBrain(h.Ops)
		LostWrites(h.Ops, h.Final)
		ReadYourWrites(h.Ops, 0)
		GarbageReads(h.Ops, h.Final)
		ListOrder(h.Ops, h.Final)
		Summarize(Outages(h.Ops, h.Faults))
	})
}

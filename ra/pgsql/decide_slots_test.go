package pgsql

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra/pg"
)

func TestSlotName(t *testing.T) {
	for in, want := range map[string]string{
		"n1":                    "rampart_n1",
		"DB-2.example":          "rampart_db_2_example",
		strings.Repeat("x", 80): "rampart_" + strings.Repeat("x", 55),
	} {
		if got := SlotName(in); got != want {
			t.Errorf("SlotName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecideSlots(t *testing.T) {
	slot := func(name string, active, reserved bool) pg.Slot {
		return pg.Slot{Name: name, Active: active, Reserved: reserved}
	}
	nodes := []string{"n1", "n2", "n3"}
	tests := []struct {
		name         string
		in           SlotInput
		drop, create []string
	}{
		{"a new primary creates a slot for each other node",
			SlotInput{Self: "n1", Primary: true, Nodes: nodes}, nil, []string{"rampart_n2", "rampart_n3"}},
		{"all present: nothing to do",
			SlotInput{Self: "n1", Primary: true, Nodes: nodes, Slots: []pg.Slot{slot("rampart_n2", true, true), slot("rampart_n3", false, true)}}, nil, nil},
		{"the primary keeps a stopped standby's slot and the WAL it holds",
			SlotInput{Self: "n1", Primary: true, Nodes: nodes, Slots: []pg.Slot{slot("rampart_n2", true, true), slot("rampart_n3", false, true)}}, nil, nil},
		{"the slot of a node that left the cluster is dropped",
			SlotInput{Self: "n1", Primary: true, Nodes: []string{"n1", "n2"}, Slots: []pg.Slot{slot("rampart_n2", true, true), slot("rampart_n3", false, true)}}, []string{"rampart_n3"}, nil},
		{"an active slot is never dropped",
			SlotInput{Self: "n1", Primary: true, Nodes: []string{"n1", "n2"}, Slots: []pg.Slot{slot("rampart_n2", true, true), slot("rampart_n3", true, true)}}, nil, nil},
		{"without the node list nothing is dropped for leaving",
			SlotInput{Self: "n1", Primary: true, Slots: []pg.Slot{slot("rampart_n3", false, true)}}, nil, nil},
		{"the DBA's own slots are never touched",
			SlotInput{Self: "n1", Primary: true, Nodes: []string{"n1"}, Slots: []pg.Slot{slot("archiver", false, true), slot("n3", false, true)}}, nil, nil},
		{"a standby creates its slots holding no WAL, ready for its promotion",
			SlotInput{Self: "n2", Nodes: nodes, Slots: []pg.Slot{slot("rampart_n1", false, false)}}, nil, []string{"rampart_n3"}},
		{"a demoted primary's slots hold WAL for nobody: created afresh",
			SlotInput{Self: "n1", Slots: []pg.Slot{slot("rampart_n2", false, true), slot("rampart_n3", false, false)}}, []string{"rampart_n2"}, []string{"rampart_n2"}},
		{"a node's own slot is dropped",
			SlotInput{Self: "n2", Nodes: nodes, Slots: []pg.Slot{slot("rampart_n1", false, false), slot("rampart_n2", false, false), slot("rampart_n3", false, false)}}, []string{"rampart_n2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DecideSlots(tt.in)
			if !slices.Equal(p.Drop, tt.drop) || !slices.Equal(p.Create, tt.create) {
				t.Errorf("got drop %v create %v (%v), want drop %v create %v", p.Drop, p.Create, p.Reasons, tt.drop, tt.create)
			}
			if p.Empty() != (len(tt.drop) == 0 && len(tt.create) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

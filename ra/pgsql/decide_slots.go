package pgsql

import (
	"slices"
	"strings"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Replication slots. Every node keeps a physical slot for each other node
// of the cluster, named SlotPrefix + node, and a standby streams through
// its own (primary_slot_name). The primary's slots keep the WAL a lagging
// or stopped standby still needs; a standby keeps them too, holding no WAL,
// so that they exist the moment it is promoted and its standbys re-attach
// without waiting for the new primary's next monitor. Slots whose names do
// not start with SlotPrefix are the DBA's and are never touched.

// SlotPrefix starts the name of every slot the agent manages.
const SlotPrefix = "rampart_"

// SlotName is the slot of node: SlotPrefix and the node's name in lower
// case with anything but letters, digits and _ replaced by _ (what slot
// names allow), cut to PostgreSQL's 63 bytes.
func SlotName(node string) string {
	var b strings.Builder
	b.WriteString(SlotPrefix)
	for _, r := range strings.ToLower(node) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// SlotInput is what a slot decision needs.
type SlotInput struct {
	Self    string
	Primary bool      // this instance is the primary
	Nodes   []string  // the cluster's nodes; nil when unknown (then nothing is dropped for leaving)
	Slots   []pg.Slot // the instance's physical slots
}

// SlotPlan is what to do: drops first, then creates.
type SlotPlan struct {
	Drop, Create []string
	Reasons      []string
}

// DecideSlots plans the instance's managed slots.
//   - A slot for every node but this one (when Nodes is known).
//   - On the primary, the slot of a node that left the cluster is dropped
//     (it would hold WAL forever); an active one is left until its standby
//     goes.
//   - On a standby, a managed slot that holds WAL is left from a time this
//     node was primary (a standby's slots are created holding none): it
//     holds WAL on this standby for nobody, so it is created afresh.
//   - This node's own slot, if present (left from a base backup of another
//     node), is dropped when inactive.
func DecideSlots(in SlotInput) SlotPlan {
	var p SlotPlan
	want := map[string]bool{}
	for _, n := range in.Nodes {
		if n != in.Self {
			want[SlotName(n)] = true
		}
	}
	own := SlotName(in.Self)
	have := map[string]bool{}
	for _, s := range in.Slots {
		if !strings.HasPrefix(s.Name, SlotPrefix) {
			continue
		}
		have[s.Name] = true
		switch {
		case s.Active:
		case s.Name == own && !want[own]:
			p.Drop = append(p.Drop, s.Name)
			p.Reasons = append(p.Reasons, s.Name+": this node's own slot")
		case in.Nodes != nil && !want[s.Name]:
			p.Drop = append(p.Drop, s.Name)
			p.Reasons = append(p.Reasons, s.Name+": its node left the cluster")
		case !in.Primary && s.Reserved:
			p.Drop = append(p.Drop, s.Name)
			p.Create = append(p.Create, s.Name)
			p.Reasons = append(p.Reasons, s.Name+": holds WAL on a standby, left from its time as primary")
		}
	}
	for name := range want {
		if !have[name] {
			p.Create = append(p.Create, name)
			p.Reasons = append(p.Reasons, name+": missing")
		}
	}
	slices.Sort(p.Drop)
	slices.Sort(p.Create)
	slices.Sort(p.Reasons)
	return p
}

// Empty says there is nothing to do.
func (p SlotPlan) Empty() bool { return len(p.Drop) == 0 && len(p.Create) == 0 }

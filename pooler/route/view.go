package route

import "time"

// Health is one health check of one node.
type Health struct {
	Up         bool
	Role       Role   // pg_is_in_recovery(): primary or standby (when Up)
	LSN        uint64 // current (primary) or replayed (standby) WAL position
	ReplayedAt time.Time
}

// Change is a node whose role the view changed.
type Change struct {
	Node     int
	Was, Now Role
	// Demoted: it was the primary and is not any more (down, a standby,
	// or one of two writable nodes); its server connections must not be
	// reused.
	Demoted bool
}

// View applies one round of health checks (by node, as backends) to the
// routing view at now and returns the new view and the role changes;
// what the pooler itself keeps (Drained, Weight, Outstanding) is kept.
// The rules:
//   - a node that does not answer has an unknown role;
//   - two writable nodes: writes go to neither until one is gone
//     (invariant 1 through the pooler): both have an unknown role;
//   - a standby's lag is measured against the primary seen in the same
//     round, only when there is exactly one.
func View(backends []Backend, round []Health, now time.Time) ([]Backend, []Change) {
	var primaryLSN uint64
	primaries := 0
	for _, h := range round {
		if h.Up && h.Role == RolePrimary {
			primaryLSN = max(primaryLSN, h.LSN)
			primaries++
		}
	}
	next := append([]Backend(nil), backends...)
	var changes []Change
	for i, h := range round {
		b := &next[i]
		was := b.Role
		b.Up, b.Role, b.ReplayLSN = h.Up, h.Role, h.LSN
		if !h.Up || primaries > 1 && h.Role == RolePrimary {
			b.Role = RoleUnknown
		}
		b.LagBytes, b.LagTime = 0, 0
		if h.Up && h.Role == RoleStandby && primaries == 1 && primaryLSN > h.LSN {
			b.LagBytes = int64(primaryLSN - h.LSN)
			if !h.ReplayedAt.IsZero() {
				b.LagTime = now.Sub(h.ReplayedAt)
			}
		}
		if was != b.Role {
			changes = append(changes, Change{Node: i, Was: was, Now: b.Role, Demoted: was == RolePrimary})
		}
	}
	return next, changes
}

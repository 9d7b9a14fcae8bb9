package route

import (
	"reflect"
	"testing"
	"time"
)

func TestView(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	three := func() []Backend {
		return []Backend{
			{Name: "n1", Role: RolePrimary, Up: true, Weight: 1, Outstanding: 3},
			{Name: "n2", Role: RoleStandby, Up: true, Weight: 1, Drained: true},
			{Name: "n3", Role: RoleStandby, Up: true, Weight: 2},
		}
	}
	primary := Health{Up: true, Role: RolePrimary, LSN: 5000}
	standby := func(lsn uint64, ago time.Duration) Health {
		return Health{Up: true, Role: RoleStandby, LSN: lsn, ReplayedAt: now.Add(-ago)}
	}
	for _, tc := range []struct {
		name    string
		round   []Health
		roles   []Role
		lag     []int64 // bytes, by node
		changes []Change
	}{
		{"steady: lag against the primary of the same round",
			[]Health{primary, standby(4000, 2*time.Second), standby(5000, 0)},
			[]Role{RolePrimary, RoleStandby, RoleStandby}, []int64{0, 1000, 0}, nil},
		{"the primary does not answer: unknown, demoted; no lag without a primary",
			[]Health{{}, standby(4000, time.Second), standby(4500, 0)},
			[]Role{RoleUnknown, RoleStandby, RoleStandby}, []int64{0, 0, 0},
			[]Change{{Node: 0, Was: RolePrimary, Now: RoleUnknown, Demoted: true}}},
		{"a standby promoted while the old primary still writes: writes go to neither",
			[]Health{primary, standby(4000, 0), {Up: true, Role: RolePrimary, LSN: 4100}},
			[]Role{RoleUnknown, RoleStandby, RoleUnknown}, []int64{0, 0, 0},
			[]Change{{Node: 0, Was: RolePrimary, Now: RoleUnknown, Demoted: true}, {Node: 2, Was: RoleStandby, Now: RoleUnknown}}},
		{"a switchover: the old primary a standby, the new one primary",
			[]Health{standby(6000, 0), standby(6000, 0), {Up: true, Role: RolePrimary, LSN: 6100}},
			[]Role{RoleStandby, RoleStandby, RolePrimary}, []int64{100, 100, 0},
			[]Change{{Node: 0, Was: RolePrimary, Now: RoleStandby, Demoted: true}, {Node: 2, Was: RoleStandby, Now: RolePrimary}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := three()
			next, changes := View(before, tc.round, now)
			for i, b := range next {
				if b.Role != tc.roles[i] || b.LagBytes != tc.lag[i] {
					t.Errorf("%s: role %s lag %d, want %s lag %d", b.Name, b.Role, b.LagBytes, tc.roles[i], tc.lag[i])
				}
				if b.Weight != before[i].Weight || b.Drained != before[i].Drained || b.Outstanding != before[i].Outstanding || b.Name != before[i].Name {
					t.Errorf("%s: the pooler's own fields changed: %+v, was %+v", b.Name, b, before[i])
				}
			}
			if !reflect.DeepEqual(changes, tc.changes) {
				t.Errorf("changes %+v, want %+v", changes, tc.changes)
			}
			if !reflect.DeepEqual(before, three()) {
				t.Error("View changed the view it was given")
			}
		})
	}
	next, _ := View(three(), []Health{primary, standby(4000, 2*time.Second), standby(5000, 0)}, now)
	if next[1].LagTime != 2*time.Second || next[1].ReplayLSN != 4000 {
		t.Errorf("n2's lag time %s, replayed %d; want 2s, 4000", next[1].LagTime, next[1].ReplayLSN)
	}
}

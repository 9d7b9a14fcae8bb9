package route

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestChoose(t *testing.T) {
	now := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	read, write, pinned := Verdict{}, Verdict{Target: Primary}, Verdict{Pin: true}
	policy := Policy{MaxLagBytes: 1 << 20, MaxLagTime: 2 * time.Second, ReadYourWrites: 5 * time.Second}
	p := Backend{Name: "p", Role: RolePrimary, Up: true, Weight: 0, ReplayLSN: 1000}
	s1 := Backend{Name: "s1", Role: RoleStandby, Up: true, Weight: 1, ReplayLSN: 1000}
	s2 := Backend{Name: "s2", Role: RoleStandby, Up: true, Weight: 1, ReplayLSN: 900}
	with := func(b Backend, f func(*Backend)) Backend { f(&b); return b }

	tests := []struct {
		name     string
		backends []Backend
		v        Verdict
		c        Client
		want     string
		err      error
	}{
		{"writes go to the primary", []Backend{s1, p, s2}, write, Client{}, "p", nil},
		{"pinned sessions go to the primary", []Backend{s1, p, s2}, pinned, Client{}, "p", nil},
		{"reads go to the least loaded standby", []Backend{p, with(s1, func(b *Backend) { b.Outstanding = 3 }), s2}, read, Client{}, "s2", nil},
		{"weights scale the load", []Backend{p, with(s1, func(b *Backend) { b.Outstanding = 3; b.Weight = 8 }), with(s2, func(b *Backend) { b.Outstanding = 1 })}, read, Client{}, "s1", nil},
		{"a standby lagging in bytes gets no reads", []Backend{p, with(s1, func(b *Backend) { b.LagBytes = 2 << 20 }), with(s2, func(b *Backend) { b.Outstanding = 9 })}, read, Client{}, "s2", nil},
		{"a standby lagging in time gets no reads", []Backend{p, with(s1, func(b *Backend) { b.LagTime = 3 * time.Second }), with(s2, func(b *Backend) { b.Outstanding = 9 })}, read, Client{}, "s2", nil},
		{"drained standbys get nothing new", []Backend{p, with(s1, func(b *Backend) { b.Drained = true }), with(s2, func(b *Backend) { b.Outstanding = 9 })}, read, Client{}, "s2", nil},
		{"no readable standby: the primary reads", []Backend{p, with(s1, func(b *Backend) { b.Up = false }), with(s2, func(b *Backend) { b.LagBytes = 5 << 20 })}, read, Client{}, "p", nil},
		{"the primary reads only when no standby can", []Backend{with(p, func(b *Backend) { b.Weight = 9 }), with(s1, func(b *Backend) { b.Outstanding = 7 })}, read, Client{}, "s1", nil},
		{"equal standbys take turns", []Backend{p, s1, s2}, read, Client{Turn: 2}, "s2", nil},
		{"equal standbys take turns (next)", []Backend{p, s1, s2}, read, Client{Turn: 3}, "s1", nil},
		{"after a write, reads go where the write is replayed", []Backend{p, with(s1, func(b *Backend) { b.Outstanding = 5 }), s2}, read, Client{LastWrite: now.Add(-time.Second), LastWriteLSN: 950}, "s1", nil},
		{"after a write of unknown position, reads go to the primary", []Backend{p, s1, s2}, read, Client{LastWrite: now.Add(-time.Second)}, "p", nil},
		{"the read-your-writes window ends", []Backend{p, with(s1, func(b *Backend) { b.Outstanding = 5 }), s2}, read, Client{LastWrite: now.Add(-6 * time.Second), LastWriteLSN: 950}, "s2", nil},
		{"no primary: writes wait", []Backend{s1, s2}, write, Client{}, "", ErrNoPrimary},
		{"a drained primary takes no writes", []Backend{with(p, func(b *Backend) { b.Drained = true }), s1}, write, Client{}, "", ErrNoPrimary},
		{"no primary: reads still go to a standby", []Backend{s1, s2}, read, Client{}, "s1", nil},
		{"no primary, standbys lagging: reads still answered", []Backend{with(s1, func(b *Backend) { b.LagBytes = 9 << 20 })}, read, Client{}, "s1", nil},
		{"nothing up", []Backend{with(s1, func(b *Backend) { b.Up = false })}, read, Client{}, "", ErrNoServer},
	}
	shared := policy
	shared.PrimaryReads = true
	if i, _ := Choose([]Backend{with(p, func(b *Backend) { b.Weight = 2 }), with(s1, func(b *Backend) { b.Outstanding = 1 })}, read, Client{}, shared, now); i != 0 {
		t.Errorf("primary_reads: a primary with weight 2 and no load lost to a loaded standby (chose %d)", i)
	}
	for _, tt := range tests {
		i, err := Choose(tt.backends, tt.v, tt.c, policy, now)
		got := ""
		if i >= 0 {
			got = tt.backends[i].Name
		}
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

// read_your_writes = lsn: no window; after a write, only a standby that
// replayed past its position reads for the client, however long after.
func TestChooseCausal(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	policy := Policy{CausalReads: true, ReadYourWrites: time.Second}
	p := Backend{Name: "p", Role: RolePrimary, Up: true}
	s1 := Backend{Name: "s1", Role: RoleStandby, Up: true, Weight: 1, ReplayLSN: 1000}
	s2 := Backend{Name: "s2", Role: RoleStandby, Up: true, Weight: 1, ReplayLSN: 900, Outstanding: 4}
	s3 := Backend{Name: "s3", Role: RoleStandby, Up: true, Weight: 1, ReplayLSN: 800}
	backends := []Backend{p, s1, s2, s3}
	for _, tt := range []struct {
		name string
		c    Client
		want string
	}{
		{"never wrote: any standby", Client{}, "s1"},
		{"a write s1 replayed, long ago", Client{LastWrite: now.Add(-time.Hour), LastWriteLSN: 950}, "s1"},
		{"a write no standby replayed: the primary", Client{LastWrite: now.Add(-time.Hour), LastWriteLSN: 1001}, "p"},
	} {
		i, err := Choose(backends, Verdict{}, tt.c, policy, now)
		if err != nil || backends[i].Name != tt.want {
			t.Errorf("%s: chose %d (%v), want %s", tt.name, i, err, tt.want)
		}
	}
	// Candidates to ask: the standbys not known to have replayed 1001,
	// least loaded first; a lagging or drained one is not asked.
	lagging := s3
	lagging.LagBytes = 1 << 30
	got := CausalCandidates([]Backend{p, s1, s2, s3, lagging}, Client{LastWriteLSN: 1001}, Policy{CausalReads: true, MaxLagBytes: 1 << 20})
	if want := []int{1, 3, 2}; !slices.Equal(got, want) {
		t.Errorf("CausalCandidates = %v, want %v (s1, s3, then the loaded s2)", got, want)
	}
}

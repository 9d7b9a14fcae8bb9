package route

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Role is what a backend's pg_is_in_recovery() last said.
type Role int

const (
	RoleUnknown Role = iota
	RolePrimary
	RoleStandby
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleStandby:
		return "standby"
	}
	return "unknown"
}

// Backend is what the pooler last observed of one server.
type Backend struct {
	Name string
	Role Role
	// Up: the last health check passed.
	Up bool
	// Drained: DRAIN or DETACH; no new transactions go there.
	Drained bool
	// Weight is its share of reads against the other candidates; 0 takes
	// none (for the primary: reads stay off it unless nothing else can).
	Weight int
	// Standbys: how far replay trails the primary, in bytes and in time,
	// and the WAL position replayed.
	LagBytes  int64
	LagTime   time.Duration
	ReplayLSN uint64
	// Outstanding is the number of transactions this pooler has running
	// there now.
	Outstanding int
}

// Policy is the routing configuration.
type Policy struct {
	// A standby lagging more than either gets no reads (0: no limit).
	MaxLagBytes int64
	MaxLagTime  time.Duration
	// ReadYourWrites: for this long after a client's write, its reads go
	// to the primary, or to a standby that has replayed past that write.
	ReadYourWrites time.Duration
	// PrimaryReads lets the primary take reads by its weight like a
	// standby; otherwise it reads only when no standby can.
	PrimaryReads bool
	// CausalReads (read_your_writes = lsn): after a client's write, its
	// reads go only to standbys that have replayed past the write's WAL
	// position, whenever they come; ReadYourWrites' window is not used.
	CausalReads bool
	// CausalWait bounds how long a read waits for a standby to replay the
	// client's write before it goes to the primary (0: it does not wait).
	CausalWait time.Duration
}

// MustSee says whether a read of client c at now must see the client's
// last write: within ReadYourWrites after it, or after any write with
// CausalReads.
func (p Policy) MustSee(c Client, now time.Time) bool {
	if p.CausalReads {
		return c.LastWriteLSN > 0
	}
	return !c.LastWrite.IsZero() && p.ReadYourWrites > 0 && now.Sub(c.LastWrite) < p.ReadYourWrites
}

// CausalCandidates are the standbys a read of c may go to once one is
// seen to have replayed past c's last write, least loaded first: the
// ones Choose would take but for the replay positions the health checks
// last saw, which may be a period old.
func CausalCandidates(backends []Backend, c Client, p Policy) []int {
	var out []int
	for i, b := range backends {
		if b.Role == RoleStandby && readable(b, p) && b.Weight > 0 && b.ReplayLSN < c.LastWriteLSN {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(x, y int) int {
		return cmp.Compare(float64(backends[x].Outstanding+1)/float64(backends[x].Weight), float64(backends[y].Outstanding+1)/float64(backends[y].Weight))
	})
	return out
}

// Client is what the router remembers of one client.
type Client struct {
	LastWrite    time.Time // zero: never wrote
	LastWriteLSN uint64    // the primary's WAL position after it; 0 unknown
	// Turn breaks ties between equally loaded backends: the caller counts
	// its choices, so that equal backends take turns.
	Turn uint64
}

// Errors of Choose; the proxy holds the client (a failover is under way)
// or answers with an ErrorResponse.
var (
	ErrNoPrimary = errors.New("no primary available")
	ErrNoServer  = errors.New("no server available")
)

// Choose picks the backend for a new transaction (or single statement)
// of class v, from client c, at now: the primary for writes; for reads the
// least loaded standby by weight that is up, not drained and within the
// lag limits (and past the client's last write while it must read its
// writes), else the primary.
func Choose(backends []Backend, v Verdict, c Client, p Policy, now time.Time) (int, error) {
	prim := -1
	for i, b := range backends {
		if b.Role == RolePrimary && b.Up && !b.Drained {
			prim = i
			break
		}
	}
	if v.Target == Primary || v.Pin {
		if prim < 0 {
			return -1, ErrNoPrimary
		}
		return prim, nil
	}
	mustSee := p.MustSee(c, now)
	best, bestLoad := -1, 0.0
	for k := range backends {
		i := (k + int(c.Turn%uint64(len(backends)))) % len(backends)
		b := backends[i]
		if !readable(b, p) || b.Weight <= 0 || b.Role == RolePrimary && !p.PrimaryReads {
			continue
		}
		if b.Role == RoleStandby && mustSee && (c.LastWriteLSN == 0 || b.ReplayLSN < c.LastWriteLSN) {
			continue
		}
		load := float64(b.Outstanding+1) / float64(b.Weight)
		if best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	switch {
	case best >= 0:
		return best, nil
	case prim >= 0:
		return prim, nil
	}
	// No primary either: a standby that is up still answers reads, however
	// far behind (better than an error; the lag is visible in SHOW NODES).
	for i, b := range backends {
		if b.Role == RoleStandby && b.Up && !b.Drained {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: none of %d is up and attached", ErrNoServer, len(backends))
}

// readable: up, attached, and a primary or a standby within the lag limits.
func readable(b Backend, p Policy) bool {
	if !b.Up || b.Drained {
		return false
	}
	switch b.Role {
	case RolePrimary:
		return true
	case RoleStandby:
		return (p.MaxLagBytes <= 0 || b.LagBytes <= p.MaxLagBytes) && (p.MaxLagTime <= 0 || b.LagTime <= p.MaxLagTime)
	}
	return false
}

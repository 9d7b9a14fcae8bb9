package pgsql

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Mode is what the primary does when too few standbys qualify as synchronous.
type Mode string

// Modes.
const (
	// Durability keeps the list: commits wait until enough standbys are back.
	Durability Mode = "durability"
	// Availability goes asynchronous after a grace period, and says so.
	Availability Mode = "availability"
)

// SyncPolicy is the user's wish for synchronous replication.
type SyncPolicy struct {
	Count  int       // synchronous standbys wanted (0: asynchronous replication)
	Method pg.Method // FIRST or ANY
	MaxLag uint64    // bytes a standby's flush position may trail the primary and still qualify (0: no limit)
	Mode   Mode
	Grace  time.Duration // Availability: how long to wait before going asynchronous
}

// Standby is one row of the primary's pg_stat_replication.
type Standby struct {
	Name      string // application_name: the node's name
	State     string // streaming, catchup, startup, backup, stopping
	SyncState string // sync, quorum, potential, async
	FlushLSN  pg.LSN
}

// SyncInput is what the primary's monitor observed.
type SyncInput struct {
	Self       string
	PrimaryLSN pg.LSN            // pg_current_wal_lsn()
	Standbys   []Standby         // pg_stat_replication
	Members    []string          // nodes where Pacemaker runs a standby instance of this clone
	Current    pg.SyncNames      // synchronous_standby_names in force
	JoinedAt   map[string]pg.LSN // per sync-set member: primary LSN when it joined the set
	ShortFor   time.Duration     // how long fewer than Count standbys have qualified
}

// SyncDecision is what the primary should make of it.
type SyncDecision struct {
	Names         pg.SyncNames      // synchronous_standby_names to put in force
	JoinedAt      map[string]pg.LSN // updated join positions of the members of Names
	Qualified     []string          // standbys streaming within the lag limit
	Eligible      []string          // members of the set that have every acknowledged commit
	WritesBlocked bool              // Names asks for more standbys than qualify: commits wait
	WentAsync     bool              // Availability: fewer than Count after the grace period
	Reason        string            // one line for the log
}

// qualifies reports whether a standby may serve as synchronous: streaming,
// and not further behind than the lag limit.
func qualifies(s Standby, p SyncPolicy, primary pg.LSN) bool {
	return s.State == "streaming" && (p.MaxLag == 0 || primary.Sub(s.FlushLSN) <= p.MaxLag)
}

// DecideSync chooses the synchronous standbys. It keeps members of the
// current set that still qualify (no churn), fills up with the most advanced
// other qualified standbys, and never drops a member without a qualified
// replacement under the durability policy. A member becomes eligible for
// promotion only once its flush position reached the primary's position at
// the time it joined: before that, commits acknowledged by the old members
// may be missing on it.
func DecideSync(in SyncInput, p SyncPolicy) SyncDecision {
	d := SyncDecision{JoinedAt: map[string]pg.LSN{}}
	byName := map[string]Standby{}
	var qualified []Standby
	for _, s := range in.Standbys {
		byName[s.Name] = s
		if qualifies(s, p, in.PrimaryLSN) {
			qualified = append(qualified, s)
		}
	}
	current := map[string]bool{}
	if !in.Current.Empty() {
		for _, n := range in.Current.Names {
			current[n] = true
		}
	}
	// Members of the current set first (those PostgreSQL counts as
	// synchronous now before the ones it merely lists), then the most
	// advanced, then by name: no churn.
	confirmed := func(s Standby) bool { return s.SyncState == "sync" || s.SyncState == "quorum" }
	sort.SliceStable(qualified, func(i, j int) bool {
		a, b := qualified[i], qualified[j]
		if current[a.Name] != current[b.Name] {
			return current[a.Name]
		}
		if confirmed(a) != confirmed(b) {
			return confirmed(a)
		}
		if a.FlushLSN != b.FlushLSN {
			return a.FlushLSN > b.FlushLSN
		}
		return a.Name < b.Name
	})
	for _, s := range qualified {
		d.Qualified = append(d.Qualified, s.Name)
	}
	sort.Strings(d.Qualified)

	if p.Count == 0 {
		d.Reason = "asynchronous replication configured (sync_count=0)"
		return d
	}
	method := p.Method
	if method == "" {
		method = pg.First
	}
	var chosen []string
	for _, s := range qualified {
		if len(chosen) == p.Count {
			break
		}
		chosen = append(chosen, s.Name)
	}

	switch {
	case len(chosen) == p.Count:
		d.Names = pg.SyncNames{Method: method, Num: p.Count, Names: chosen}
		d.Reason = fmt.Sprintf("%d of %d wanted standbys qualify", len(chosen), p.Count)
	case p.Mode == Availability && in.ShortFor >= p.Grace:
		if len(chosen) > 0 {
			d.Names = pg.SyncNames{Method: method, Num: len(chosen), Names: chosen}
		}
		d.WentAsync = true
		d.Reason = fmt.Sprintf("only %d of %d wanted standbys qualify for %s (grace %s): availability policy lowers the requirement", len(chosen), p.Count, in.ShortFor, p.Grace)
	case len(chosen) == 0 && tight(in.Current) && connected(in.Current.Names, byName):
		// Keep waiting on the members, which still stream (lagging) or
		// catch up: they stay the only ones that acknowledge, so they stay
		// candidates.
		d.Names = in.Current
		d.WritesBlocked = true
		d.Reason = fmt.Sprintf("no standby qualifies; the members of %s are connected but lag: commits wait for them (%s policy)", in.Current, p.Mode)
	default:
		// Keep waiting: qualified ones first, then the members that were in
		// the set (they have every acknowledged commit), then any known
		// standby, so that the list is never empty and whoever comes back
		// first can take the place. Such a list is not tight: nobody is a
		// candidate until a monitor narrows it again.
		names := slices.Clone(chosen)
		add := func(n string) {
			if n != "" && n != in.Self && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		if !in.Current.Empty() {
			for _, n := range in.Current.Names {
				add(n)
			}
		}
		for _, n := range in.Members {
			add(n)
		}
		if len(names) == 0 {
			names = []string{"*"} // no standby known: any that connects
		}
		d.Names = pg.SyncNames{Method: method, Num: p.Count, Names: names}
		d.WritesBlocked = true
		d.Reason = fmt.Sprintf("only %d of %d wanted standbys qualify (%s): commits wait (%s policy)",
			len(chosen), p.Count, strings.Join(chosen, ","), p.Mode)
		if p.Mode == Availability {
			d.Reason += fmt.Sprintf(", going asynchronous after %s", p.Grace-in.ShortFor)
		}
	}

	// Join positions: kept for members that stay in a list that was tight,
	// set now for the others (under a longer list others may have
	// acknowledged commits without them).
	for _, n := range d.Names.Names {
		if at, ok := in.JoinedAt[n]; ok && current[n] && tight(in.Current) {
			d.JoinedAt[n] = at
		} else {
			d.JoinedAt[n] = in.PrimaryLSN
		}
	}
	d.Eligible = Eligible(d.Names, d.JoinedAt, in.Standbys)
	return d
}

// AwaitConfirmation says whether the primary should wait (briefly) for
// the members of a tight list to confirm before publishing scores: some
// member is not eligible yet, and it is connected or may connect soon
// (expectSoon: the list just changed, or the primary was just promoted).
// Waiting for a member that is not even connected would only delay.
func AwaitConfirmation(d SyncDecision, standbys []Standby, expectSoon bool) bool {
	if !tight(d.Names) || len(d.Eligible) == len(d.Names.Names) {
		return false
	}
	if expectSoon {
		return true
	}
	for _, n := range d.Names.Names {
		for _, s := range standbys {
			if s.Name == n && !slices.Contains(d.Eligible, n) {
				return true // connected, catching up or not yet confirmed
			}
		}
	}
	return false
}

// tight says whether names lists exactly as many standbys as must confirm
// each commit: then no commit is acknowledged without every member, and a
// member that stops confirming stops the commits rather than being
// bypassed. Only a tight list has candidates: under FIRST 1 (a, b), b
// acknowledges alone the moment a disconnects, before any monitor could
// lower a's promotion score.
func tight(names pg.SyncNames) bool {
	return !names.Empty() && len(names.Names) == names.Num && !slices.Contains(names.Names, "*")
}

// connected says whether every one of names has a walsender.
func connected(names []string, standbys map[string]Standby) bool {
	for _, n := range names {
		if _, ok := standbys[n]; !ok {
			return false
		}
	}
	return true
}

// Eligible returns the members of names that have every acknowledged
// commit: PostgreSQL counts them as synchronous (streaming, sync or quorum)
// and they have flushed at least up to where the primary was when they
// joined the set. Before that, commits acknowledged by the old members may
// be missing on them. Only members of a tight list are eligible.
func Eligible(names pg.SyncNames, joinedAt map[string]pg.LSN, standbys []Standby) []string {
	if !tight(names) {
		return nil
	}
	var out []string
	for _, n := range names.Names {
		at, joined := joinedAt[n]
		for _, s := range standbys {
			if s.Name == n && joined && s.State == "streaming" && (s.SyncState == "sync" || s.SyncState == "quorum") && s.FlushLSN >= at {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

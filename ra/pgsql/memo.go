package pgsql

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Memo is what the primary remembers between monitors, kept in a private
// node attribute (never in the CIB): join positions of sync-set members,
// since when too few standbys qualify, and the states it last published,
// so that it writes only changes. (Scores are read back from attrd
// instead: a belief about them could miss a lowering.)
type Memo struct {
	Joined     map[string]string `json:"joined,omitempty"`      // node → LSN
	ShortSince int64             `json:"short_since,omitempty"` // unix seconds, 0 when enough qualify
	PromotedAt int64             `json:"promoted_at,omitempty"` // unix milliseconds of this node's promotion
	States     map[string]string `json:"states,omitempty"`
	// Synced is the SyncedSet this primary last wrote to the CIB.
	Synced string `json:"synced,omitempty"`
	// Dropped is the walsenders the last round left out (logged once).
	Dropped []string `json:"dropped,omitempty"`
}

// PromotionMemo is a new primary's first memo: every member of names
// joins at lsn, the position right after the promotion. A member must have
// flushed past it to hold every commit the old primary acknowledged (the
// new primary had them all); join positions from an earlier time as
// primary must not survive.
func PromotionMemo(names pg.SyncNames, lsn pg.LSN, atMillis int64) Memo {
	m := Memo{Joined: map[string]string{}, PromotedAt: atMillis}
	for _, n := range names.Names {
		m.Joined[n] = lsn.String()
	}
	return m
}

// ParseMemo reads a memo; a missing or unreadable one is empty.
func ParseMemo(s string) Memo {
	var m Memo
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

func (m Memo) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// JoinedLSNs converts the memo's join positions.
func (m Memo) JoinedLSNs() map[string]pg.LSN {
	out := map[string]pg.LSN{}
	for n, s := range m.Joined {
		if l, err := pg.ParseLSN(s); err == nil {
			out[n] = l
		}
	}
	return out
}

// Position is what a standby reports of itself (private attribute): its
// timeline, the WAL it received, whether it may be promoted, and when it
// reported (unix milliseconds), as "tl:lsn:eligible:ms".
type Position struct {
	Timeline uint32
	LSN      pg.LSN
	Eligible bool
	AtMillis int64
}

func (p Position) String() string {
	e := "0"
	if p.Eligible {
		e = "1"
	}
	return strconv.FormatUint(uint64(p.Timeline), 10) + ":" + p.LSN.String() + ":" + e + ":" + strconv.FormatInt(p.AtMillis, 10)
}

// ParsePosition parses a Position; ok is false for anything malformed.
func ParsePosition(s string) (Position, bool) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return Position{}, false
	}
	tl, err1 := strconv.ParseUint(f[0], 10, 32)
	lsn, err2 := pg.ParseLSN(f[1])
	at, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || (f[2] != "0" && f[2] != "1") {
		return Position{}, false
	}
	return Position{Timeline: uint32(tl), LSN: lsn, Eligible: f[2] == "1", AtMillis: at}, true
}

// StandbyStates names each standby's replication state for crm_mon -A.
func StandbyStates(in SyncInput, d SyncDecision) map[string]string {
	states := map[string]string{}
	for _, m := range in.Members {
		if m != in.Self {
			states[m] = "disconnected"
		}
	}
	inSet := map[string]bool{}
	for _, n := range d.Names.Names {
		inSet[n] = true
	}
	eligible := map[string]bool{}
	for _, n := range d.Eligible {
		eligible[n] = true
	}
	standbys, _ := ClusterStandbys(in.Standbys, in.Self, in.Members)
	for _, s := range standbys {
		if _, member := states[s.Name]; !member {
			continue
		}
		switch {
		case s.State != "streaming":
			states[s.Name] = s.State // catchup, startup, backup, stopping
		case eligible[s.Name]:
			states[s.Name] = "sync"
		case inSet[s.Name]:
			states[s.Name] = "sync-catching-up"
		case s.SyncState == "potential":
			states[s.Name] = "potential"
		default:
			states[s.Name] = "async"
		}
	}
	states[in.Self] = "primary"
	if d.WritesBlocked {
		states[in.Self] = "primary-writes-blocked"
	}
	return states
}

// SyncedSet is the durable record of who holds every acknowledged commit:
// the primary and the eligible members of its tight synchronous set (the
// nodes with a positive promotion score), on the primary's timeline. The
// primary writes it into the CIB (SyncedAttr: permanent, replicated,
// surviving every node's restart, where promotion scores and the memo,
// transient attributes, do not), shrinking it before a member's score is
// lowered and growing it before one is raised. While no primary runs, only
// its members may volunteer in an election: a survivor that restarted has
// lost its -INFINITY score, but not the right to be left out.
type SyncedSet struct {
	Timeline uint32
	Primary  string
	Standbys []string // sorted
}

// SyncedPropertySet is the crm_config property set holding the record.
const SyncedPropertySet = "rampart"

// SyncedAttr is the cluster property that holds resource rsc's SyncedSet.
func SyncedAttr(rsc string) string { return "rampart-" + rsc + "-synced" }

// PreferredAttr is the cluster property (in SyncedPropertySet) naming the
// standby resource rsc's primary should choose first as synchronous once
// it qualifies: rampart switchover sets it to fail back to a node that
// streams asynchronously, and removes it when done.
func PreferredAttr(rsc string) string { return "rampart-" + rsc + "-sync-preferred" }

// Empty says no record was ever written (a cluster that never had a
// primary under this agent).
func (s SyncedSet) Empty() bool { return s.Primary == "" }

// Has says whether node holds every acknowledged commit by the record.
func (s SyncedSet) Has(node string) bool {
	return node != "" && (node == s.Primary || slices.Contains(s.Standbys, node))
}

// Nodes is the primary then the standbys.
func (s SyncedSet) Nodes() []string {
	if s.Empty() {
		return nil
	}
	return append([]string{s.Primary}, s.Standbys...)
}

func (s SyncedSet) String() string {
	if s.Empty() {
		return ""
	}
	return fmt.Sprintf("timeline=%d primary=%s standbys=%s", s.Timeline, s.Primary, strings.Join(s.Standbys, ","))
}

// ParseSyncedSet reads a record; ok is false for an absent or malformed one.
func ParseSyncedSet(v string) (SyncedSet, bool) {
	var s SyncedSet
	seen := map[string]bool{}
	for _, f := range strings.Fields(v) {
		k, val, found := strings.Cut(f, "=")
		if !found || seen[k] {
			return SyncedSet{}, false
		}
		seen[k] = true
		switch k {
		case "timeline":
			tl, err := strconv.ParseUint(val, 10, 32)
			if err != nil || tl == 0 {
				return SyncedSet{}, false
			}
			s.Timeline = uint32(tl)
		case "primary":
			s.Primary = val
		case "standbys":
			if val != "" {
				s.Standbys = strings.Split(val, ",")
			}
		default:
			return SyncedSet{}, false
		}
	}
	if len(seen) != 3 || s.Primary == "" || slices.Contains(s.Standbys, "") || slices.Contains(s.Standbys, s.Primary) {
		return SyncedSet{}, false
	}
	slices.Sort(s.Standbys)
	return s, true
}

// holders is the record for primary self on timeline tl given promotion
// scores: every other node with a positive score.
func holders(self string, tl uint32, scores map[string]int) SyncedSet {
	s := SyncedSet{Timeline: tl, Primary: self}
	for n, sc := range scores {
		if n != self && sc > 0 {
			s.Standbys = append(s.Standbys, n)
		}
	}
	slices.Sort(s.Standbys)
	return s
}

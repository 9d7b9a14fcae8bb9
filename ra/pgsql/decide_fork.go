package pgsql

import (
	"encoding/json"
	"fmt"

	"github.com/rampart-ha/rampart/ra/pg"
)

// A standby past the fork point. When a synchronous standby is promoted,
// an asynchronous standby may already hold WAL of the old timeline beyond
// the position where the new primary left it: WAL of commits that were
// still waiting for the synchronous standby. PostgreSQL refuses to follow
// such a standby onto the new timeline, and it stays stranded (and, named
// synchronous by the new primary, blocks every commit). Under the
// durability policy what lies past the fork was never acknowledged (the
// new primary had every acknowledged commit when it was promoted), so the
// standby is repaired: rewound with pg_rewind, else re-cloned. Without
// that promise (sync_policy=availability, or sync_count=0) commits there
// may have been acknowledged: it is repaired only with auto_rejoin, as an
// old primary is, and the discarded range is logged either way.

// StandbyPosition is how far a standby's data directory goes.
type StandbyPosition struct {
	SystemID string // "" when not known
	Timeline uint32 // the newest timeline it holds WAL of
	LSN      pg.LSN // how far on it: received, replayed or recorded in pg_control
}

// RunningPosition is a running standby's position: its walreceiver's and
// its replay's, on the newest of the timelines it reports and the
// timelines of the WAL files it holds (walTL).
func RunningPosition(obs pg.Observation, walTL uint32) StandbyPosition {
	return StandbyPosition{Timeline: max(obs.Timeline, walTL), LSN: max(obs.LSN, obs.ReplayLSN)}
}

// StoppedPosition is a stopped data directory's position as pg_control
// records it (the later of its last checkpoint and its minimum recovery
// point), on the newest timeline of its WAL files if that is newer.
func StoppedPosition(cd pg.ControlData, walTL uint32) StandbyPosition {
	tl, lsn := cd.Timeline, cd.CheckpointLSN
	if cd.MinRecoveryEndTL > tl || (cd.MinRecoveryEndTL == tl && cd.MinRecoveryEndLSN > lsn) {
		tl, lsn = cd.MinRecoveryEndTL, cd.MinRecoveryEndLSN
	}
	return StandbyPosition{SystemID: cd.SystemID, Timeline: max(tl, walTL), LSN: lsn}
}

// Fork is what CheckFork found.
type Fork struct {
	Forked bool
	// Foreign: the primary is another database cluster altogether (system
	// identifiers differ); nothing is repaired automatically.
	Foreign     bool
	Timeline    uint32 // the standby's timeline
	Position    pg.LSN // the standby's position on it
	Primary     string // the primary's node
	PrimaryTL   uint32
	SwitchPoint pg.LSN // where the primary's history left Timeline (0: not one of its ancestors)
	Why         string
}

// Discarded says which WAL a repair throws away.
func (f Fork) Discarded() string {
	if f.SwitchPoint == 0 {
		return fmt.Sprintf("timeline %d up to %s (the primary's history does not contain timeline %d)", f.Timeline, f.Position, f.Timeline)
	}
	return fmt.Sprintf("timeline %d from %s to %s", f.Timeline, f.SwitchPoint, f.Position)
}

// CheckFork decides whether a standby at pos can follow the primary whose
// history is h: its timeline is the primary's, or an ancestor of it that
// the history left no earlier than pos.
func CheckFork(pos StandbyPosition, primary string, h pg.History) Fork {
	f := Fork{Timeline: pos.Timeline, Position: pos.LSN, Primary: primary, PrimaryTL: h.Timeline}
	switch {
	case pos.SystemID != "" && h.SystemID != "" && pos.SystemID != h.SystemID:
		f.Foreign = true
		f.Why = fmt.Sprintf("%s is another database cluster (system identifier %s, this data directory's %s)", primary, h.SystemID, pos.SystemID)
		return f
	case pos.Timeline == 0 || pos.LSN == 0:
		f.Why = "position unknown"
		return f
	case pos.Timeline == h.Timeline:
		f.Why = fmt.Sprintf("on %s's timeline %d", primary, h.Timeline)
		return f
	case pos.Timeline > h.Timeline:
		f.Forked = true
		f.Why = fmt.Sprintf("forked: on timeline %d, newer than %s's timeline %d", pos.Timeline, primary, h.Timeline)
		return f
	}
	end, ancestor := h.SwitchPoint(pos.Timeline)
	switch {
	case !ancestor:
		f.Forked = true
		f.Why = fmt.Sprintf("forked: timeline %d is not in the history of %s's timeline %d", pos.Timeline, primary, h.Timeline)
	case pos.LSN > end:
		f.Forked, f.SwitchPoint = true, end
		f.Why = fmt.Sprintf("forked: holds WAL of timeline %d up to %s, past %s, where %s's timeline %d left it", pos.Timeline, pos.LSN, end, primary, h.Timeline)
	default:
		f.SwitchPoint = end
		f.Why = fmt.Sprintf("on timeline %d at %s, before %s's timeline %d left it at %s: it follows", pos.Timeline, pos.LSN, primary, h.Timeline, end)
	}
	return f
}

// ForkMarker is what a standby's monitor leaves beside the data directory
// when it finds the fork, so that the start after Pacemaker's restart
// repairs it even when pg_control (a standby's shutdown may skip the
// restartpoint that would record its position) does not show it.
type ForkMarker struct {
	SystemID string `json:"system_id"`
	Fork     Fork   `json:"fork"`
	AtMillis int64  `json:"at_ms"`
}

// ParseForkMarker reads a marker; ok is false for a malformed one.
func ParseForkMarker(b []byte) (ForkMarker, bool) {
	var m ForkMarker
	if err := json.Unmarshal(b, &m); err != nil || !m.Fork.Forked {
		return ForkMarker{}, false
	}
	return m, true
}

func (m ForkMarker) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}

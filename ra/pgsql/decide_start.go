package pgsql

import (
	"fmt"

	"github.com/rampart-ha/rampart/ra/pg"
)

// StartAction is what start must do.
type StartAction int

// Start actions.
const (
	// StartStandby starts PostgreSQL with standby.signal.
	StartStandby StartAction = iota
	// AlreadyStandby: it runs as a standby already; start succeeds.
	AlreadyStandby
	// Rejoin rewinds (or re-clones) the data directory, then starts it as
	// a standby: an old primary (auto_rejoin), or a standby past the fork.
	Rejoin
	// RefuseDiverged: an old primary, or a standby past the fork, that may
	// hold acknowledged commits the primary lacks; a person decides.
	RefuseDiverged
	// RefuseRunningPrimary: a primary runs outside the cluster's control.
	RefuseRunningPrimary
	// RefuseForeign: the primary is another database cluster.
	RefuseForeign
)

// StartInput is what start observed.
type StartInput struct {
	Running    bool
	InRecovery bool
	Control    pg.ControlData // valid when not running
	// Primary is the node Pacemaker runs as promoted elsewhere, "" if none.
	Primary string
	// Fork compares the data directory with the primary's history
	// (ForkChecked: the primary answered, or the standby's monitor left a
	// marker).
	Fork        Fork
	ForkChecked bool
	AutoRejoin  bool
	// Durable: acknowledged commits are on the synchronous standbys
	// (sync_count > 0, sync_policy=durability), so WAL past a fork on a
	// standby was never acknowledged.
	Durable bool
}

// DecideRejoin decides whether `rampart rejoin` may rewind (or re-clone)
// this node's data directory now: a stopped old primary, or a standby past
// the fork, while another node is primary.
func DecideRejoin(in StartInput) (bool, string) {
	in.AutoRejoin = true
	action, why := DecideStart(in)
	switch action {
	case Rejoin:
		return true, why
	case AlreadyStandby:
		return false, "PostgreSQL runs here as a standby already: nothing to rejoin (if it does not stream, its monitor says why)"
	case RefuseRunningPrimary:
		return false, "PostgreSQL runs here as a primary: stop it first (it is not Pacemaker's primary, or rampart rejoin would have refused before)"
	case RefuseForeign:
		return false, why
	}
	if in.Primary == "" {
		return false, "no other node is primary: there is nothing to rejoin to (Pacemaker promotes the most advanced standby; this node may be it)"
	}
	return false, why + ": Pacemaker can start it as it is (crm resource cleanup)"
}

// DecideStart decides how to start, so that an old primary never comes
// back as primary (invariant 3) and no data directory streams from a
// primary whose history it does not share. Start always leaves a standby:
// promotion is Pacemaker's decision.
func DecideStart(in StartInput) (StartAction, string) {
	switch {
	case in.Running && in.InRecovery:
		return AlreadyStandby, "PostgreSQL runs as a standby already"
	case in.Running:
		return RefuseRunningPrimary, "PostgreSQL runs as a primary that Pacemaker did not promote: stop it (pg_ctl stop), then clean up the resource"
	case in.Primary != "" && in.ForkChecked && in.Fork.Foreign:
		return RefuseForeign, fmt.Sprintf("%s: check node_hosts and the standby's data directory", in.Fork.Why)
	}
	wasPrimary := in.Control.State == pg.StateInProduction || in.Control.State == pg.StateShutDown ||
		in.Control.State == pg.StateInCrashRecovery
	switch {
	case in.Control.State == pg.StateBaseBackup && (!in.ForkChecked || !in.Fork.Forked):
		// rampart rejoin's fresh copy (or an operator's): its pg_control is
		// the source's, taken while it ran.
		return StartStandby, "data directory is a base backup that no server has started (backup_label): starting as standby"
	case in.Primary == "" && wasPrimary:
		// No primary anywhere: its history is the cluster's newest candidate;
		// as a standby it waits for Pacemaker's choice like the others.
		return StartStandby, fmt.Sprintf("data directory was a primary (%s) and no other primary runs: starting as standby", in.Control.State)
	case in.Primary == "" || !wasPrimary && (!in.ForkChecked || !in.Fork.Forked):
		return StartStandby, fmt.Sprintf("data directory was a standby (%s)", in.Control.State)
	case wasPrimary && in.Control.State == pg.StateShutDown && in.ForkChecked && !in.Fork.Forked && in.Fork.SwitchPoint != 0:
		// A clean shutdown wrote its last WAL record at the checkpoint: no
		// WAL lies past the fork, and PostgreSQL follows it as it is.
		return StartStandby, fmt.Sprintf("data directory was a primary, shut down cleanly at %s on timeline %d, where %s's history left it: it follows without a rewind",
			in.Fork.Position, in.Fork.Timeline, in.Primary)
	case !wasPrimary && (in.Durable || in.AutoRejoin):
		why := "under sync_policy=durability nothing past the fork was acknowledged"
		if !in.Durable {
			why = "auto_rejoin"
		}
		return Rejoin, fmt.Sprintf("standby %s; discarding WAL of %s (%s): rejoining", in.Fork.Why, in.Fork.Discarded(), why)
	case !wasPrimary:
		return RefuseDiverged, fmt.Sprintf("standby %s; commits in %s may have been acknowledged (sync_count=0 or sync_policy=availability): "+
			"rejoin it with `rampart rejoin`, accepting their loss, or set auto_rejoin=true", in.Fork.Why, in.Fork.Discarded())
	case in.AutoRejoin:
		return Rejoin, fmt.Sprintf("data directory was a primary (%s, timeline %d) and %s is primary now: rejoining (auto_rejoin)", in.Control.State, in.Control.Timeline, in.Primary)
	default:
		return RefuseDiverged, fmt.Sprintf("data directory was a primary (%s, timeline %d) and %s is primary now: it may have diverged; rejoin it with `rampart rejoin` or set auto_rejoin=true", in.Control.State, in.Control.Timeline, in.Primary)
	}
}

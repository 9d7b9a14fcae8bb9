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
	// Rejoin rewinds (or re-clones) an old primary, then starts it as standby.
	Rejoin
	// RefuseDiverged: an old primary that may have diverged; a person decides.
	RefuseDiverged
	// RefuseRunningPrimary: a primary runs outside the cluster's control.
	RefuseRunningPrimary
)

// StartInput is what start observed.
type StartInput struct {
	Running    bool
	InRecovery bool
	Control    pg.ControlData // valid when not running
	// Primary is the node Pacemaker runs as promoted elsewhere, "" if none.
	Primary    string
	AutoRejoin bool
}

// DecideRejoin decides whether `rampart rejoin` may rewind (or re-clone)
// this node's data directory now: only a stopped old primary, while
// another node is primary.
func DecideRejoin(in StartInput) (bool, string) {
	in.AutoRejoin = true
	action, _ := DecideStart(in)
	switch action {
	case Rejoin:
		return true, fmt.Sprintf("data directory was a primary (%s, timeline %d); %s is primary now: rejoining", in.Control.State, in.Control.Timeline, in.Primary)
	case AlreadyStandby:
		return false, "PostgreSQL runs here as a standby already: nothing to rejoin"
	case RefuseRunningPrimary:
		return false, "PostgreSQL runs here as a primary: stop it first (it is not Pacemaker's primary, or rampart rejoin would have refused before)"
	}
	if in.Primary == "" {
		return false, "no other node is primary: there is nothing to rejoin to (Pacemaker promotes the most advanced standby; this node may be it)"
	}
	return false, fmt.Sprintf("the data directory is a standby's (%s): Pacemaker can start it as it is (crm resource cleanup)", in.Control.State)
}

// DecideStart decides how to start, so that an old primary never comes
// back as primary (invariant 3) and never streams from a primary whose
// history it does not share. Start always leaves a standby: promotion is
// Pacemaker's decision.
func DecideStart(in StartInput) (StartAction, string) {
	switch {
	case in.Running && in.InRecovery:
		return AlreadyStandby, "PostgreSQL runs as a standby already"
	case in.Running:
		return RefuseRunningPrimary, "PostgreSQL runs as a primary that Pacemaker did not promote: stop it (pg_ctl stop), then clean up the resource"
	}
	wasPrimary := in.Control.State == pg.StateInProduction || in.Control.State == pg.StateShutDown ||
		in.Control.State == pg.StateInCrashRecovery
	switch {
	case !wasPrimary:
		return StartStandby, fmt.Sprintf("data directory was a standby (%s)", in.Control.State)
	case in.Primary == "":
		// No primary anywhere: its history is the cluster's newest candidate;
		// as a standby it waits for Pacemaker's choice like the others.
		return StartStandby, fmt.Sprintf("data directory was a primary (%s) and no other primary runs: starting as standby", in.Control.State)
	case in.AutoRejoin:
		return Rejoin, fmt.Sprintf("data directory was a primary (%s, timeline %d) and %s is primary now: rejoining (auto_rejoin)", in.Control.State, in.Control.Timeline, in.Primary)
	default:
		return RefuseDiverged, fmt.Sprintf("data directory was a primary (%s, timeline %d) and %s is primary now: it may have diverged; rejoin it with `rampart rejoin` or set auto_rejoin=true", in.Control.State, in.Control.Timeline, in.Primary)
	}
}

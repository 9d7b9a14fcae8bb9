package pgsql

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra/pg"
)

// The CI case of issue 16: n3 was promoted at 0/4034AA0 on timeline 2
// (every acknowledged commit is there); n2, asynchronous, had received up
// to 0/4034B50 on timeline 2.
var forkHistory = pg.History{SystemID: "7642011472967116994", Timeline: 3,
	Switches: []pg.TimelineSwitch{{Timeline: 1, End: lsn("0/3000158")}, {Timeline: 2, End: lsn("0/4034AA0")}}}

func TestCheckFork(t *testing.T) {
	tests := []struct {
		name    string
		pos     StandbyPosition
		forked  bool
		foreign bool
		says    string
	}{
		{"past the switch point on the old timeline: forked (the CI case)", StandbyPosition{Timeline: 2, LSN: lsn("0/4034B50")}, true, false, "past 0/4034AA0"},
		{"exactly at the switch point: it follows", StandbyPosition{Timeline: 2, LSN: lsn("0/4034AA0")}, false, false, "it follows"},
		{"before the switch point: it follows", StandbyPosition{Timeline: 2, LSN: lsn("0/4000000")}, false, false, "it follows"},
		{"on the primary's timeline already", StandbyPosition{Timeline: 3, LSN: lsn("0/5000000")}, false, false, "on n3's timeline 3"},
		{"an older ancestor, before its switch", StandbyPosition{Timeline: 1, LSN: lsn("0/3000000")}, false, false, "it follows"},
		{"an older ancestor, past its switch", StandbyPosition{Timeline: 1, LSN: lsn("0/3000200")}, true, false, "past 0/3000158"},
		{"a timeline the history never had", StandbyPosition{Timeline: 4, LSN: lsn("0/1")}, true, false, "newer than"},
		{"unknown position: nothing decided", StandbyPosition{}, false, false, "unknown"},
		{"another database cluster", StandbyPosition{SystemID: "1", Timeline: 2, LSN: lsn("0/1")}, false, true, "another database cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := CheckFork(tt.pos, "n3", forkHistory)
			if f.Forked != tt.forked || f.Foreign != tt.foreign || !strings.Contains(f.Why, tt.says) {
				t.Errorf("got %+v, want forked %v foreign %v saying %q", f, tt.forked, tt.foreign, tt.says)
			}
		})
	}
	sibling := pg.History{Timeline: 3, Switches: []pg.TimelineSwitch{{Timeline: 1, End: lsn("0/3000158")}}}
	if f := CheckFork(StandbyPosition{Timeline: 2, LSN: lsn("0/3000100")}, "n3", sibling); !f.Forked || !strings.Contains(f.Why, "not in the history") {
		t.Errorf("a sibling timeline: %+v, want forked", f)
	}
}

func TestStandbyPositions(t *testing.T) {
	// A running standby: the later of received and replayed, on the newest
	// timeline it reports or holds WAL files of.
	if p := RunningPosition(pg.Observation{Timeline: 2, LSN: lsn("0/400"), ReplayLSN: lsn("0/500")}, 3); p.Timeline != 3 || p.LSN != lsn("0/500") {
		t.Errorf("RunningPosition = %+v", p)
	}
	cd := pg.ControlData{SystemID: "s", Timeline: 2, CheckpointLSN: lsn("0/300"), MinRecoveryEndLSN: lsn("0/4034B50"), MinRecoveryEndTL: 2}
	if p := StoppedPosition(cd, 2); p.Timeline != 2 || p.LSN != lsn("0/4034B50") || p.SystemID != "s" {
		t.Errorf("StoppedPosition = %+v, want the minimum recovery point", p)
	}
	cd.MinRecoveryEndLSN, cd.MinRecoveryEndTL = 0, 0
	if p := StoppedPosition(cd, 2); p.LSN != lsn("0/300") {
		t.Errorf("StoppedPosition = %+v, want the checkpoint", p)
	}
}

func TestDecideStartAfterAFork(t *testing.T) {
	forked := CheckFork(StandbyPosition{Timeline: 2, LSN: lsn("0/4034B50")}, "n3", forkHistory)
	clean := CheckFork(StandbyPosition{Timeline: 2, LSN: lsn("0/4034AA0")}, "n3", forkHistory)
	standby := pg.ControlData{State: pg.StateShutDownRecovery}
	tests := []struct {
		name string
		in   StartInput
		want StartAction
		says string
	}{
		{"a forked standby is repaired under durability, whatever auto_rejoin says", StartInput{Control: standby, Primary: "n3", Fork: forked, ForkChecked: true, Durable: true},
			Rejoin, "discarding WAL of timeline 2 from 0/4034AA0 to 0/4034B50"},
		{"without the durability promise it is refused, saying what may be lost", StartInput{Control: standby, Primary: "n3", Fork: forked, ForkChecked: true},
			RefuseDiverged, "may have been acknowledged"},
		{"without the promise auto_rejoin repairs it", StartInput{Control: standby, Primary: "n3", Fork: forked, ForkChecked: true, AutoRejoin: true},
			Rejoin, "auto_rejoin"},
		{"a standby that can follow starts as it is", StartInput{Control: standby, Primary: "n3", Fork: clean, ForkChecked: true, Durable: true},
			StartStandby, "was a standby"},
		{"fork unknown (primary unreachable): starts; its monitor checks again", StartInput{Control: standby, Primary: "n3", Durable: true},
			StartStandby, "was a standby"},
		{"another cluster is refused", StartInput{Control: standby, Primary: "n3", Fork: Fork{Foreign: true, Why: "n3 is another database cluster"}, ForkChecked: true, Durable: true, AutoRejoin: true},
			RefuseForeign, "another database cluster"},
		{"an old primary shut down cleanly at the switch point follows without a rewind (a switchover's)",
			StartInput{Control: pg.ControlData{State: pg.StateShutDown}, Primary: "n3", Fork: clean, ForkChecked: true, Durable: true}, StartStandby, "without a rewind"},
		{"a crashed old primary is refused even when its checkpoint is before the fork (its WAL goes further)",
			StartInput{Control: pg.ControlData{State: pg.StateInProduction}, Primary: "n3", Fork: clean, ForkChecked: true, Durable: true}, RefuseDiverged, "may have diverged"},
		{"an old primary past the fork is refused without auto_rejoin",
			StartInput{Control: pg.ControlData{State: pg.StateShutDown}, Primary: "n3", Fork: forked, ForkChecked: true, Durable: true}, RefuseDiverged, "may have diverged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := DecideStart(tt.in)
			if got != tt.want || !strings.Contains(why, tt.says) {
				t.Errorf("got %v %q, want %v saying %q", got, why, tt.want, tt.says)
			}
		})
	}
	// rampart rejoin takes a forked standby too.
	if ok, why := DecideRejoin(StartInput{Control: standby, Primary: "n3", Fork: forked, ForkChecked: true}); !ok {
		t.Errorf("DecideRejoin of a forked standby: %q, want it rejoined", why)
	}
	if ok, why := DecideRejoin(StartInput{Control: standby, Primary: "n3", Fork: clean, ForkChecked: true}); ok || !strings.Contains(why, "as it is") {
		t.Errorf("DecideRejoin of a standby that follows: %v %q", ok, why)
	}
}

func TestEnabledPostgresUnits(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"multi-user.target.wants/postgresql.service", "multi-user.target.wants/pacemaker.service",
		"graphical.target.wants/postgresql@15-main.service", "multi-user.target.wants/postgresql@15-main.service"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/lib/systemd/system/x", filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	got := EnabledPostgresUnits(dir)
	if want := []string{"postgresql.service", "postgresql@15-main.service"}; !slices.Equal(got, want) {
		t.Errorf("EnabledPostgresUnits = %v, want %v", got, want)
	}
	if got := EnabledPostgresUnits(t.TempDir()); len(got) != 0 {
		t.Errorf("nothing enabled: %v", got)
	}
}

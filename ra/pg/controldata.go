package pg

import (
	"fmt"
	"strconv"
	"strings"
)

// ControlData is what pg_controldata says about a data directory, read
// without a running server.
type ControlData struct {
	State             string // "in production", "shut down", "shut down in recovery", "in archive recovery", "in crash recovery", …
	Timeline          uint32 // latest checkpoint's TimeLineID
	CheckpointLSN     LSN    // latest checkpoint location
	MinRecoveryEndLSN LSN    // minimum recovery ending location
	MinRecoveryEndTL  uint32 // its timeline (0 when none)
	SystemID          string // database system identifier
}

// Cluster states of pg_controldata.
const (
	StateInProduction      = "in production"
	StateShutDown          = "shut down"
	StateShutDownRecovery  = "shut down in recovery"
	StateInArchiveRecovery = "in archive recovery"
	StateInCrashRecovery   = "in crash recovery"
	// StateBaseBackup is not pg_controldata's: a base backup that no
	// server has started yet (BaseBackupState).
	StateBaseBackup = "base backup, not started"
)

// BaseBackupState is c as a data directory whose backup_label holds label
// ("" when it has none) should be judged. A copy made by a base backup
// (pg_basebackup, or any tool that writes the label into the copy) carries
// its source's pg_control as the source ran: "in production" for a copy of
// a primary, although no primary ever ran on it; its backup_label says so,
// and PostgreSQL renames that file once it starts the copy. An exclusive
// backup (PostgreSQL 14 and older: BACKUP METHOD: pg_start_backup) leaves
// its label in the running primary's own directory: that one stays a
// primary.
func BaseBackupState(c ControlData, label string) ControlData {
	if label == "" || c.State != StateInProduction {
		return c
	}
	for _, line := range strings.Split(label, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "BACKUP METHOD" && strings.TrimSpace(v) == "pg_start_backup" {
			return c
		}
	}
	c.State = StateBaseBackup
	return c
}

// ParseControlData parses the output of pg_controldata (run with LC_ALL=C so
// the labels are English).
func ParseControlData(out string) (ControlData, error) {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var c ControlData
	var ok bool
	if c.State, ok = fields["Database cluster state"]; !ok {
		return c, fmt.Errorf("pg_controldata: no \"Database cluster state\" line (was it run with LC_ALL=C?)")
	}
	c.SystemID = fields["Database system identifier"]
	tl, err := strconv.ParseUint(fields["Latest checkpoint's TimeLineID"], 10, 32)
	if err != nil {
		return c, fmt.Errorf("pg_controldata: Latest checkpoint's TimeLineID: %w", err)
	}
	c.Timeline = uint32(tl)
	if c.CheckpointLSN, err = ParseLSN(fields["Latest checkpoint location"]); err != nil {
		return c, fmt.Errorf("pg_controldata: latest checkpoint location: %w", err)
	}
	if v := fields["Minimum recovery ending location"]; v != "" {
		if c.MinRecoveryEndLSN, err = ParseLSN(v); err != nil {
			return c, fmt.Errorf("pg_controldata: minimum recovery ending location: %w", err)
		}
	}
	if v := fields["Min recovery ending loc's timeline"]; v != "" {
		tl, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return c, fmt.Errorf("pg_controldata: min recovery ending loc's timeline: %w", err)
		}
		c.MinRecoveryEndTL = uint32(tl)
	}
	return c, nil
}

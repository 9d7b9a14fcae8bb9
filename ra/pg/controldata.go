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
)

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

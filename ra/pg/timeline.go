package pg

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Timelines. A promotion starts a new timeline; its history file lists,
// for every ancestor timeline, the WAL position where the history left it
// (the switch point). A standby holding WAL of an ancestor past that point
// has a history the new timeline does not share: PostgreSQL refuses to
// follow it ("forked off current database system timeline … before current
// recovery point").

// TimelineSwitch is one line of a timeline history file: the history left
// Timeline at End.
type TimelineSwitch struct {
	Timeline uint32
	End      LSN
}

// History is what a server says of its timeline: IDENTIFY_SYSTEM and its
// timeline's history file.
type History struct {
	SystemID string
	Timeline uint32
	LSN      LSN              // its current WAL position (IDENTIFY_SYSTEM's xlogpos)
	Switches []TimelineSwitch // oldest first; empty on timeline 1
}

// SwitchPoint returns where the history left timeline tl, and whether tl is
// an ancestor of it.
func (h History) SwitchPoint(tl uint32) (LSN, bool) {
	for _, s := range h.Switches {
		if s.Timeline == tl {
			return s.End, true
		}
	}
	return 0, false
}

// ParseTimelineHistory parses a timeline history file ("parentTLI
// switchpoint reason" lines; blank and # lines skipped), as PostgreSQL's
// readTimeLineHistory does, and refuses anything else.
func ParseTimelineHistory(text string) ([]TimelineSwitch, error) {
	var out []TimelineSwitch
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %d %q: want a timeline and a switch point", i+1, line)
		}
		tl, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || tl == 0 {
			return nil, fmt.Errorf("timeline history line %d: timeline %q", i+1, f[0])
		}
		end, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: %w", i+1, err)
		}
		if n := len(out); n > 0 && (uint32(tl) <= out[n-1].Timeline || end < out[n-1].End) {
			return nil, fmt.Errorf("timeline history line %d: timeline %d at %s does not follow %d at %s", i+1, tl, end, out[n-1].Timeline, out[n-1].End)
		}
		out = append(out, TimelineSwitch{Timeline: uint32(tl), End: end})
	}
	return out, nil
}

// ReadHistory asks the server at conninfo for its system identifier,
// timeline, WAL position and timeline history over a physical replication
// connection: the standby's own credentials (primary_conninfo, .pgpass) are
// enough.
func ReadHistory(ctx context.Context, conninfo Conninfo) (History, error) {
	c := libpqOnly(conninfo)
	c["replication"] = "true"
	cfg, err := pgconn.ParseConfig(c.String())
	if err != nil {
		return History{}, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return History{}, fmt.Errorf("connect to %s for its timeline history: %w", conninfo["host"], err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var h History
	rows, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 || len(rows[0].Rows[0]) < 3 {
		return h, fmt.Errorf("IDENTIFY_SYSTEM on %s: %v", conninfo["host"], err)
	}
	row := rows[0].Rows[0]
	h.SystemID = string(row[0])
	tl, err := strconv.ParseUint(string(row[1]), 10, 32)
	if err != nil {
		return h, fmt.Errorf("IDENTIFY_SYSTEM on %s: timeline %q", conninfo["host"], row[1])
	}
	h.Timeline = uint32(tl)
	if h.LSN, err = ParseLSN(string(row[2])); err != nil {
		return h, fmt.Errorf("IDENTIFY_SYSTEM on %s: %w", conninfo["host"], err)
	}
	if h.Timeline == 1 {
		return h, nil // no history before the first timeline
	}
	rows, err = conn.Exec(ctx, fmt.Sprintf("TIMELINE_HISTORY %d", h.Timeline)).ReadAll()
	if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 || len(rows[0].Rows[0]) != 2 {
		return h, fmt.Errorf("TIMELINE_HISTORY %d on %s: %v", h.Timeline, conninfo["host"], err)
	}
	if h.Switches, err = ParseTimelineHistory(historyContent(rows[0].Rows[0][1])); err != nil {
		return h, fmt.Errorf("timeline %d history of %s: %w", h.Timeline, conninfo["host"], err)
	}
	return h, nil
}

// historyContent decodes TIMELINE_HISTORY's content column: the file as
// it is, or in bytea's hex output form.
func historyContent(b []byte) string {
	if s, ok := strings.CutPrefix(string(b), `\x`); ok {
		if raw, err := hex.DecodeString(s); err == nil {
			return string(raw)
		}
	}
	return string(b)
}

// libpqOnly drops libpq's socket options, which pgx would send to the
// server as settings.
func libpqOnly(conninfo Conninfo) Conninfo {
	c := Conninfo{}
	for k, v := range conninfo {
		switch k {
		case "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout":
		default:
			c[k] = v
		}
	}
	return c
}

// connectConninfo opens a SQL connection to the server at conninfo.
func connectConninfo(ctx context.Context, conninfo Conninfo) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(libpqOnly(conninfo).String())
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", conninfo["host"], err)
	}
	return conn, nil
}

// WALTimelines returns the newest timeline whose WAL segment files are in
// dir (a data directory's pg_wal), 0 when none. A standby writes the WAL it
// receives into files named after the timeline it receives: files of a
// timeline prove it followed onto it. (Recycled files are named after the
// timeline being replayed when they were recycled, so they prove nothing
// newer.) History files and anything else are ignored.
func WALTimelines(dir string) (uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var newest uint32
	for _, e := range entries {
		if tl, ok := SegmentTimeline(e.Name()); ok && tl > newest {
			newest = tl
		}
	}
	return newest, nil
}

// SegmentTimeline reads the timeline from a WAL segment file name
// (24 hex digits, optionally .partial).
func SegmentTimeline(name string) (uint32, bool) {
	name = strings.TrimSuffix(name, ".partial")
	if len(name) != 24 {
		return 0, false
	}
	for _, r := range name {
		if !strings.ContainsRune("0123456789ABCDEF", r) {
			return 0, false
		}
	}
	tl, err := strconv.ParseUint(name[:8], 16, 32)
	if err != nil || tl == 0 {
		return 0, false
	}
	return uint32(tl), true
}

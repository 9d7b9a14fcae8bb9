package pg

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseTimelineHistory(t *testing.T) {
	got, err := ParseTimelineHistory("1\t0/3000158\tno recovery target specified\n\n# a comment\n2\t0/4034AA0\tno recovery target specified\n")
	want := []TimelineSwitch{{1, 0x3000158}, {2, 0x4034AA0}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	h := History{Timeline: 3, Switches: got}
	if end, ok := h.SwitchPoint(2); !ok || end != 0x4034AA0 {
		t.Errorf("SwitchPoint(2) = %s, %v", end, ok)
	}
	if _, ok := h.SwitchPoint(3); ok {
		t.Errorf("SwitchPoint(3): the timeline itself is no ancestor")
	}
	for _, bad := range []string{"x\t0/1\n", "1\n", "1\tnot-an-lsn\n", "0\t0/1\n", "2\t0/5\n1\t0/6\n", "1\t0/6\n2\t0/5\n"} {
		if got, err := ParseTimelineHistory(bad); err == nil {
			t.Errorf("ParseTimelineHistory(%q) = %v, want an error", bad, got)
		}
	}
}

func FuzzParseTimelineHistory(f *testing.F) {
	f.Add("1\t0/3000158\tno recovery target specified\n")
	f.Add("1\t0/1\n2\t0/2\n# x\n")
	f.Fuzz(func(t *testing.T, text string) {
		sw, err := ParseTimelineHistory(text)
		if err != nil {
			return
		}
		for i := 1; i < len(sw); i++ {
			if sw[i].Timeline <= sw[i-1].Timeline || sw[i].End < sw[i-1].End {
				t.Fatalf("%q: switches out of order: %v", text, sw)
			}
		}
	})
}

func TestHistoryContent(t *testing.T) {
	for in, want := range map[string]string{"1\t0/1\tx\n": "1\t0/1\tx\n", `\x310a`: "1\n", `\xzz`: `\xzz`} {
		if got := historyContent([]byte(in)); got != want {
			t.Errorf("historyContent(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWALTimelines(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"000000020000000000000004", "000000010000000000000009", "00000003.history",
		"000000030000000000000004.partial", "archive_status", "00000004000000000000000G"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if tl, err := WALTimelines(dir); err != nil || tl != 3 {
		t.Errorf("WALTimelines = %d, %v; want 3 (a .partial counts, a history file and a bad name do not)", tl, err)
	}
}

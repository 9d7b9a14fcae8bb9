package admin

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]Command{
		"SHOW NODES":   {Show, "NODES"},
		"show pools;":  {Show, "POOLS"},
		" drain n2 ":   {Drain, "n2"},
		"DETACH db-3;": {Detach, "db-3"},
		"attach n2":    {Attach, "n2"},
		"PAUSE":        {Pause, ""},
		"resume;":      {Resume, ""},
		"RELOAD":       {Reload, ""},
	}
	for sql, want := range good {
		if got, err := Parse(sql); err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", sql, got, err, want)
		}
	}
	bad := map[string]string{
		"":             "empty",
		"SHOW":         "SHOW takes",
		"SHOW FOO":     "unknown",
		"DRAIN":        "node name",
		"DRAIN n1 n2":  "node name",
		"PAUSE now":    "no argument",
		"DROP TABLE t": "unknown command",
		"SELECT 1":     "unknown command",
	}
	for sql, want := range bad {
		if _, err := Parse(sql); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want an error about %q", sql, err, want)
		}
	}
}

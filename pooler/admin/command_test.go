package admin

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := map[string]Command{
		"SHOW NODES":    {Verb: Show, Arg: "NODES"},
		"show pools;":   {Verb: Show, Arg: "POOLS"},
		" drain n2 ":    {Verb: Drain, Arg: "n2"},
		"DETACH db-3;":  {Verb: Detach, Arg: "db-3"},
		"attach n2":     {Verb: Attach, Arg: "n2"},
		"PAUSE":         {Verb: Pause},
		"hold 10s;":     {Verb: Hold, For: 10 * time.Second},
		"HOLD '1500ms'": {Verb: Hold, For: 1500 * time.Millisecond},
		"resume;":       {Verb: Resume},
		"RELOAD":        {Verb: Reload},
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
		"HOLD":         "how long",
		"HOLD 10":      "duration",
		"HOLD -1s":     "duration",
		"HOLD 2h":      "duration",
		"DROP TABLE t": "unknown command",
		"SELECT 1":     "unknown command",
	}
	for sql, want := range bad {
		if _, err := Parse(sql); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want an error about %q", sql, err, want)
		}
	}
}

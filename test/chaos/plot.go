package chaos

import (
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/test/chaos/history"
	"github.com/rampart-ha/rampart/test/seed"
)

// labelsUpTo: with more faults than this, a fault's mark names only its
// number (the report's list says what it was), so labels stay readable.
const labelsUpTo = 24

// Series is the campaign's history as the seed plots it: acknowledged
// writes and answered reads per second, failed and unknown operations as
// errors, and a mark where each fault started.
func Series(h history.History) seed.Series {
	r := seed.NewRecorder(func() time.Time { return h.Started })
	for _, op := range h.Ops {
		kind := seed.Read
		switch {
		case op.Outcome != history.OK:
			kind = seed.Error
		case op.Kind.IsWrite():
			kind = seed.Write
		}
		r.CountAt(kind, h.Started.Add(op.Completed))
	}
	s := r.Snapshot()
	for i, f := range h.Faults {
		label := fmt.Sprintf("%d %s %s", i+1, f.Kind, firstWord(f.Target))
		if len(h.Faults) > labelsUpTo {
			label = fmt.Sprint(i + 1)
		}
		s.Marks = append(s.Marks, seed.Mark{At: f.Start, Label: label})
	}
	return s
}

// SVG is the campaign's timeline (the seed's plot style).
func SVG(res Result, o Options) string {
	return seed.SVG(fmt.Sprintf("chaos campaign, seed %d: %d faults", o.Seed, len(res.History.Faults)), Series(res.History))
}

func firstWord(s string) string {
	for i, r := range s {
		if r == ' ' {
			return s[:i]
		}
	}
	return s
}

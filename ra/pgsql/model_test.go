package pgsql

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra/pg"
)

// A model test of invariant 2 ("never promote a standby that may miss an
// acknowledged commit"): a small model of a primary and its standbys that
// acknowledges commits the way PostgreSQL's synchronous replication does,
// driven by random events, with the primary's monitor running the
// decision core (DecideSync, DecideScores, ScoreChanges, Eligible) in the
// order the agent applies it. After every event, each standby with a
// positive published promotion score must have flushed every acknowledged
// commit. A failure prints the transcript that led to it.

type modelStandby struct {
	name    string
	state   string // "streaming", "catchup", "" (disconnected)
	flush   pg.LSN
	running bool // Pacemaker runs its instance (a clone member)
}

type model struct {
	policy   SyncPolicy
	lsn      pg.LSN // primary's WAL position
	standbys []*modelStandby
	names    pg.SyncNames      // synchronous_standby_names in force
	joined   map[string]pg.LSN // the memo's join positions
	scores   map[string]int    // published promotion scores (what attrd holds)
	pending  []pg.LSN          // commits waiting for synchronous standbys
	acked    pg.LSN            // highest acknowledged commit
	log      []string
	// between the two halves of a monitor: the decision whose raises are due
	due *SyncDecision
	in  SyncInput
}

func (m *model) printf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

// syncStates is what pg_stat_replication shows under the names in force.
func (m *model) syncStates() map[string]string {
	out := map[string]string{}
	listed := func(n string) int {
		for i, x := range m.names.Names {
			if x == n || x == "*" {
				return i
			}
		}
		return -1
	}
	var cands []*modelStandby
	for _, s := range m.standbys {
		if s.state == "" {
			continue
		}
		out[s.name] = "async"
		if !m.names.Empty() && listed(s.name) >= 0 && s.state == "streaming" {
			cands = append(cands, s)
		}
	}
	if m.names.Method == pg.Any {
		for _, s := range cands {
			out[s.name] = "quorum"
		}
		return out
	}
	slices.SortStableFunc(cands, func(a, b *modelStandby) int { return listed(a.name) - listed(b.name) })
	for i, s := range cands {
		if i < m.names.Num {
			out[s.name] = "sync"
		} else {
			out[s.name] = "potential"
		}
	}
	return out
}

// release acknowledges the waiting commits that enough synchronous
// standbys have flushed (PostgreSQL's rule for FIRST and ANY).
func (m *model) release() {
	states := m.syncStates()
	var flushes []pg.LSN
	for _, s := range m.standbys {
		if st := states[s.name]; st == "sync" || st == "quorum" {
			flushes = append(flushes, s.flush)
		}
	}
	var waiting []pg.LSN
	for _, l := range m.pending {
		ok := m.names.Empty()
		if !ok && len(flushes) >= m.names.Num {
			n := 0
			for _, f := range flushes {
				if f >= l {
					n++
				}
			}
			ok = n >= m.names.Num
		}
		if ok {
			m.acked = max(m.acked, l)
		} else {
			waiting = append(waiting, l)
		}
	}
	m.pending = waiting
}

func (m *model) observe() SyncInput {
	states := m.syncStates()
	in := SyncInput{Self: "p", PrimaryLSN: m.lsn, Current: m.names, JoinedAt: m.joined}
	for _, s := range m.standbys {
		if s.running {
			in.Members = append(in.Members, s.name)
		}
		if s.state != "" {
			in.Standbys = append(in.Standbys, Standby{Name: s.name, State: s.state, SyncState: states[s.name], FlushLSN: s.flush})
		}
	}
	return in
}

func (m *model) publish(changes map[string]int) {
	for n, s := range changes {
		m.scores[n] = s
	}
}

// monitorStart is the first half of the primary's monitor: observe,
// decide, lower scores, put the names in force (join positions after the
// reload).
func (m *model) monitorStart() {
	in := m.observe()
	d := DecideSync(in, m.policy)
	scores := DecideScores(in, m.policy, d)
	lower, _ := ScoreChanges(m.scores, scores)
	m.publish(lower)
	if !d.Names.Equal(m.names) {
		for _, n := range d.Names.Names {
			if !slices.Contains(m.names.Names, n) || !tight(m.names) {
				d.JoinedAt[n] = m.lsn
			}
		}
		m.printf("monitor: names %q → %q (%s), lowered %v", m.names.String(), d.Names.String(), d.Reason, lower)
		m.names = d.Names
	} else {
		m.printf("monitor: names stay %q, lowered %v", m.names.String(), lower)
	}
	m.due, m.in = &d, in
}

// monitorEnd is the second half: re-observe who is eligible and raise.
func (m *model) monitorEnd() {
	d, in := *m.due, m.in
	m.due = nil
	now := m.observe()
	d.Eligible = Eligible(d.Names, d.JoinedAt, now.Standbys)
	in.Standbys = now.Standbys
	scores := DecideScores(in, m.policy, d)
	lower, raise := ScoreChanges(m.scores, scores)
	m.publish(lower)
	m.publish(raise)
	m.printf("monitor: lowered %v, raised %v (eligible %v)", lower, raise, d.Eligible)
	m.joined = d.JoinedAt
}

func (m *model) step(r *rand.Rand) {
	s := m.standbys[r.IntN(len(m.standbys))]
	switch k := r.IntN(100); {
	case k < 35:
		m.lsn += pg.LSN(1 + r.IntN(100))
		m.pending = append(m.pending, m.lsn)
		m.printf("commit at %d", m.lsn)
	case k < 65:
		if s.state != "" && s.flush < m.lsn {
			s.flush += pg.LSN(1 + r.IntN(int(m.lsn-s.flush)))
			if s.state == "catchup" && s.flush == m.lsn {
				s.state = "streaming"
			}
			m.printf("%s flushed %d (%s)", s.name, s.flush, s.state)
		}
	case k < 72:
		if s.state != "" {
			s.state = ""
			s.running = r.IntN(2) == 0
			m.printf("%s disconnected (instance running: %v)", s.name, s.running)
		}
	case k < 80:
		if s.state == "" {
			s.state, s.running = "catchup", true
			m.printf("%s reconnected at %d", s.name, s.flush)
		}
	default:
		if m.due == nil {
			m.monitorStart()
		} else {
			m.monitorEnd()
		}
	}
	m.release()
}

// violation returns a standby with a positive score that misses an
// acknowledged commit.
func (m *model) violation() string {
	for _, s := range m.standbys {
		if m.scores[s.name] > 0 && s.flush < m.acked {
			return fmt.Sprintf("%s has score %d but flushed %d < acknowledged %d", s.name, m.scores[s.name], s.flush, m.acked)
		}
	}
	return ""
}

func TestModelNoCandidateMissesAnAcknowledgedCommit(t *testing.T) {
	policies := map[string]SyncPolicy{
		"FIRST 1":       {Count: 1, Method: pg.First, Mode: Durability},
		"FIRST 2":       {Count: 2, Method: pg.First, Mode: Durability},
		"FIRST 1 + lag": {Count: 1, Method: pg.First, Mode: Durability, MaxLag: 150},
		"ANY 1":         {Count: 1, Method: pg.Any, Mode: Durability},
		"ANY 2 + lag":   {Count: 2, Method: pg.Any, Mode: Durability, MaxLag: 150},
	}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			seeds := uint64(2000)
			if testing.Short() {
				seeds = 200
			}
			// Safety alone is easy (never name a candidate): the model also
			// counts the steps with one, and the commits acknowledged.
			steps, withCandidate, acked := 0, 0, 0
			for seed := uint64(1); seed <= seeds; seed++ {
				r := rand.New(rand.NewPCG(seed, 7))
				m := &model{policy: p, joined: map[string]pg.LSN{}, scores: map[string]int{}}
				for i := 1; i <= 3; i++ {
					m.standbys = append(m.standbys, &modelStandby{name: fmt.Sprintf("s%d", i), state: "streaming", running: true})
				}
				for i := 0; i < 300; i++ {
					m.step(r)
					if v := m.violation(); v != "" {
						t.Fatalf("seed %d, step %d: %s\ntranscript (last 40):\n  %s", seed, i, v, strings.Join(m.log[max(0, len(m.log)-40):], "\n  "))
					}
					steps++
					if slices.ContainsFunc(m.standbys, func(s *modelStandby) bool { return m.scores[s.name] > 0 }) {
						withCandidate++
					}
				}
				acked += int(m.acked)
			}
			share := float64(withCandidate) / float64(steps)
			t.Logf("a candidate in %.0f%% of %d steps; %d bytes of commits acknowledged", 100*share, steps, acked)
			if share < 0.03 {
				t.Errorf("a candidate in only %.0f%% of the steps: the decisions are safe but useless", 100*share)
			}
		})
	}
}

package pgsql

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pg"
)

// A model test of invariant 2 ("never promote a standby that may miss an
// acknowledged commit"). A small world — a primary and three standbys that
// acknowledge commits the way PostgreSQL's synchronous replication does,
// attrd's promotion scores, the CIB's durable record, the primary's memo —
// is driven by random events, and the primary runs the agent's own sync
// round (RunSync) against it through SyncEffects. Events happen between
// any two of the round's steps, so the round's order is what is tested:
// reorder RunSync and the model fails.
//
// After every event, were the primary to die right then, no node that
// could be promoted may miss an acknowledged commit: neither a standby
// with a positive score (Pacemaker promotes it) nor, when none has one, a
// standby whose election (DecideElection, with the durable record) would
// volunteer it. Standbys restart (their start deletes their score), lose
// their transient attributes (their node's Pacemaker restarts), and
// walsenders that are no member (a running pg_basebackup) come and go;
// none of them may ever be named synchronous. A failure prints the
// transcript that led to it.

type modelStandby struct {
	name    string
	state   string // "streaming", "catchup", "" (disconnected)
	flush   pg.LSN
	running bool // Pacemaker runs its instance (a clone member)
}

type model struct {
	t        *testing.T
	r        *rand.Rand
	policy   SyncPolicy
	now      time.Time
	lsn      pg.LSN // primary's WAL position
	standbys []*modelStandby
	backup   *Standby          // a pg_basebackup's walsender, when one runs
	names    pg.SyncNames      // synchronous_standby_names in force
	scores   map[string]int    // promotion scores attrd holds
	synced   SyncedSet         // the CIB's durable record
	prefer   string            // the standby an operator asked to prefer as synchronous
	memo     Memo              // the primary's private memo
	states   map[string]string // published states
	pending  []pg.LSN          // commits waiting for synchronous standbys
	acked    pg.LSN            // highest acknowledged commit
	log      []string
	failed   string
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
	var cands []Standby
	for _, s := range m.rows() {
		out[s.Name] = "async"
		if !m.names.Empty() && listed(s.Name) >= 0 && s.State == "streaming" {
			cands = append(cands, s)
		}
	}
	if m.names.Method == pg.Any {
		for _, s := range cands {
			out[s.Name] = "quorum"
		}
		return out
	}
	slices.SortStableFunc(cands, func(a, b Standby) int { return listed(a.Name) - listed(b.Name) })
	for i, s := range cands {
		if i < m.names.Num {
			out[s.Name] = "sync"
		} else {
			out[s.Name] = "potential"
		}
	}
	return out
}

// rows is pg_stat_replication without sync states: connected standbys and
// the backup's walsender.
func (m *model) rows() []Standby {
	var rows []Standby
	for _, s := range m.standbys {
		if s.state != "" {
			rows = append(rows, Standby{Name: s.name, State: s.state, FlushLSN: s.flush})
		}
	}
	if m.backup != nil {
		rows = append(rows, *m.backup)
	}
	return rows
}

func (m *model) observeRows() []Standby {
	states := m.syncStates()
	rows := m.rows()
	for i := range rows {
		rows[i].SyncState = states[rows[i].Name]
	}
	return rows
}

// release acknowledges the waiting commits that enough synchronous
// standbys have flushed (PostgreSQL's rule for FIRST and ANY).
func (m *model) release() {
	var flushes []pg.LSN
	for _, s := range m.observeRows() {
		if s.SyncState == "sync" || s.SyncState == "quorum" {
			flushes = append(flushes, s.FlushLSN)
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

func (m *model) members() []string {
	var out []string
	for _, s := range m.standbys {
		if s.running {
			out = append(out, s.name)
		}
	}
	return out
}

// event is one random thing happening in the world.
func (m *model) event() {
	s := m.standbys[m.r.IntN(len(m.standbys))]
	switch k := m.r.IntN(100); {
	case k < 35:
		m.lsn += pg.LSN(1 + m.r.IntN(100))
		m.pending = append(m.pending, m.lsn)
		m.printf("commit at %d", m.lsn)
	case k < 70:
		if s.state != "" && s.flush < m.lsn {
			s.flush += pg.LSN(1 + m.r.IntN(int(m.lsn-s.flush)))
			if s.state == "catchup" && s.flush == m.lsn {
				s.state = "streaming"
			}
			m.printf("%s flushed %d (%s)", s.name, s.flush, s.state)
		}
	case k < 75:
		if s.state != "" {
			s.state = ""
			s.running = m.r.IntN(2) == 0
			m.printf("%s disconnected (instance running: %v)", s.name, s.running)
		}
	case k < 85:
		if s.state == "" {
			s.state, s.running = "catchup", true
			m.printf("%s reconnected at %d", s.name, s.flush)
		}
	case k < 87:
		// Its instance restarts: start deletes its own score.
		s.state, s.running = "", true
		delete(m.scores, s.name)
		m.printf("%s restarted (its score deleted)", s.name)
	case k < 89:
		// Its node's Pacemaker restarts: every transient attribute of the
		// node is gone, the score with it.
		delete(m.scores, s.name)
		m.printf("%s lost its transient attributes", s.name)
	case k < 90:
		m.memo = Memo{}
		m.printf("the primary lost its memo")
	case k < 94:
		if m.backup == nil {
			m.backup = &Standby{Name: "pg_basebackup", State: "streaming", FlushLSN: m.lsn}
			m.printf("a base backup streams at %d", m.lsn)
		} else {
			m.backup = nil
			m.printf("the base backup ended")
		}
	case k < 96:
		// rampart switchover asks for a standby, or removes its wish.
		if m.prefer == "" {
			m.prefer = s.name
		} else {
			m.prefer = ""
		}
		m.printf("preferred synchronous standby: %q", m.prefer)
	default:
		if m.backup != nil {
			m.backup.FlushLSN = m.lsn
		}
	}
	m.release()
	m.check()
}

// events lets something happen, or not: called inside every effect, so
// that the world moves between the round's steps.
func (m *model) events() {
	for range m.r.IntN(2) {
		m.event()
	}
}

// check is the invariant: whoever could be promoted, were the primary to
// die now, holds every acknowledged commit.
func (m *model) check() {
	if m.failed != "" {
		return
	}
	for _, s := range m.standbys {
		if m.scores[s.name] > 0 && s.flush < m.acked {
			m.failed = fmt.Sprintf("%s has score %d but flushed %d < acknowledged %d", s.name, m.scores[s.name], s.flush, m.acked)
			return
		}
	}
	for _, n := range m.synced.Standbys {
		if s := m.standby(n); s != nil && s.flush < m.acked {
			m.failed = fmt.Sprintf("the durable record %q names %s, which flushed %d < acknowledged %d", m.synced, n, s.flush, m.acked)
			return
		}
	}
	for _, n := range m.names.Names {
		if n != "*" && m.standby(n) == nil {
			m.failed = fmt.Sprintf("synchronous_standby_names %q names %s, no member of the cluster", m.names, n)
			return
		}
	}
	// The primary dies now: who would the election promote?
	scores := map[string]string{}
	reports := map[string]Candidate{}
	var active []string
	for _, s := range m.standbys {
		if sc, ok := m.scores[s.name]; ok {
			scores[s.name] = FormatScore(sc)
		}
		if s.running {
			active = append(active, s.name)
			reports[s.name] = Candidate{Node: s.name, Timeline: 1, ReceivedLSN: s.flush}
		}
	}
	for _, s := range m.standbys {
		if !s.running {
			continue
		}
		in := ElectionInput{Self: s.name, Reports: reports, Active: active, Scores: scores, Synced: m.synced, Durable: m.policy.Count > 0}
		if ok, why := DecideElection(in); ok && s.flush < m.acked {
			m.failed = fmt.Sprintf("with the primary gone %s would volunteer (%s) but flushed %d < acknowledged %d", s.name, why, s.flush, m.acked)
			return
		}
	}
}

func (m *model) standby(name string) *modelStandby {
	for _, s := range m.standbys {
		if s.name == name {
			return s
		}
	}
	return nil
}

// SyncEffects on the model.

func (m *model) Observe(context.Context) (PrimaryObservation, error) {
	m.events()
	return PrimaryObservation{Timeline: 1, LSN: m.lsn, Rows: m.observeRows(), SyncNames: m.names.String()}, nil
}

func (m *model) Memo(context.Context) (Memo, error) {
	m.events()
	return ParseMemo(m.memo.String()), nil
}

func (m *model) Scores(context.Context) (map[string]int, error) {
	m.events()
	return maps.Clone(m.scores), nil
}

func (m *model) SetScores(_ context.Context, changes map[string]int) error {
	m.events()
	for n, s := range changes {
		// A candidate is on the record first: were its score lost with its
		// node's attributes, the election must still let it volunteer.
		if s > 0 && !m.synced.Has(n) && m.failed == "" {
			m.failed = fmt.Sprintf("%s raised to %d before the durable record %q has it", n, s, m.synced)
		}
		m.scores[n] = s
	}
	m.printf("round: scores %v", changes)
	m.check()
	return nil
}

func (m *model) Synced(context.Context) (SyncedSet, string, error) {
	return m.synced, m.prefer, nil
}

func (m *model) SetSynced(_ context.Context, s SyncedSet) error {
	m.events()
	m.synced = s
	m.printf("round: record %q", s)
	m.check()
	return nil
}

func (m *model) PutNames(_ context.Context, names pg.SyncNames) (pg.LSN, error) {
	m.events()
	m.printf("round: names %q → %q", m.names, names)
	m.names = names
	m.release()
	m.check()
	m.events()
	return m.lsn, nil
}

func (m *model) AwaitStandbys(_ context.Context, done func([]Standby) bool) ([]Standby, error) {
	for range 3 {
		m.events()
		if rows := m.observeRows(); done(rows) {
			return rows, nil
		}
	}
	return m.observeRows(), nil
}

func (m *model) SetStates(_ context.Context, changes map[string]string) error {
	m.events()
	maps.Copy(m.states, changes)
	return nil
}

// Quorate: the model's primary keeps its majority (partitions are the
// e2e tests' and TestRunSyncStopsWhenQuorumGoesMidRound's).
func (m *model) Quorate(context.Context) (bool, error) { return true, nil }

func (m *model) SaveMemo(_ context.Context, memo Memo) error {
	m.events()
	m.memo = memo
	return nil
}

// newModel is a primary just promoted, as promote leaves it: the record
// names it alone, its standbys are named (not tightly), the memo says when.
func newModel(t *testing.T, p SyncPolicy, seed uint64) *model {
	m := &model{t: t, r: rand.New(rand.NewPCG(seed, 7)), policy: p, now: time.Unix(1_000_000, 0),
		scores: map[string]int{"p": PrimaryScore}, states: map[string]string{}}
	for i := 1; i <= 3; i++ {
		m.standbys = append(m.standbys, &modelStandby{name: fmt.Sprintf("s%d", i), running: true})
	}
	d := DecideSync(SyncInput{Self: "p", Members: m.members()}, p)
	m.names = d.Names
	m.synced = SyncedSet{Timeline: 1, Primary: "p"}
	m.memo = PromotionMemo(d.Names, 0, m.now.UnixMilli())
	m.memo.Synced = m.synced.String()
	for _, s := range m.standbys {
		s.state = "streaming" // at the promotion's position, as they reconnect
	}
	return m
}

func TestModelNoCandidateMissesAnAcknowledgedCommit(t *testing.T) {
	policies := map[string]SyncPolicy{
		"FIRST 1":       {Count: 1, Method: pg.First, Mode: Durability},
		"FIRST 2":       {Count: 2, Method: pg.First, Mode: Durability},
		"FIRST 1 + lag": {Count: 1, Method: pg.First, Mode: Durability, MaxLag: 150},
		"ANY 1":         {Count: 1, Method: pg.Any, Mode: Durability},
		"ANY 2 + lag":   {Count: 2, Method: pg.Any, Mode: Durability, MaxLag: 150},
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
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
				m := newModel(t, p, seed)
				for i := 0; i < 200 && m.failed == ""; i++ {
					if m.r.IntN(4) == 0 {
						m.now = m.now.Add(time.Second)
						m.printf("-- sync round")
						round := SyncRound{Self: "p", Members: m.members(), Policy: p, Now: m.now, Log: quiet}
						if err := RunSync(context.Background(), m, round); err != nil {
							t.Fatal(err)
						}
					} else {
						m.event()
					}
					steps++
					if slices.ContainsFunc(m.standbys, func(s *modelStandby) bool { return m.scores[s.name] > 0 }) {
						withCandidate++
					}
				}
				if m.failed != "" {
					t.Fatalf("seed %d: %s\ntranscript (last 60):\n  %s", seed, m.failed, strings.Join(m.log[max(0, len(m.log)-60):], "\n  "))
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

package pgsql

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/pg"
)

// scripted is SyncEffects that plays a fixed world: what Observe and
// AwaitStandbys return, what PutNames says the position is afterwards.
type scripted struct {
	obs    PrimaryObservation
	after  pg.LSN    // PutNames' position after the reload
	await  []Standby // what the second look sees
	scores map[string]int
	synced SyncedSet
	memo   Memo
	names  []string // names put in force, in order
	raised []string
	quorum []bool // what Quorate answers, call by call; true once used up
	prefer string // the preferred synchronous standby
}

func (s *scripted) Observe(context.Context) (PrimaryObservation, error) { return s.obs, nil }
func (s *scripted) Memo(context.Context) (Memo, error)                  { return s.memo, nil }
func (s *scripted) Scores(context.Context) (map[string]int, error)      { return maps.Clone(s.scores), nil }
func (s *scripted) SetScores(_ context.Context, c map[string]int) error {
	for n, v := range c {
		if v > 0 {
			s.raised = append(s.raised, n)
		}
		s.scores[n] = v
	}
	return nil
}
func (s *scripted) Synced(context.Context) (SyncedSet, string, error) {
	return s.synced, s.prefer, nil
}
func (s *scripted) SetSynced(_ context.Context, r SyncedSet) error { s.synced = r; return nil }
func (s *scripted) PutNames(_ context.Context, n pg.SyncNames) (pg.LSN, error) {
	s.names = append(s.names, n.String())
	return s.after, nil
}
func (s *scripted) AwaitStandbys(_ context.Context, done func([]Standby) bool) ([]Standby, error) {
	return s.await, nil
}
func (s *scripted) SetStates(context.Context, map[string]string) error { return nil }
func (s *scripted) SaveMemo(_ context.Context, m Memo) error           { s.memo = m; return nil }
func (s *scripted) Quorate(context.Context) (bool, error) {
	if len(s.quorum) == 0 {
		return true, nil
	}
	q := s.quorum[0]
	s.quorum = s.quorum[1:]
	return q, nil
}

// Found by the model test: under ANY 1 (s1, s2) any one standby
// acknowledges. The round sees s1 confirmed and narrows the list to ANY 1
// (s1); meanwhile s2 alone acknowledged commits up to 0/200. s1 confirmed
// before the change only up to 0/100: it may be raised only once it
// confirmed past the position after the change, not on what the first
// look saw.
func TestRunSyncRaisesOnlyPastTheNewJoinPosition(t *testing.T) {
	quorum := func(n string, flush pg.LSN) Standby {
		return Standby{Name: n, State: "streaming", SyncState: "quorum", FlushLSN: flush}
	}
	p := SyncPolicy{Count: 1, Method: pg.Any, Mode: Durability}
	fx := &scripted{
		obs:    PrimaryObservation{Timeline: 2, LSN: 0x100, SyncNames: "ANY 1 (s1, s2)", Rows: []Standby{quorum("s1", 0x100), quorum("s2", 0x90)}},
		after:  0x200,
		await:  []Standby{quorum("s1", 0x100), quorum("s2", 0x200)},
		scores: map[string]int{"p": PrimaryScore},
	}
	r := SyncRound{Self: "p", Members: []string{"s1", "s2"}, Policy: p, Now: time.Unix(1000, 0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := RunSync(context.Background(), fx, r); err != nil {
		t.Fatal(err)
	}
	if len(fx.names) != 1 || fx.names[0] != "ANY 1 (s1)" {
		t.Fatalf("names put in force: %v, want ANY 1 (s1)", fx.names)
	}
	if len(fx.raised) > 0 || fx.synced.Has("s1") {
		t.Errorf("raised %v, record %q: s1 confirmed only up to 0/100, commits up to 0/200 were acknowledged without it", fx.raised, fx.synced)
	}
	// Once it confirms past the change, the next round raises it.
	fx.obs = PrimaryObservation{Timeline: 2, LSN: 0x300, SyncNames: "ANY 1 (s1)", Rows: []Standby{quorum("s1", 0x300), {Name: "s2", State: "streaming", SyncState: "async", FlushLSN: 0x300}}}
	if err := RunSync(context.Background(), fx, r); err != nil {
		t.Fatal(err)
	}
	if fx.scores["s1"] != SyncScore || !fx.synced.Has("s1") {
		t.Errorf("after confirming past its join position: scores %v, record %q; want s1 a candidate on the record", fx.scores, fx.synced)
	}
}

// A partition without quorum wrote its own record (its primary, alone)
// while the majority promoted another node; when it rejoins, Pacemaker
// keeps the CIB with the higher version, which may be the minority's. The
// primary's next round finds the record amiss and writes its own again,
// though its scores did not change. Before, it compared with its memo and
// left the stale record in place, naming an old primary no election should
// trust.
func TestRunSyncRewritesARecordARejoiningPartitionBroughtBack(t *testing.T) {
	p := SyncPolicy{Count: 1, Method: pg.First, Mode: Durability}
	n2 := Standby{Name: "n2", State: "streaming", SyncState: "sync", FlushLSN: 0x500}
	mine := SyncedSet{Timeline: 3, Primary: "n3", Standbys: []string{"n2"}}
	fx := &scripted{
		obs:    PrimaryObservation{Timeline: 3, LSN: 0x500, SyncNames: `FIRST 1 ("n2")`, Rows: []Standby{n2}},
		await:  []Standby{n2},
		scores: map[string]int{"n3": PrimaryScore, "n2": SyncScore, "n1": NoPromotion},
		synced: SyncedSet{Timeline: 2, Primary: "n1"},
		memo:   Memo{Joined: map[string]string{"n2": "0/100"}, Synced: mine.String()},
	}
	r := SyncRound{Self: "n3", Members: []string{"n1", "n2"}, Policy: p, Now: time.Unix(1000, 0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := RunSync(context.Background(), fx, r); err != nil {
		t.Fatal(err)
	}
	if fx.synced.String() != mine.String() {
		t.Errorf("record after the round: %q, want %q", fx.synced, mine)
	}
}

// Found by the e2e partition test in CI: the primary n1, cut off, checked
// quorum at the start of its monitor, lost it a moment later, then shrank
// its record (in its own partition's CIB) and widened its names from
// FIRST 1 (n2) to FIRST 1 (n2, n3). When the link came back, n3
// reconnected to it and acknowledged its waiting commits, while the
// majority's record still named n2, which it promoted: a commit was lost.
// Quorum is checked again before every effect; after the record, it is
// gone, and the names stay.
func TestRunSyncStopsWhenQuorumGoesMidRound(t *testing.T) {
	p := SyncPolicy{Count: 1, Method: pg.First, Mode: Durability}
	n3 := Standby{Name: "n3", State: "streaming", SyncState: "async", FlushLSN: 0x400}
	fx := &scripted{
		obs:    PrimaryObservation{Timeline: 2, LSN: 0x500, SyncNames: `FIRST 1 (n2)`, Rows: []Standby{n3}},
		await:  []Standby{n3},
		scores: map[string]int{"n1": PrimaryScore, "n2": SyncScore, "n3": NoPromotion},
		synced: SyncedSet{Timeline: 2, Primary: "n1", Standbys: []string{"n2"}},
		memo:   Memo{Joined: map[string]string{"n2": "0/100"}},
		quorum: []bool{false},
	}
	r := SyncRound{Self: "n1", Members: []string{"n2", "n3"}, Policy: p, Now: time.Unix(1000, 0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := RunSync(context.Background(), fx, r); err != nil {
		t.Fatal(err)
	}
	if len(fx.names) > 0 || fx.synced.String() != (SyncedSet{Timeline: 2, Primary: "n1", Standbys: []string{"n2"}}).String() || fx.scores["n2"] != SyncScore {
		t.Errorf("without quorum the round changed names %v, record %q, scores %v; want nothing changed", fx.names, fx.synced, fx.scores)
	}
	// With quorum the same round does shrink the record and widen the
	// names: the guard above is what stopped it.
	fx.quorum = nil
	if err := RunSync(context.Background(), fx, r); err != nil {
		t.Fatal(err)
	}
	if len(fx.names) != 1 || fx.synced.Has("n2") {
		t.Errorf("with quorum: names %v, record %q; want the names widened after n2 left the record", fx.names, fx.synced)
	}
}

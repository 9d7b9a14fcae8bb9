package pgsql

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pg"
)

func lsn(s string) pg.LSN {
	l, err := pg.ParseLSN(s)
	if err != nil {
		panic(err)
	}
	return l
}

func names(method pg.Method, num int, n ...string) pg.SyncNames {
	return pg.SyncNames{Method: method, Num: num, Names: n}
}

var durable1 = SyncPolicy{Count: 1, Method: pg.First, MaxLag: 16 << 20, Mode: Durability}

// A list naming more standbys than must confirm has no candidate: under
// FIRST 1 (n2, n3), n3 acknowledges alone the moment n2 disconnects, before
// any monitor could lower n2's score.
func TestEligibleNeedsATightList(t *testing.T) {
	joined := map[string]pg.LSN{"n2": 0, "n3": 0}
	sb := []Standby{{Name: "n2", State: "streaming", SyncState: "sync", FlushLSN: 100}, {Name: "n3", State: "streaming", SyncState: "potential", FlushLSN: 90}}
	for _, tt := range []struct {
		names pg.SyncNames
		want  []string
	}{
		{names(pg.First, 1, "n2"), []string{"n2"}},
		{names(pg.First, 1, "n2", "n3"), nil},
		{names(pg.First, 1, "*"), nil},
		{names(pg.Any, 1, "n2", "n3"), nil},
		{names(pg.Any, 2, "n2", "n3"), []string{"n2"}}, // every commit needs both; n3 is not confirmed
	} {
		if got := Eligible(tt.names, joined, sb); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Eligible(%s) = %v, want %v", tt.names, got, tt.want)
		}
	}
}

func TestDecideSync(t *testing.T) {
	streaming := func(name, sync, flush string) Standby {
		return Standby{Name: name, State: "streaming", SyncState: sync, FlushLSN: lsn(flush)}
	}
	tests := []struct {
		name    string
		in      SyncInput
		p       SyncPolicy
		want    pg.SyncNames
		elig    []string
		blocked bool
		async   bool
	}{
		{
			name: "fresh primary without a set picks the most advanced streaming standby",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"},
				Standbys: []Standby{streaming("n2", "async", "0/4000000"), streaming("n3", "async", "0/5000000")}},
			p: durable1, want: names(pg.First, 1, "n3"),
		},
		{
			name: "the current sync standby stays while it qualifies, even if another is ahead",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")},
				Standbys: []Standby{streaming("n2", "sync", "0/4F00000"), streaming("n3", "async", "0/5000000")}},
			p: durable1, want: names(pg.First, 1, "n2"), elig: []string{"n2"},
		},
		{
			name: "a preferred standby that qualifies replaces the current one (a failback asked for it)",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")}, Prefer: "n3",
				Standbys: []Standby{streaming("n2", "sync", "0/5000000"), streaming("n3", "async", "0/4F00000")}},
			p: durable1, want: names(pg.First, 1, "n3"),
		},
		{
			name: "a preferred standby that does not qualify (too far behind) changes nothing",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")}, Prefer: "n3",
				Standbys: []Standby{streaming("n2", "sync", "0/5000000"), streaming("n3", "async", "0/1000000")}},
			p: durable1, want: names(pg.First, 1, "n2"), elig: []string{"n2"},
		},
		{
			name: "after a promotion names several, the one PostgreSQL counts as sync stays (no churn)",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n3", "n2"),
				JoinedAt: map[string]pg.LSN{"n3": lsn("0/4000000"), "n2": lsn("0/4000000")},
				Standbys: []Standby{streaming("n2", "potential", "0/5000000"), streaming("n3", "sync", "0/5000000")}},
			p: durable1, want: names(pg.First, 1, "n3"), elig: []string{"n3"},
		},
		{
			name: "a dead sync standby is replaced by a streaming one at once (ClusterLabs: empties the list for a monitor or more)",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")},
				Standbys: []Standby{streaming("n3", "async", "0/6000000")}},
			p: durable1, want: names(pg.First, 1, "n3"),
			// n3 joined just now: eligible only once it confirms as sync.
		},
		{
			name: "the replacement becomes eligible once it confirms as sync past its join position",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6100000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n3"),
				JoinedAt: map[string]pg.LSN{"n3": lsn("0/6000000")},
				Standbys: []Standby{streaming("n3", "sync", "0/6100000")}},
			p: durable1, want: names(pg.First, 1, "n3"), elig: []string{"n3"},
		},
		{
			name: "a sync member that has not flushed up to its join position is not eligible yet",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6100000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n3"),
				JoinedAt: map[string]pg.LSN{"n3": lsn("0/6000000")},
				Standbys: []Standby{streaming("n3", "sync", "0/5FFFFFF")}},
			p: durable1, want: names(pg.First, 1, "n3"),
		},
		{
			name: "durability: with no qualified standby the list keeps the dead member and commits wait (ClusterLabs: goes async)",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")}},
			p: durable1, want: names(pg.First, 1, "n2", "n3"), blocked: true,
		},
		{
			name: "durability: a new primary with no standby yet names the known standbys, never an empty list",
			in:   SyncInput{Self: "n2", PrimaryLSN: lsn("0/7000000"), Members: []string{"n1", "n3"}},
			p:    durable1, want: names(pg.First, 1, "n1", "n3"), blocked: true,
		},
		{
			name: "durability: no standby known at all waits for any",
			in:   SyncInput{Self: "n1", PrimaryLSN: lsn("0/7000000")},
			p:    durable1, want: names(pg.First, 1, "*"), blocked: true,
		},
		{
			name: "a standby still catching up does not qualify",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/7000000"), Members: []string{"n2"},
				Standbys: []Standby{{Name: "n2", State: "catchup", SyncState: "async", FlushLSN: lsn("0/1000000")}}},
			p: durable1, want: names(pg.First, 1, "n2"), blocked: true,
		},
		{
			name: "narrowed from a longer list, the member confirms anew from now (found by the model test)",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2", "n3"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000"), "n3": lsn("0/1000000")},
				Standbys: []Standby{streaming("n2", "sync", "0/5000000")}},
			p: durable1, want: names(pg.First, 1, "n2"),
		},
		{
			name: "a sync standby that lags past the limit but streams keeps the list to itself and stays a candidate",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("1/0"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000")},
				Standbys: []Standby{streaming("n2", "sync", "0/2000000")}},
			p: durable1, want: names(pg.First, 1, "n2"), elig: []string{"n2"}, blocked: true,
		},
		{
			name: "a streaming standby beyond the lag limit does not qualify",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("1/0"), Members: []string{"n2", "n3"},
				Standbys: []Standby{streaming("n2", "async", "0/0"), streaming("n3", "async", "0/FFFFF000")}},
			p: durable1, want: names(pg.First, 1, "n3"),
		},
		{
			name: "availability within the grace period still waits",
			in:   SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2"}, Current: names(pg.First, 1, "n2"), ShortFor: 2 * time.Second},
			p:    SyncPolicy{Count: 1, Method: pg.First, Mode: Availability, Grace: 10 * time.Second},
			want: names(pg.First, 1, "n2"), blocked: true,
		},
		{
			name: "availability after the grace period goes asynchronous and says so",
			in:   SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2"}, Current: names(pg.First, 1, "n2"), ShortFor: 10 * time.Second},
			p:    SyncPolicy{Count: 1, Method: pg.First, Mode: Availability, Grace: 10 * time.Second},
			want: pg.SyncNames{}, async: true,
		},
		{
			name: "availability after the grace period keeps the standbys that do qualify",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3"}, Current: names(pg.Any, 2, "n2", "n3"),
				JoinedAt: map[string]pg.LSN{"n2": 0, "n3": 0}, ShortFor: time.Minute,
				Standbys: []Standby{streaming("n2", "quorum", "0/6000000")}},
			p:    SyncPolicy{Count: 2, Method: pg.Any, Mode: Availability, Grace: 10 * time.Second},
			want: names(pg.Any, 1, "n2"), async: true, elig: []string{"n2"},
		},
		{
			name: "ANY 2 of three streaming standbys",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3", "n4"},
				Standbys: []Standby{streaming("n2", "async", "0/5000000"), streaming("n3", "async", "0/6000000"), streaming("n4", "async", "0/5800000")}},
			p:    SyncPolicy{Count: 2, Method: pg.Any, Mode: Durability},
			want: names(pg.Any, 2, "n3", "n4"),
		},
		{
			name: "sync_count=0 is asynchronous replication",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2"},
				Standbys: []Standby{streaming("n2", "async", "0/6000000")}},
			p:    SyncPolicy{Count: 0, Mode: Durability},
			want: pg.SyncNames{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideSync(tt.in, tt.p)
			if !d.Names.Equal(tt.want) || d.Names.String() != tt.want.String() {
				t.Errorf("names %q, want %q (%s)", d.Names, tt.want, d.Reason)
			}
			if !reflect.DeepEqual(d.Eligible, tt.elig) {
				t.Errorf("eligible %v, want %v", d.Eligible, tt.elig)
			}
			if d.WritesBlocked != tt.blocked || d.WentAsync != tt.async {
				t.Errorf("blocked=%v async=%v, want %v %v (%s)", d.WritesBlocked, d.WentAsync, tt.blocked, tt.async, d.Reason)
			}
			if d.Reason == "" {
				t.Error("no reason for the log")
			}
			for _, n := range d.Names.Names {
				if n == tt.in.Self {
					t.Errorf("the primary names itself: %q", d.Names)
				}
				if _, ok := d.JoinedAt[n]; !ok {
					t.Errorf("no join position for %s", n)
				}
			}
		})
	}
}

func TestJoinPositionOfNewMemberIsThePrimaryPosition(t *testing.T) {
	d := DecideSync(SyncInput{Self: "n1", PrimaryLSN: lsn("0/6000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
		JoinedAt: map[string]pg.LSN{"n2": lsn("0/100")},
		Standbys: []Standby{{Name: "n3", State: "streaming", SyncState: "async", FlushLSN: lsn("0/6000000")}}}, durable1)
	if d.JoinedAt["n3"] != lsn("0/6000000") || len(d.JoinedAt) != 1 {
		t.Errorf("joined %v", d.JoinedAt)
	}
}

func TestDecideScores(t *testing.T) {
	in := SyncInput{Self: "n1", Members: []string{"n1", "n2", "n3"},
		Standbys: []Standby{
			{Name: "n2", State: "streaming", SyncState: "sync", FlushLSN: 10},
			{Name: "n3", State: "streaming", SyncState: "async", FlushLSN: 20},
			{Name: "outsider", State: "streaming", SyncState: "async", FlushLSN: 30},
		}}
	t.Run("durability: only eligible sync members may be promoted", func(t *testing.T) {
		got := DecideScores(in, durable1, SyncDecision{Eligible: []string{"n2"}})
		want := map[string]int{"n1": PrimaryScore, "n2": SyncScore, "n3": NoPromotion}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("asynchronous replication ranks streaming standbys by position", func(t *testing.T) {
		got := DecideScores(in, SyncPolicy{Count: 0}, SyncDecision{})
		want := map[string]int{"n1": PrimaryScore, "n2": asyncBase - 1, "n3": asyncBase}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("availability gone async keeps eligible members first", func(t *testing.T) {
		got := DecideScores(in, SyncPolicy{Count: 1, Mode: Availability}, SyncDecision{Eligible: []string{"n2"}, WentAsync: true})
		if got["n2"] != SyncScore || got["n3"] != asyncBase || got["n3"] >= got["n2"] {
			t.Errorf("got %v", got)
		}
	})
}

func TestScoreChangesLowerBeforeRaise(t *testing.T) {
	old := map[string]int{"n1": PrimaryScore, "n2": SyncScore, "n3": NoPromotion, "n5": SyncScore}
	new := map[string]int{"n1": PrimaryScore, "n2": NoPromotion, "n3": SyncScore, "n4": NoPromotion}
	lower, raise := ScoreChanges(old, new)
	// n5 left the clone (its host is gone): it is no candidate any more.
	if !reflect.DeepEqual(lower, map[string]int{"n2": NoPromotion, "n4": NoPromotion, "n5": NoPromotion}) || !reflect.DeepEqual(raise, map[string]int{"n3": SyncScore}) {
		t.Errorf("lower %v raise %v", lower, raise)
	}
	if FormatScore(NoPromotion) != "-INFINITY" || FormatScore(SyncScore) != "100" {
		t.Error("FormatScore")
	}
}

func TestCheckPromotion(t *testing.T) {
	tests := []struct {
		name    string
		self    string
		reports []Candidate
		ok      bool
		says    string
	}{
		{"the most advanced standby may be promoted", "n2",
			[]Candidate{{"n2", 1, 500}, {"n3", 1, 400}}, true, "most advanced"},
		{"a standby that received less than another is refused (the ClusterLabs agent promotes on score alone)", "n2",
			[]Candidate{{"n2", 1, 400}, {"n3", 1, 500}}, false, "n3 is ahead"},
		{"a newer timeline wins over a larger LSN", "n2",
			[]Candidate{{"n2", 1, 900}, {"n3", 2, 100}}, false, "n3 is ahead"},
		{"equal positions: either may be promoted", "n3",
			[]Candidate{{"n2", 1, 500}, {"n3", 1, 500}}, true, ""},
		{"a node that did not report is refused", "n2",
			[]Candidate{{"n3", 1, 500}}, false, "did not report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := CheckPromotion(tt.self, tt.reports)
			if ok != tt.ok || !strings.Contains(why, tt.says) {
				t.Errorf("got %v %q, want %v with %q", ok, why, tt.ok, tt.says)
			}
		})
	}
}

// Invariant 3: an old primary never restarts as primary by itself.
func TestDecideStart(t *testing.T) {
	tests := []struct {
		name string
		in   StartInput
		want StartAction
	}{
		{"a running standby: start succeeds as it is", StartInput{Running: true, InRecovery: true}, AlreadyStandby},
		{"a primary running outside Pacemaker's control is refused", StartInput{Running: true}, RefuseRunningPrimary},
		{"a stopped standby starts as standby", StartInput{Control: pg.ControlData{State: pg.StateShutDownRecovery}}, StartStandby},
		{"a crashed standby starts as standby", StartInput{Control: pg.ControlData{State: pg.StateInArchiveRecovery}}, StartStandby},
		{"a crashed old primary with a new primary elsewhere is refused (ClusterLabs: needs rm PGSQL.lock by hand)",
			StartInput{Control: pg.ControlData{State: pg.StateInProduction}, Primary: "n2"}, RefuseDiverged},
		{"a cleanly stopped old primary with a new primary elsewhere is refused too",
			StartInput{Control: pg.ControlData{State: pg.StateShutDown}, Primary: "n2"}, RefuseDiverged},
		{"with auto_rejoin the old primary is rewound", StartInput{Control: pg.ControlData{State: pg.StateInProduction}, Primary: "n2", AutoRejoin: true}, Rejoin},
		{"rampart rejoin's fresh base backup of the new primary starts as standby (pg_control says in production, backup_label says a copy)",
			StartInput{Control: pg.ControlData{State: pg.StateBaseBackup}, Primary: "n2", ForkChecked: true}, StartStandby},
		{"an old primary with no primary anywhere starts as standby and waits for the election",
			StartInput{Control: pg.ControlData{State: pg.StateShutDown}}, StartStandby},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := DecideStart(tt.in)
			if got != tt.want || why == "" {
				t.Errorf("got %v (%q), want %v", got, why, tt.want)
			}
		})
	}
}

func TestDecideElection(t *testing.T) {
	at := func(n string, tl uint32, l string) Candidate { return Candidate{n, tl, lsn(l)} }
	all := map[string]Candidate{"n1": at("n1", 1, "0/500"), "n2": at("n2", 1, "0/400"), "n3": at("n3", 1, "0/500")}
	active := []string{"n1", "n2", "n3"}
	tests := []struct {
		name    string
		self    string
		reports map[string]Candidate
		scores  map[string]string
		want    bool
		says    string
	}{
		{"the most advanced volunteers", "n1", all, nil, true, "most advanced"},
		{"a less advanced one does not", "n2", all, nil, false, "ahead"},
		{"among equals the smallest name volunteers", "n3", all, nil, false, "n1 is as advanced"},
		{"the last primary's scores stand, even -INFINITY (invariant 2)", "n1", all, map[string]string{"n1": "-INFINITY"}, false, "scores stand"},
		{"another node already has a score", "n1", all, map[string]string{"n2": "100"}, false, "candidate already"},
		{"everyone else at -INFINITY does not stop it", "n1", all, map[string]string{"n2": "-INFINITY"}, true, ""},
		{"waits for every active instance's position", "n1", map[string]Candidate{"n1": all["n1"], "n3": all["n3"]}, nil, false, "waiting for the position of n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := DecideElection(ElectionInput{Self: tt.self, Reports: tt.reports, Active: active, Scores: tt.scores})
			if got != tt.want || !strings.Contains(why, tt.says) {
				t.Errorf("got %v %q, want %v with %q", got, why, tt.want, tt.says)
			}
		})
	}
}

func TestAwaitConfirmation(t *testing.T) {
	sb := func(name string) Standby { return Standby{Name: name, State: "streaming", SyncState: "sync"} }
	tests := []struct {
		name   string
		d      SyncDecision
		seen   []Standby
		soon   bool
		expect bool
	}{
		{"all members eligible: nothing to wait for", SyncDecision{Names: names(pg.First, 1, "n2"), Eligible: []string{"n2"}}, []Standby{sb("n2")}, true, false},
		{"a connected member still catching up", SyncDecision{Names: names(pg.First, 1, "n2")}, []Standby{sb("n2")}, false, true},
		{"a member not connected, nothing expected", SyncDecision{Names: names(pg.First, 1, "n2")}, nil, false, false},
		{"just promoted: the first standbys are on their way", SyncDecision{Names: names(pg.First, 1, "n2")}, nil, true, true},
		{"a list that is not tight has no candidates to wait for", SyncDecision{Names: names(pg.First, 1, "n2", "n3")}, []Standby{sb("n2")}, true, false},
	}
	for _, tt := range tests {
		if got := AwaitConfirmation(tt.d, tt.seen, tt.soon); got != tt.expect {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.expect)
		}
	}
}

func TestPromotionMemoForgetsOldJoinPositions(t *testing.T) {
	m := PromotionMemo(names(pg.First, 1, "n2", "n3"), lsn("0/9000000"), 42)
	if got := m.JoinedLSNs(); len(got) != 2 || got["n2"] != lsn("0/9000000") || got["n3"] != lsn("0/9000000") || m.PromotedAt != 42 {
		t.Errorf("got %+v", m)
	}
	if back := ParseMemo(m.String()); back.String() != m.String() {
		t.Errorf("round trip: %s → %s", m, back)
	}
}

func TestFencingAllows(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     map[string]string
		override bool
		allowed  bool
	}{
		{"stonith-enabled not set: Pacemaker's default fences", map[string]string{}, false, true},
		{"stonith-enabled=true", map[string]string{"stonith-enabled": "true"}, false, true},
		{"stonith-enabled=false: refused (the ClusterLabs agent promotes)", map[string]string{"stonith-enabled": "false"}, false, false},
		{"stonith-enabled=no: refused", map[string]string{"stonith-enabled": "no"}, false, false},
		{"stonith-enabled=false with the override", map[string]string{"stonith-enabled": "false"}, true, true},
	} {
		ok, unfenced, why := FencingAllows(tt.opts, tt.override)
		if ok != tt.allowed || why == "" || unfenced == (tt.opts["stonith-enabled"] == "" || tt.opts["stonith-enabled"] == "true") {
			t.Errorf("%s: allowed %v unfenced %v (%s), want allowed %v", tt.name, ok, unfenced, why, tt.allowed)
		}
	}
}

func TestDecideRejoin(t *testing.T) {
	crashed := pg.ControlData{State: pg.StateInProduction, Timeline: 1}
	for _, tt := range []struct {
		name string
		in   StartInput
		ok   bool
		want string
	}{
		{"crashed old primary, another primary", StartInput{Control: crashed, Primary: "n2"}, true, "n2 is primary now: rejoining"},
		{"no other primary", StartInput{Control: crashed}, false, "no other node is primary"},
		{"running standby", StartInput{Running: true, InRecovery: true, Primary: "n2"}, false, "runs here as a standby already"},
		{"running primary", StartInput{Running: true, Primary: "n2"}, false, "runs here as a primary: stop it first"},
		{"a standby's data directory", StartInput{Control: pg.ControlData{State: pg.StateInArchiveRecovery}, Primary: "n2"}, false, "Pacemaker can start it as it is"},
	} {
		ok, why := DecideRejoin(tt.in)
		if ok != tt.ok || !strings.Contains(why, tt.want) {
			t.Errorf("%s: %v %q; want %v and %q", tt.name, ok, why, tt.ok, tt.want)
		}
	}
}

// The durable record decides who may volunteer: a survivor that lost its
// -INFINITY score (restarted, or its node's attributes are gone) is still
// left out when it is not on the record, however advanced it looks.
func TestDecideElectionFollowsTheRecord(t *testing.T) {
	at := func(n string, tl uint32, l string) Candidate { return Candidate{n, tl, lsn(l)} }
	record := SyncedSet{Timeline: 3, Primary: "n1", Standbys: []string{"n2"}}
	tests := []struct {
		name    string
		self    string
		reports map[string]Candidate
		active  []string
		synced  SyncedSet
		durable bool
		want    bool
		says    string
	}{
		{"a survivor off the record waits, though it runs alone", "n3", map[string]Candidate{"n3": at("n3", 3, "0/500")}, []string{"n3"}, record, true,
			false, "only n1 or n2 (timeline=3 primary=n1 standbys=n2) has every acknowledged commit"},
		{"it says how to proceed by hand", "n3", map[string]Candidate{"n3": at("n3", 3, "0/500")}, []string{"n3"}, record, true,
			false, "rampart failover --to n3 --accept-data-loss"},
		{"a member volunteers though a non-member is ahead (what lies past it was never acknowledged)", "n2",
			map[string]Candidate{"n2": at("n2", 3, "0/400"), "n3": at("n3", 3, "0/500")}, []string{"n2", "n3"}, record, true, true, "most advanced"},
		{"the old primary, back, volunteers", "n1", map[string]Candidate{"n1": at("n1", 2, "0/600"), "n3": at("n3", 3, "0/500")}, []string{"n1", "n3"}, record, true,
			true, ""},
		{"of two members the more advanced volunteers", "n2", map[string]Candidate{"n1": at("n1", 3, "0/600"), "n2": at("n2", 3, "0/500")}, []string{"n1", "n2"}, record, true,
			false, "n1 is ahead"},
		{"a member waits for another member's position", "n2", map[string]Candidate{"n2": at("n2", 3, "0/500")}, []string{"n1", "n2"}, record, true,
			false, "waiting for the position of n1"},
		{"no record (never had a primary): the most advanced", "n3", map[string]Candidate{"n2": at("n2", 1, "0/400"), "n3": at("n3", 1, "0/500")}, []string{"n2", "n3"}, SyncedSet{}, true,
			true, ""},
		{"sync_count=0 promises nothing: the most advanced", "n3", map[string]Candidate{"n2": at("n2", 3, "0/400"), "n3": at("n3", 3, "0/500")}, []string{"n2", "n3"}, record, false,
			true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := DecideElection(ElectionInput{Self: tt.self, Reports: tt.reports, Active: tt.active, Synced: tt.synced, Durable: tt.durable})
			if got != tt.want || !strings.Contains(why, tt.says) {
				t.Errorf("got %v %q, want %v with %q", got, why, tt.want, tt.says)
			}
		})
	}
}

func TestSyncedSetRoundTrip(t *testing.T) {
	for _, s := range []SyncedSet{
		{Timeline: 1, Primary: "n1"},
		{Timeline: 7, Primary: "db-1", Standbys: []string{"db-2", "db-3"}},
	} {
		got, ok := ParseSyncedSet(s.String())
		if !ok || got.String() != s.String() {
			t.Errorf("ParseSyncedSet(%q) = %+v, %v", s.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "timeline=3", "timeline=0 primary=n1 standbys=", "timeline=3 primary=n1 standbys=n1",
		"timeline=3 primary=n1 standbys=n2 extra=1", "timeline=x primary=n1 standbys=", "timeline=3 primary= standbys=n2", "timeline=3 primary=n1 primary=n2 standbys="} {
		if s, ok := ParseSyncedSet(bad); ok {
			t.Errorf("ParseSyncedSet(%q) = %+v, want refused", bad, s)
		}
	}
}

// The primary the record names stops for want of quorum and is demoted,
// which gives it -INFINITY; the majority promotes nobody (the record names
// only it). Every score is -INFINITY. Before, it waited for itself for
// ever (chaos seed 19, TestPrimaryPartitionHealsAsItLosesQuorum).
func TestDecideElectionDemotedRecordPrimary(t *testing.T) {
	at := func(n string, tl uint32, l string) Candidate { return Candidate{n, tl, lsn(l)} }
	level := map[string]Candidate{"n1": at("n1", 3, "0/600"), "n2": at("n2", 3, "0/600"), "n3": at("n3", 3, "0/600")}
	active := []string{"n1", "n2", "n3"}
	alone := SyncedSet{Timeline: 3, Primary: "n1"}
	withN2 := SyncedSet{Timeline: 3, Primary: "n1", Standbys: []string{"n2"}}
	inf := map[string]string{"n1": "-INFINITY", "n2": "-INFINITY", "n3": "-INFINITY"}
	tests := []struct {
		name    string
		self    string
		reports map[string]Candidate
		synced  SyncedSet
		durable bool
		scores  map[string]string
		want    bool
		says    string
	}{
		{"the record's primary volunteers", "n1", level, alone, true, inf, true, "most advanced"},
		{"and with a standby on the record, still the smaller name among equals", "n1", level, withN2, true, inf, true, ""},
		{"the record's standby at -INFINITY stays out (the last primary lowered it)", "n2", level, withN2, true, inf, false, "scores stand"},
		{"a node off the record waits", "n3", level, alone, true, map[string]string{"n1": "-INFINITY", "n3": "-INFINITY"}, false, "scores stand"},
		{"the record's primary behind a record standby does not", "n1",
			map[string]Candidate{"n1": at("n1", 3, "0/500"), "n2": at("n2", 3, "0/600")}, withN2, true, inf, false, "n2 is ahead"},
		{"the record's primary on a later timeline (rejoined since) stays out", "n1",
			map[string]Candidate{"n1": at("n1", 4, "0/600"), "n2": at("n2", 4, "0/600")}, alone, true, inf, false, "scores stand"},
		{"another node's positive score stands", "n1", level, alone, true, map[string]string{"n1": "-INFINITY", "n2": "10"}, false, "candidate already"},
		{"without a durability promise its -INFINITY stands", "n1", level, alone, false, inf, false, "scores stand"},
		{"its own positive score stands (Pacemaker promotes it)", "n1", level, alone, true, map[string]string{"n1": "1000"}, false, "scores stand"},
		{"a node on a later timeline than the record's: the record is stale, nobody volunteers", "n2",
			map[string]Candidate{"n1": at("n1", 3, "0/600"), "n2": at("n2", 3, "0/600"), "n3": at("n3", 4, "0/700")}, withN2, true, nil, false, "record is stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := DecideElection(ElectionInput{Self: tt.self, Reports: tt.reports, Active: active, Scores: tt.scores, Synced: tt.synced, Durable: tt.durable})
			if got != tt.want || !strings.Contains(why, tt.says) {
				t.Errorf("got %v %q, want %v with %q", got, why, tt.want, tt.says)
			}
		})
	}
}

// The seed's experiment 3 run a minute after experiment 1: n2, promoted in
// experiment 1, has its postmaster killed. Its position attribute is still
// the one it reported as the synchronous standby before its own promotion
// (timeline 2, eligible), within the minute promote looks back, and it
// outranked n3, the synchronous standby Pacemaker promoted (whose control
// file still says timeline 1): the promotion was refused and the killed
// old primary started and promoted again. Reports from before the last
// promotion, and from nodes the transition demotes or stops, are not
// candidates (the demote and stop may have run in an earlier transition:
// then only the age tells).
func TestPromotionCandidatesLeaveOutTheFailedPrimary(t *testing.T) {
	const promotedAt = 1_000_000 // n2's promotion, after its report
	reports := map[string]Position{
		"n2": {Timeline: 2, LSN: 0x5191230, Eligible: true, AtMillis: promotedAt - 400},
		"n1": {Timeline: 2, LSN: 0x5428CF0, Eligible: false, AtMillis: promotedAt + 40_000}, // asynchronous
		"n4": {Timeline: 1, LSN: 0x5428CF0, Eligible: false, AtMillis: promotedAt + 40_000},
	}
	own := Candidate{Node: "n3", Timeline: 1, ReceivedLSN: 0x5428CF0}
	n := ocf.Notify{Demote: []ocf.Instance{{Node: "n2"}}, Stop: []ocf.Instance{{Node: "n2"}}}
	for _, tt := range []struct {
		name          string
		leaving       []string
		lastPromotion int64
		want          bool
	}{
		{"demoted and stopped in this transition", Leaving(n), 0, true},
		{"stopped in an earlier transition: its report predates the promotion", nil, promotedAt, true},
		{"neither known: the stale report still outranks it (the check as it was)", nil, 0, false},
	} {
		cands := PromotionCandidates(own, reports, tt.leaving, tt.lastPromotion, false)
		if ok, why := CheckPromotion("n3", cands); ok != tt.want {
			t.Errorf("%s: promotion of n3 allowed %v (%s), want %v", tt.name, ok, why, tt.want)
		}
	}
	// A standby that stays, reported since, and is ahead still refuses it.
	reports["n4"] = Position{Timeline: 1, LSN: 0x5500000, Eligible: true, AtMillis: promotedAt + 40_000}
	if ok, _ := CheckPromotion("n3", PromotionCandidates(own, reports, Leaving(n), promotedAt, false)); ok {
		t.Error("n3 promoted though n4, an eligible standby that stays, received more")
	}
}

func TestNotifyTaskOf(t *testing.T) {
	on := func(nodes ...string) []ocf.Instance {
		var is []ocf.Instance
		for _, n := range nodes {
			is = append(is, ocf.Instance{Resource: "pgsql:" + n, Node: n})
		}
		return is
	}
	// A killed primary n1, n2 promoted: the rounds of that failover.
	for _, tc := range []struct {
		name string
		n    ocf.Notify
		node string
		want NotifyTask
	}{
		{"pre-demote of the dead primary", ocf.Notify{Type: "pre", Operation: "demote", Demote: on("n1"), Promoted: on("n1")}, "n2", NoTask},
		{"post-demote", ocf.Notify{Type: "post", Operation: "demote", Demote: on("n1"), Promoted: on("n1")}, "n3", NoTask},
		{"pre-stop", ocf.Notify{Type: "pre", Operation: "stop", Stop: on("n1")}, "n2", NoTask},
		{"post-stop on a standby", ocf.Notify{Type: "post", Operation: "stop", Stop: on("n1")}, "n2", NoTask},
		{"pre-promote on the candidate", ocf.Notify{Type: "pre", Operation: "promote", Promote: on("n2")}, "n2", ReportPosition},
		{"pre-promote on another standby", ocf.Notify{Type: "pre", Operation: "promote", Promote: on("n2")}, "n3", ReportPosition},
		{"post-promote on the new primary", ocf.Notify{Type: "post", Operation: "promote", Promote: on("n2")}, "n2", NoTask},
		{"post-promote on a standby", ocf.Notify{Type: "post", Operation: "promote", Promote: on("n2")}, "n3", FollowPromoted},
		{"post-promote of two (promoted_max 2): nobody follows", ocf.Notify{Type: "post", Operation: "promote", Promote: on("n1", "n2")}, "n3", NoTask},
		// A standby stopped or started: the primary names its sync set.
		{"post-stop on the primary", ocf.Notify{Type: "post", Operation: "stop", Stop: on("n3"), Promoted: on("n2")}, "n2", RecheckSync},
		{"post-start on the primary", ocf.Notify{Type: "post", Operation: "start", Start: on("n1"), Promoted: on("n2")}, "n2", RecheckSync},
		{"post-start on a standby", ocf.Notify{Type: "post", Operation: "start", Start: on("n1"), Promoted: on("n2")}, "n3", NoTask},
		{"post-start on a node promoted in the same transition", ocf.Notify{Type: "post", Operation: "start", Start: on("n1"), Promote: on("n2")}, "n2", RecheckSync},
		{"pre-start", ocf.Notify{Type: "pre", Operation: "start", Start: on("n1"), Promoted: on("n2")}, "n2", NoTask},
	} {
		if got := NotifyTaskOf(tc.n, tc.node); got != tc.want {
			t.Errorf("%s: NotifyTaskOf(%s, %s) = %d, want %d", tc.name, tc.n.String(), tc.node, got, tc.want)
		}
	}
}

package pgsql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Mode is what the primary does when too few standbys qualify as synchronous.
type Mode string

// Modes.
const (
	// Durability keeps the list: commits wait until enough standbys are back.
	Durability Mode = "durability"
	// Availability goes asynchronous after a grace period, and says so.
	Availability Mode = "availability"
)

// SyncPolicy is the user's wish for synchronous replication.
type SyncPolicy struct {
	Count  int       // synchronous standbys wanted (0: asynchronous replication)
	Method pg.Method // FIRST or ANY
	MaxLag uint64    // bytes a standby's flush position may trail the primary and still qualify (0: no limit)
	Mode   Mode
	Grace  time.Duration // Availability: how long to wait before going asynchronous
}

// Standby is one row of the primary's pg_stat_replication.
type Standby struct {
	Name      string // application_name: the node's name
	State     string // streaming, catchup, startup, backup, stopping
	SyncState string // sync, quorum, potential, async
	FlushLSN  pg.LSN
}

// SyncInput is what the primary's monitor observed.
type SyncInput struct {
	Self       string
	PrimaryLSN pg.LSN            // pg_current_wal_lsn()
	Standbys   []Standby         // pg_stat_replication (only members' rows count: ClusterStandbys)
	Members    []string          // nodes where Pacemaker runs a standby instance of this clone
	Current    pg.SyncNames      // synchronous_standby_names in force
	JoinedAt   map[string]pg.LSN // per sync-set member: primary LSN when it joined the set
	ShortFor   time.Duration     // how long fewer than Count standbys have qualified
	// Prefer is a standby to choose first once it qualifies, ahead of the
	// current members (PreferredAttr; "" none).
	Prefer string
}

// SyncDecision is what the primary should make of it.
type SyncDecision struct {
	Names         pg.SyncNames      // synchronous_standby_names to put in force
	JoinedAt      map[string]pg.LSN // updated join positions of the members of Names
	Qualified     []string          // standbys streaming within the lag limit
	Eligible      []string          // members of the set that have every acknowledged commit
	WritesBlocked bool              // Names asks for more standbys than qualify: commits wait
	WentAsync     bool              // Availability: fewer than Count after the grace period
	Reason        string            // one line for the log
}

// qualifies reports whether a standby may serve as synchronous: streaming,
// and not further behind than the lag limit.
func qualifies(s Standby, p SyncPolicy, primary pg.LSN) bool {
	return s.State == "streaming" && (p.MaxLag == 0 || primary.Sub(s.FlushLSN) <= p.MaxLag)
}

// DecideSync chooses the synchronous standbys. It keeps members of the
// current set that still qualify (no churn), fills up with the most advanced
// other qualified standbys, and never drops a member without a qualified
// replacement under the durability policy. A member becomes eligible for
// promotion only once its flush position reached the primary's position at
// the time it joined: before that, commits acknowledged by the old members
// may be missing on it.
func DecideSync(in SyncInput, p SyncPolicy) SyncDecision {
	d := SyncDecision{JoinedAt: map[string]pg.LSN{}}
	in.Standbys, _ = ClusterStandbys(in.Standbys, in.Self, in.Members)
	byName := map[string]Standby{}
	var qualified []Standby
	for _, s := range in.Standbys {
		byName[s.Name] = s
		if qualifies(s, p, in.PrimaryLSN) {
			qualified = append(qualified, s)
		}
	}
	current := map[string]bool{}
	if !in.Current.Empty() {
		for _, n := range in.Current.Names {
			current[n] = true
		}
	}
	// The preferred standby first, then members of the current set
	// (those PostgreSQL counts as synchronous now before the ones it
	// merely lists), then the most advanced, then by name: no churn but
	// the one asked for.
	confirmed := func(s Standby) bool { return s.SyncState == "sync" || s.SyncState == "quorum" }
	sort.SliceStable(qualified, func(i, j int) bool {
		a, b := qualified[i], qualified[j]
		if (a.Name == in.Prefer) != (b.Name == in.Prefer) {
			return a.Name == in.Prefer
		}
		if current[a.Name] != current[b.Name] {
			return current[a.Name]
		}
		if confirmed(a) != confirmed(b) {
			return confirmed(a)
		}
		if a.FlushLSN != b.FlushLSN {
			return a.FlushLSN > b.FlushLSN
		}
		return a.Name < b.Name
	})
	for _, s := range qualified {
		d.Qualified = append(d.Qualified, s.Name)
	}
	sort.Strings(d.Qualified)

	if p.Count == 0 {
		d.Reason = "asynchronous replication configured (sync_count=0)"
		return d
	}
	method := p.Method
	if method == "" {
		method = pg.First
	}
	var chosen []string
	for _, s := range qualified {
		if len(chosen) == p.Count {
			break
		}
		chosen = append(chosen, s.Name)
	}

	switch {
	case len(chosen) == p.Count:
		d.Names = pg.SyncNames{Method: method, Num: p.Count, Names: chosen}
		d.Reason = fmt.Sprintf("%d of %d wanted standbys qualify", len(chosen), p.Count)
	case p.Mode == Availability && in.ShortFor >= p.Grace:
		if len(chosen) > 0 {
			d.Names = pg.SyncNames{Method: method, Num: len(chosen), Names: chosen}
		}
		d.WentAsync = true
		d.Reason = fmt.Sprintf("only %d of %d wanted standbys qualify for %s (grace %s): availability policy lowers the requirement", len(chosen), p.Count, in.ShortFor, p.Grace)
	case len(chosen) == 0 && tight(in.Current) && connected(in.Current.Names, byName):
		// Keep waiting on the members, which still stream (lagging) or
		// catch up: they stay the only ones that acknowledge, so they stay
		// candidates.
		d.Names = in.Current
		d.WritesBlocked = true
		d.Reason = fmt.Sprintf("no standby qualifies; the members of %s are connected but lag: commits wait for them (%s policy)", in.Current, p.Mode)
	default:
		// Keep waiting: qualified ones first, then the members that were in
		// the set (they have every acknowledged commit), then any known
		// standby, so that the list is never empty and whoever comes back
		// first can take the place. Such a list is not tight: nobody is a
		// candidate until a monitor narrows it again.
		names := slices.Clone(chosen)
		add := func(n string) {
			if n != "" && n != in.Self && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		if !in.Current.Empty() {
			for _, n := range in.Current.Names {
				add(n)
			}
		}
		for _, n := range in.Members {
			add(n)
		}
		if len(names) == 0 {
			names = []string{"*"} // no standby known: any that connects
		}
		d.Names = pg.SyncNames{Method: method, Num: p.Count, Names: names}
		d.WritesBlocked = true
		d.Reason = fmt.Sprintf("only %d of %d wanted standbys qualify (%s): commits wait (%s policy)",
			len(chosen), p.Count, strings.Join(chosen, ","), p.Mode)
		if p.Mode == Availability {
			d.Reason += fmt.Sprintf(", going asynchronous after %s", p.Grace-in.ShortFor)
		}
	}

	// Join positions: kept for members that stay in a list that was tight,
	// set now for the others (under a longer list others may have
	// acknowledged commits without them).
	for _, n := range d.Names.Names {
		if at, ok := in.JoinedAt[n]; ok && current[n] && tight(in.Current) {
			d.JoinedAt[n] = at
		} else {
			d.JoinedAt[n] = in.PrimaryLSN
		}
	}
	d.Eligible = Eligible(d.Names, d.JoinedAt, in.Standbys)
	return d
}

// AwaitConfirmation says whether the primary should wait (briefly) for
// the members of a tight list to confirm before publishing scores: some
// member is not eligible yet, and it is connected or may connect soon
// (expectSoon: the list just changed, or the primary was just promoted).
// Waiting for a member that is not even connected would only delay.
func AwaitConfirmation(d SyncDecision, standbys []Standby, expectSoon bool) bool {
	if !tight(d.Names) || len(d.Eligible) == len(d.Names.Names) {
		return false
	}
	if expectSoon {
		return true
	}
	for _, n := range d.Names.Names {
		for _, s := range standbys {
			if s.Name == n && !slices.Contains(d.Eligible, n) {
				return true // connected, catching up or not yet confirmed
			}
		}
	}
	return false
}

// tight says whether names lists exactly as many standbys as must confirm
// each commit: then no commit is acknowledged without every member, and a
// member that stops confirming stops the commits rather than being
// bypassed. Only a tight list has candidates: under FIRST 1 (a, b), b
// acknowledges alone the moment a disconnects, before any monitor could
// lower a's promotion score.
func tight(names pg.SyncNames) bool {
	return !names.Empty() && len(names.Names) == names.Num && !slices.Contains(names.Names, "*")
}

// connected says whether every one of names has a walsender.
func connected(names []string, standbys map[string]Standby) bool {
	for _, n := range names {
		if _, ok := standbys[n]; !ok {
			return false
		}
	}
	return true
}

// Eligible returns the members of names that have every acknowledged
// commit: PostgreSQL counts them as synchronous (streaming, sync or quorum)
// and they have flushed at least up to where the primary was when they
// joined the set. Before that, commits acknowledged by the old members may
// be missing on them. Only members of a tight list are eligible.
func Eligible(names pg.SyncNames, joinedAt map[string]pg.LSN, standbys []Standby) []string {
	if !tight(names) {
		return nil
	}
	var out []string
	for _, n := range names.Names {
		at, joined := joinedAt[n]
		var rows []Standby
		for _, s := range standbys {
			if s.Name == n {
				rows = append(rows, s)
			}
		}
		// Two walsenders under one name: PostgreSQL may count either.
		if len(rows) != 1 {
			continue
		}
		if s := rows[0]; joined && s.State == "streaming" && (s.SyncState == "sync" || s.SyncState == "quorum") && s.FlushLSN >= at {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// ClusterStandbys keeps the rows of pg_stat_replication that are the
// clone's members, each streaming under its own name. A running
// pg_basebackup (rampart backup's too) or any other holder of replication
// credentials also has a walsender; it must never become synchronous, nor
// push a member out. A member's name on two walsenders means someone else
// took it: neither row can be trusted, so the member counts as
// disconnected. dropped says what was left out, and why, for the log.
func ClusterStandbys(rows []Standby, self string, members []string) (kept []Standby, dropped []string) {
	count := map[string]int{}
	for _, r := range rows {
		count[r.Name]++
	}
	for _, r := range rows {
		switch {
		case r.Name == self || !slices.Contains(members, r.Name):
			dropped = append(dropped, fmt.Sprintf("%q: not a member of the cluster", r.Name))
		case count[r.Name] > 1:
			dropped = append(dropped, fmt.Sprintf("%q: %d walsenders under this name; treated as disconnected", r.Name, count[r.Name]))
			count[r.Name] = -1 // said once
		case count[r.Name] < 0:
		default:
			kept = append(kept, r)
		}
	}
	return kept, dropped
}

// PrimaryObservation is what a sync round reads from the primary.
type PrimaryObservation struct {
	Timeline  uint32
	LSN       pg.LSN    // pg_current_wal_lsn()
	Rows      []Standby // pg_stat_replication: every walsender, members or not
	SyncNames string    // synchronous_standby_names in force
}

// SyncEffects is the world a sync round acts on, one call per step, so
// that the order of the steps (RunSync) is the agent's and the model
// test's alike: the agent's implementation talks to PostgreSQL, attrd and
// the CIB; the model's to its simulation, which lets standbys, commits and
// failures happen between any two steps.
type SyncEffects interface {
	Observe(ctx context.Context) (PrimaryObservation, error)
	// Memo is what the primary remembered from its last round.
	Memo(ctx context.Context) (Memo, error)
	// Scores are the promotion scores attrd holds now.
	Scores(ctx context.Context) (map[string]int, error)
	SetScores(ctx context.Context, changes map[string]int) error
	// Synced reads the durable record (the CIB) as it stands: a partition
	// that rejoins may have brought back an older CIB than the one this
	// primary wrote, and the round rewrites what it finds amiss.
	// It also returns the standby to prefer as synchronous (PreferredAttr;
	// "" none), kept beside it.
	Synced(ctx context.Context) (SyncedSet, string, error)
	// SetSynced writes the durable record (the CIB).
	SetSynced(ctx context.Context, s SyncedSet) error
	// PutNames puts synchronous_standby_names in force, releases the
	// commits that waited on the old list, and returns the primary's WAL
	// position afterwards: commits up to there were acknowledged without
	// the new members.
	PutNames(ctx context.Context, names pg.SyncNames) (pg.LSN, error)
	// AwaitStandbys re-reads pg_stat_replication until done holds or a
	// short bound (a couple of seconds) passes, and returns the last rows.
	AwaitStandbys(ctx context.Context, done func(rows []Standby) bool) ([]Standby, error)
	// SetStates publishes changed replication states for crm_mon -A.
	SetStates(ctx context.Context, changes map[string]string) error
	SaveMemo(ctx context.Context, m Memo) error
	// Quorate says whether this node's partition has quorum now.
	Quorate(ctx context.Context) (bool, error)
}

// errNoQuorum ends a round whose partition lost quorum before an effect.
var errNoQuorum = errors.New("quorum lost")

// SyncRound is one round's fixed input.
type SyncRound struct {
	Self    string
	Members []string // the other nodes Pacemaker runs an instance on
	Policy  SyncPolicy
	Now     time.Time
	Log     *slog.Logger
}

// RunSync is the primary's sync round (every promoted monitor, and the
// notifications that change membership): decide the synchronous set, then
// apply it in the order that keeps invariant 2 at every step, whatever
// happens between them:
//
//  1. lower: the durable record shrinks, then the scores of nodes leaving
//     the set drop, before synchronous_standby_names changes (a standby
//     that leaves must stop being a candidate before commits can be
//     acknowledged without it);
//  2. the new names are put in force; new members join at the primary's
//     position after the change;
//  3. a member becomes a candidate only once it confirmed past its join
//     position (waiting briefly when one is about to);
//  4. raise: scores that dropped meanwhile drop first, then the record
//     grows, then the scores of new candidates rise.
func RunSync(ctx context.Context, fx SyncEffects, r SyncRound) error {
	if err := runSync(ctx, fx, r); err != nil && !errors.Is(err, errNoQuorum) {
		return err
	}
	return nil
}

func runSync(ctx context.Context, fx SyncEffects, r SyncRound) error {
	// Each effect checks quorum again first: the caller's look may be
	// moments old, and a primary whose partition lost its majority
	// meanwhile must neither widen the standbys that acknowledge its
	// commits (the majority's record, not this partition's, says who may
	// be promoted) nor write a record its CIB may bring back on rejoining.
	// The window left is the few milliseconds between this check and the
	// effect; the majority needs seconds to fence and promote.
	quorate := func(what string) error {
		ok, err := fx.Quorate(ctx)
		if err != nil {
			return err
		}
		if !ok {
			r.Log.Warn("quorum lost during the sync round: " + what + " left as it is")
			return errNoQuorum
		}
		return nil
	}
	memo, err := fx.Memo(ctx)
	if err != nil {
		return err
	}
	obs, err := fx.Observe(ctx)
	if err != nil {
		return err
	}
	current, err := pg.ParseSyncNames(obs.SyncNames)
	if err != nil {
		r.Log.Warn("synchronous_standby_names unreadable: replacing it", "value", obs.SyncNames, "err", err)
	}
	standbys, dropped := ClusterStandbys(obs.Rows, r.Self, r.Members)
	logDropped(r.Log, dropped, memo)
	in := SyncInput{Self: r.Self, PrimaryLSN: obs.LSN, Members: r.Members, Current: current, JoinedAt: memo.JoinedLSNs(), Standbys: standbys}
	now := r.Now.Unix()
	if memo.ShortSince > 0 {
		in.ShortFor = time.Duration(now-memo.ShortSince) * time.Second
	}
	synced, prefer, err := fx.Synced(ctx)
	if err != nil {
		return err
	}
	in.Prefer = prefer
	d := DecideSync(in, r.Policy)
	scores := DecideScores(in, r.Policy, d)

	// Changes are made against the scores attrd holds, not against what
	// this agent believes it published.
	published, err := fx.Scores(ctx)
	if err != nil {
		return err
	}
	apply := func(changes map[string]int) error {
		if len(changes) == 0 {
			return nil
		}
		if err := quorate("the promotion scores"); err != nil {
			return err
		}
		if err := fx.SetScores(ctx, changes); err != nil {
			return err
		}
		for n, s := range changes {
			published[n] = s
		}
		return nil
	}
	record := func(changes map[string]int) error {
		next := maps.Clone(published)
		maps.Copy(next, changes)
		want := holders(r.Self, obs.Timeline, next)
		if want.String() == synced.String() {
			return nil
		}
		if err := quorate("the durable record"); err != nil {
			return err
		}
		if err := fx.SetSynced(ctx, want); err != nil {
			return err
		}
		synced = want
		return nil
	}
	lower, _ := ScoreChanges(published, scores)
	if err := record(lower); err != nil {
		return err
	}
	if err := apply(lower); err != nil {
		return err
	}
	changed := !d.Names.Equal(current) || obs.SyncNames != d.Names.String()
	if changed {
		if err := quorate("synchronous_standby_names"); err != nil {
			return err
		}
		after, err := fx.PutNames(ctx, d.Names)
		if err != nil {
			return err
		}
		// Commits acknowledged until now were confirmed without the new
		// members (all of them, when the old list was not tight).
		for _, n := range d.Names.Names {
			if !slices.Contains(current.Names, n) || !tight(current) {
				d.JoinedAt[n] = after
			}
		}
		// Who confirmed before the change proves nothing past it: a member
		// is eligible only once it confirmed past its new join position.
		d.Eligible = Eligible(d.Names, d.JoinedAt, in.Standbys)
		scores = DecideScores(in, r.Policy, d)
		r.Log.Info("synchronous standbys changed", "from", obs.SyncNames, "to", d.Names.String(), "reason", d.Reason)
	}
	// Members that joined (or a new primary's first standbys) become
	// candidates as soon as they confirm, within this round, not a monitor
	// later.
	recent := memo.PromotedAt > 0 && r.Now.UnixMilli()-memo.PromotedAt < awaitAfterPromotion.Milliseconds()
	if AwaitConfirmation(d, in.Standbys, changed || recent) {
		rows, err := fx.AwaitStandbys(ctx, func(rows []Standby) bool {
			sb, _ := ClusterStandbys(rows, r.Self, r.Members)
			return len(Eligible(d.Names, d.JoinedAt, sb)) == len(d.Names.Names)
		})
		if err != nil {
			return err
		}
		in.Standbys, _ = ClusterStandbys(rows, r.Self, r.Members)
		d.Eligible = Eligible(d.Names, d.JoinedAt, in.Standbys)
		scores = DecideScores(in, r.Policy, d)
	}
	// A member eligible at first may have dropped out while the set
	// changed: lower it too, before raising anyone.
	lower, raise := ScoreChanges(published, scores)
	if err := apply(lower); err != nil {
		return err
	}
	// Also rewrites a record that differs from what the scores say with
	// nothing to raise: one a rejoining partition brought back.
	if err := record(raise); err != nil {
		return err
	}
	if err := apply(raise); err != nil {
		return err
	}
	states := StandbyStates(in, d)
	changes := map[string]string{}
	for n, st := range states {
		if memo.States[n] != st {
			changes[n] = st
		}
	}
	if len(changes) > 0 {
		if err := fx.SetStates(ctx, changes); err != nil {
			return err
		}
	}
	if d.WritesBlocked && memo.States[r.Self] != states[r.Self] {
		if recent {
			r.Log.Info("new primary: commits wait for the first synchronous standby", "reason", d.Reason)
		} else {
			r.Log.Warn("writes blocked: too few synchronous standbys", "reason", d.Reason)
		}
	}
	next := Memo{Joined: map[string]string{}, States: states, PromotedAt: memo.PromotedAt, Synced: synced.String(), Dropped: dropped}
	for n, l := range d.JoinedAt {
		next.Joined[n] = l.String()
	}
	switch {
	case !d.WritesBlocked && !d.WentAsync:
		next.ShortSince = 0
	case memo.ShortSince > 0:
		next.ShortSince = memo.ShortSince
	default:
		next.ShortSince = now
	}
	if next.String() != memo.String() {
		return fx.SaveMemo(ctx, next)
	}
	return nil
}

// logDropped logs walsenders left out of the decision when they change:
// a duplicated member name loudly, anything else (a base backup) quietly.
func logDropped(log *slog.Logger, dropped []string, memo Memo) {
	if slices.Equal(dropped, memo.Dropped) {
		return
	}
	for _, why := range dropped {
		if strings.Contains(why, "walsenders under this name") {
			log.Warn("a member's name is on several walsenders: someone else streams under it (check who holds replication credentials); it counts as disconnected", "walsender", why)
		} else {
			log.Debug("walsender ignored for the synchronous set", "walsender", why)
		}
	}
}

// awaitAfterPromotion is how long after its promotion a primary waits in
// its monitor for the first standbys to connect and confirm.
const awaitAfterPromotion = 10 * time.Second

// MonitorMembers is the other nodes Pacemaker runs an instance on, as the
// promoted monitor sees them in crm_mon.
func MonitorMembers(self string, running []string) []string {
	members := []string{}
	for _, n := range running {
		if n != self {
			members = append(members, n)
		}
	}
	slices.Sort(members)
	return members
}

// RecheckMembers is the membership a notification shows the primary:
// the active instances and those starting, less those stopping in this
// transition (after it, in a post notification).
func RecheckMembers(self string, n ocf.Notify) []string {
	active := map[string]bool{}
	for _, m := range ocf.Nodes(n.Active) {
		active[m] = true
	}
	for _, m := range ocf.Nodes(n.Start) {
		active[m] = true
	}
	if n.Type == "post" {
		for _, m := range ocf.Nodes(n.Stop) {
			delete(active, m)
		}
	}
	return MonitorMembers(self, slices.Collect(maps.Keys(active)))
}

// Leaving is the nodes a transition demotes or stops.
func Leaving(n ocf.Notify) []string {
	return append(ocf.Nodes(n.Stop), ocf.Nodes(n.Demote)...)
}

// PromoteMembers is who a node being promoted names as its standbys before
// its first commit: the transition's unpromoted instances that stay.
func PromoteMembers(self string, n ocf.Notify) []string {
	leaving := Leaving(n)
	return MonitorMembers(self, slices.DeleteFunc(ocf.Nodes(n.Unpromoted), func(m string) bool {
		return slices.Contains(leaving, m)
	}))
}

package pgsql

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Promotion scores, as Pacemaker's promotion attribute holds them.
const (
	// NoPromotion forbids promoting the node (-INFINITY).
	NoPromotion = -1_000_000
	// PrimaryScore keeps the running primary where it is.
	PrimaryScore = 1000
	// SyncScore is a member of the sync set that has every acknowledged commit.
	SyncScore = 100
	// asyncBase ranks streaming standbys by position when durability is not
	// promised (sync_count=0, or the availability policy went asynchronous).
	asyncBase = 50
)

// FormatScore writes a score the way crm_attribute takes it.
func FormatScore(s int) string {
	if s <= NoPromotion {
		return "-INFINITY"
	}
	return fmt.Sprint(s)
}

// DecideScores gives every node of the clone its promotion score, from the
// primary's point of view. Under durability only eligible members of the
// sync set may be promoted; without a durability promise (no sync standby
// configured, or availability went asynchronous) streaming standbys are
// ranked by how much WAL they have flushed.
func DecideScores(in SyncInput, p SyncPolicy, d SyncDecision) map[string]int {
	scores := map[string]int{in.Self: PrimaryScore}
	for _, m := range in.Members {
		if m != in.Self {
			scores[m] = NoPromotion
		}
	}
	// Standbys that stream but are no clone member get no score: not ours.
	for _, n := range d.Eligible {
		if _, member := scores[n]; member {
			scores[n] = SyncScore
		}
	}
	if p.Count == 0 || d.WentAsync {
		var streaming []Standby
		standbys, _ := ClusterStandbys(in.Standbys, in.Self, in.Members)
		for _, s := range standbys {
			if _, member := scores[s.Name]; member && s.State == "streaming" && scores[s.Name] == NoPromotion {
				streaming = append(streaming, s)
			}
		}
		sort.SliceStable(streaming, func(i, j int) bool { return streaming[i].FlushLSN > streaming[j].FlushLSN })
		for rank, s := range streaming {
			scores[s.Name] = max(asyncBase-rank, 1)
		}
	}
	return scores
}

// FencingAllows decides whether a promotion may go ahead given the
// cluster options (crm_config): Pacemaker fences unless stonith-enabled is
// false; without fencing only the explicit override allows it, and says
// so (unfenced).
func FencingAllows(options map[string]string, override bool) (allowed, unfenced bool, why string) {
	v := options["stonith-enabled"] // absent: Pacemaker's default, true
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "no", "off", "0", "n", "f":
	default:
		return true, false, "stonith is enabled"
	}
	if override {
		return true, true, "stonith-enabled=false and unsafe_promote_without_fencing=true: promoting without fencing; a primary that hangs and comes back can take writes beside this one"
	}
	return false, true, "stonith-enabled=false: without fencing a hung primary that comes back takes writes beside the new one and acknowledged commits are lost; " +
		"configure fence devices and set stonith-enabled=true (or, for a test lab only, unsafe_promote_without_fencing=true)"
}

// ParseScores reads published promotion scores (attribute values). A value
// that is no score is taken for a candidate's, so that any lowering of it
// is applied.
func ParseScores(values map[string]string) map[string]int {
	out := map[string]int{}
	for n, v := range values {
		switch v = strings.TrimSpace(v); v {
		case "-INFINITY":
			out[n] = NoPromotion
		case "INFINITY", "+INFINITY":
			out[n] = -NoPromotion
		default:
			s, err := strconv.Atoi(v)
			if err != nil {
				s = -NoPromotion
			}
			out[n] = max(s, NoPromotion)
		}
	}
	return out
}

// ScoreChanges splits the move from old to new scores into the lowerings,
// to apply before synchronous_standby_names changes (a standby that leaves
// the set must stop being a candidate before commits can be acknowledged
// without it), and the raisings, to apply after. A node that had a score
// and has none now (it left the clone: stopped, or its host is gone) is
// lowered to NoPromotion: it stops being in the set.
func ScoreChanges(old, new map[string]int) (lower, raise map[string]int) {
	lower, raise = map[string]int{}, map[string]int{}
	for n, o := range old {
		if _, still := new[n]; !still && o > NoPromotion {
			lower[n] = NoPromotion
		}
	}
	for n, s := range new {
		o, known := old[n]
		switch {
		case !known && s <= NoPromotion, known && s < o:
			lower[n] = s
		case !known, s > o:
			raise[n] = s
		}
	}
	return lower, raise
}

// Candidate is what a standby reported of itself before a promotion.
type Candidate struct {
	Node        string
	Timeline    uint32
	ReceivedLSN pg.LSN
}

func (c Candidate) ahead(o Candidate) bool {
	if c.Timeline != o.Timeline {
		return c.Timeline > o.Timeline
	}
	return c.ReceivedLSN > o.ReceivedLSN
}

// PromotionCandidates is what a promotion compares own with: the other
// standbys' reports that may hold acknowledged commits (eligible ones; any,
// when commits do not wait for standbys), made since the last promotion
// (unix milliseconds; every standby that takes part reports in this
// transition's pre-promote notification), from nodes this transition does
// not demote or stop. A report from before the last promotion is a
// position on a history that has moved on: a primary killed a minute after
// its own promotion still has the position it reported as a standby before
// it, which would otherwise outrank every survivor.
func PromotionCandidates(own Candidate, reports map[string]Position, leaving []string, lastPromotion int64, anyStandby bool) []Candidate {
	cands := []Candidate{own}
	for _, n := range slices.Sorted(maps.Keys(reports)) {
		p := reports[n]
		if n != own.Node && (p.Eligible || anyStandby) && !slices.Contains(leaving, n) && p.AtMillis >= lastPromotion {
			cands = append(cands, Candidate{Node: n, Timeline: p.Timeline, ReceivedLSN: p.LSN})
		}
	}
	return cands
}

// CheckPromotion decides whether self may be promoted, given what every
// standby reported before the promotion (pre-promote notify). It refuses
// when another standby has a newer timeline or has received more WAL, or
// when self did not report: promoting it could lose what the other has.
func CheckPromotion(self string, reports []Candidate) (bool, string) {
	var me *Candidate
	for i := range reports {
		if reports[i].Node == self {
			me = &reports[i]
		}
	}
	if me == nil {
		return false, fmt.Sprintf("%s did not report its position before the promotion", self)
	}
	for _, c := range reports {
		if c.Node != self && c.ahead(*me) {
			return false, fmt.Sprintf("%s is ahead (timeline %d, received %s) of %s (timeline %d, received %s): promote it instead",
				c.Node, c.Timeline, c.ReceivedLSN, self, me.Timeline, me.ReceivedLSN)
		}
	}
	return true, fmt.Sprintf("%s (timeline %d, received %s) is the most advanced of %d standbys", self, me.Timeline, me.ReceivedLSN, len(reports))
}

// ElectionInput is what a standby sees while no primary runs.
type ElectionInput struct {
	Self    string
	Reports map[string]Candidate // positions the standbys reported recently
	Active  []string             // nodes Pacemaker runs an instance on
	Scores  map[string]string    // promotion scores attrd holds
	// Synced is the durable record of who holds every acknowledged commit
	// (empty when no primary ever wrote one); Durable says acknowledged
	// commits are promised to be on it (sync_count > 0).
	Synced  SyncedSet
	Durable bool
}

// StaleRecord names a node that reports a later timeline than the durable
// record's, if one does (the first by name).
func (in ElectionInput) StaleRecord() (string, bool) {
	for _, n := range slices.Sorted(maps.Keys(in.Reports)) {
		if in.Reports[n].Timeline > in.Synced.Timeline {
			return n, true
		}
	}
	return "", false
}

// demotedRecordPrimary says self is the primary the durable record names,
// still on the record's timeline, with the -INFINITY score its own demote
// gave it: a primary that stopped for want of quorum and came back to a
// cluster that promoted nobody (none other may: the record names only it,
// or only it among those that run). That score is no judgement of the last
// primary on a standby, and standing by it would wait for ever for the one
// node that holds every acknowledged commit.
func (in ElectionInput) demotedRecordPrimary() bool {
	me, reported := in.Reports[in.Self]
	return in.Durable && in.Synced.Primary == in.Self && reported && me.Timeline == in.Synced.Timeline &&
		in.Scores[in.Self] == FormatScore(NoPromotion)
}

// DecideElection decides, on a standby while no primary runs, whether it
// gives itself a promotion score. Scores left by the last primary stand
// (invariant 2): it acts only when no node has a usable score. Under a
// durability promise only the nodes of the durable record may volunteer,
// whatever they restarted or lost: anyone else may miss acknowledged
// commits, so it waits, however long. Among those that run, the most
// advanced volunteers (the smallest name among equals), once each has
// reported its position. Without a record (a cluster that never had a
// primary under the agent) or a promise, the most advanced of every
// running instance volunteers.
func DecideElection(in ElectionInput) (bool, string) {
	if _, scored := in.Scores[in.Self]; scored && !in.demotedRecordPrimary() {
		return false, "the last primary's scores stand"
	}
	for n, v := range in.Scores {
		if v != FormatScore(NoPromotion) {
			return false, n + " is a candidate already"
		}
	}
	electorate := in.Active
	if in.Durable && !in.Synced.Empty() {
		// A node on a later timeline than the record's was promoted after
		// the record was written, and every promotion writes one first:
		// the record is older than the cluster (a partition's CIB that
		// won when it rejoined, a promotion outside rampart). Its members
		// may miss what that timeline acknowledged.
		if n, later := in.StaleRecord(); later {
			return false, fmt.Sprintf("%s is on timeline %d, later than the durable record's (%s): the record is stale and may name nodes that miss acknowledged commits; "+
				"find the node with every acknowledged commit and run `rampart failover --to NODE --accept-data-loss`", n, in.Reports[n].Timeline, in.Synced)
		}
		holders := in.Synced.Nodes()
		if !in.Synced.Has(in.Self) {
			return false, fmt.Sprintf("only %s (%s) has every acknowledged commit and %s may miss some: it waits for one of them to run; "+
				"to promote it anyway, accepting the loss, run `rampart failover --to %s --accept-data-loss`",
				strings.Join(holders, " or "), in.Synced, in.Self, in.Self)
		}
		electorate = slices.DeleteFunc(slices.Clone(in.Active), func(n string) bool { return !in.Synced.Has(n) })
		if !slices.Contains(electorate, in.Self) {
			electorate = append(electorate, in.Self)
		}
	}
	var cands []Candidate
	for _, n := range electorate {
		c, ok := in.Reports[n]
		if !ok {
			return false, "waiting for the position of " + n
		}
		cands = append(cands, c)
	}
	ok, why := CheckPromotion(in.Self, cands)
	if !ok {
		return false, why
	}
	me := in.Reports[in.Self]
	for _, c := range cands {
		if c.Node < in.Self && c.Timeline == me.Timeline && c.ReceivedLSN == me.ReceivedLSN {
			return false, c.Node + " is as advanced and comes first"
		}
	}
	return true, why
}

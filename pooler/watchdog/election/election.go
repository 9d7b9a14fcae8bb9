package election

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Member is one voter.
type Member struct {
	ID       string
	Priority int  // among poolers the higher stands first
	Witness  bool // votes and acknowledges, never leads
}

// Config is the membership and the timing, the same on every member but
// Self.
type Config struct {
	Self    string
	Members []Member
	// Heartbeat is how often the leader sends heartbeats and the others
	// say they are there.
	Heartbeat time.Duration
	// Lease: a leader leads while a quorum acknowledged a heartbeat sent
	// less than Lease ago.
	Lease time.Duration
	// Promise: after acknowledging a leader or granting a vote, a member
	// votes for nobody else for this long.
	Promise time.Duration
	// Election: a pooler that has not heard a leader for this long stands
	// (half a Heartbeat later per pooler of higher priority).
	Election time.Duration
}

// Defaults for a heartbeat of 500 ms: a dead leader is replaced about
// 1.5–2 s after its last heartbeat.
func Defaults(self string, members []Member) Config {
	return Config{Self: self, Members: members, Heartbeat: 500 * time.Millisecond,
		Lease: time.Second, Promise: 1250 * time.Millisecond, Election: 1500 * time.Millisecond}
}

// Validate checks the rules the safety argument needs.
func (c Config) Validate() error {
	seen := map[string]bool{}
	self, leaders := false, 0
	for _, m := range c.Members {
		if m.ID == "" || seen[m.ID] {
			return fmt.Errorf("member id %q: empty or listed twice", m.ID)
		}
		seen[m.ID] = true
		self = self || m.ID == c.Self
		if !m.Witness {
			leaders++
		}
	}
	switch {
	case !self:
		return fmt.Errorf("this member (%q) is not among the members", c.Self)
	case leaders == 0:
		return errors.New("no member can lead: all are witnesses")
	case c.Heartbeat <= 0 || c.Lease <= c.Heartbeat:
		return fmt.Errorf("the lease (%s) must be longer than the heartbeat (%s)", c.Lease, c.Heartbeat)
	case c.Promise <= c.Lease:
		return fmt.Errorf("the promise (%s) must be longer than the lease (%s)", c.Promise, c.Lease)
	case c.Election < c.Promise:
		return fmt.Errorf("the election timeout (%s) must not be shorter than the promise (%s)", c.Election, c.Promise)
	}
	return nil
}

// Kind is a message's kind.
type Kind uint8

const (
	Heartbeat   Kind = iota + 1 // leader → all: Term, Seq
	Ack                         // → leader: Term, Seq, Granted (false: a higher term)
	VoteRequest                 // candidate → all: Term
	Vote                        // → candidate: Term, Granted
	Hello                       // non-leader → all: Term, Leader (liveness, for status)
)

func (k Kind) String() string {
	switch k {
	case Heartbeat:
		return "heartbeat"
	case Ack:
		return "ack"
	case VoteRequest:
		return "vote-request"
	case Vote:
		return "vote"
	case Hello:
		return "hello"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Message is what members say to each other; the watchdog authenticates
// it on the wire (From is who signed it).
type Message struct {
	Kind     Kind
	From, To string // To "" = every other member
	Term     uint64
	Seq      uint64
	Granted  bool
	Leader   string // Hello: whom the sender follows ("" = nobody)
	// Pre marks the pre-vote round of a VoteRequest and its Votes: "would
	// you vote for me in Term?", answered without changing anything.
	Pre bool
}

// Role is a member's part in the election.
type Role int

const (
	Follower Role = iota
	Candidate
	Leader
)

func (r Role) String() string { return [...]string{"follower", "candidate", "leader"}[r] }

// Node is one member's election state.
type Node struct {
	cfg    Config
	quorum int
	rank   int // poolers of higher priority (ties: lower id)
	role   Role
	term   uint64
	voted  string // whom it voted for in term
	leader string

	heardLeader time.Time // follower: last heartbeat from its leader
	promised    time.Time // grants no vote before then
	heard       map[string]time.Time
	lastHello   time.Time

	// candidate
	standAt time.Time
	pre     bool // still asking whether it could win (no term taken yet)
	votes   map[string]bool
	// leader
	seq      uint64
	sentAt   map[uint64]time.Time // heartbeats still within a lease
	acked    map[string]uint64    // newest heartbeat each member acknowledged
	lastBeat time.Time

	out []Message
}

// New starts a member as a follower that keeps, for Promise, a promise it
// may have made before it (re)started.
func New(cfg Config, now time.Time) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, quorum: len(cfg.Members)/2 + 1, heardLeader: now, promised: now.Add(cfg.Promise),
		heard: map[string]time.Time{}}
	var me Member
	for _, m := range cfg.Members {
		if m.ID == cfg.Self {
			me = m
		}
	}
	for _, m := range cfg.Members {
		if !m.Witness && m.ID != me.ID && (m.Priority > me.Priority || m.Priority == me.Priority && m.ID < me.ID) {
			n.rank++
		}
	}
	return n, nil
}

func (n *Node) member(id string) (Member, bool) {
	for _, m := range n.cfg.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func (n *Node) witness() bool {
	m, _ := n.member(n.cfg.Self)
	return m.Witness
}

func (n *Node) send(m Message) {
	m.From = n.cfg.Self
	n.out = append(n.out, m)
}

// Ready returns the messages to send since the last call.
func (n *Node) Ready() []Message {
	out := n.out
	n.out = nil
	return out
}

// Step takes one authenticated message from another member.
func (n *Node) Step(m Message, now time.Time) {
	if _, ok := n.member(m.From); !ok || m.From == n.cfg.Self || m.To != "" && m.To != n.cfg.Self {
		return
	}
	n.heard[m.From] = now
	switch m.Kind {
	case Heartbeat:
		n.heartbeat(m, now)
	case Ack:
		n.ack(m, now)
	case VoteRequest:
		n.voteRequest(m, now)
	case Vote:
		n.vote(m, now)
	}
}

func (n *Node) heartbeat(m Message, now time.Time) {
	if src, _ := n.member(m.From); src.Witness {
		return
	}
	if m.Term < n.term || m.Term == n.term && n.role == Leader {
		// A stale leader: tell it the term, so it steps down.
		n.send(Message{Kind: Ack, To: m.From, Term: n.term, Seq: m.Seq})
		return
	}
	if m.Term > n.term {
		n.term, n.voted = m.Term, ""
	}
	n.role, n.leader = Follower, m.From
	n.heardLeader, n.promised = now, now.Add(n.cfg.Promise)
	n.send(Message{Kind: Ack, To: m.From, Term: m.Term, Seq: m.Seq, Granted: true})
}

func (n *Node) ack(m Message, now time.Time) {
	if m.Term > n.term {
		n.stepDown(m.Term, now)
		return
	}
	if n.role == Leader && m.Term == n.term && m.Granted && m.Seq > n.acked[m.From] {
		n.acked[m.From] = m.Seq
	}
}

func (n *Node) voteRequest(m Message, now time.Time) {
	src, _ := n.member(m.From)
	// Bound by a promise (or leading with a lease), a member neither
	// grants a vote nor takes up the candidate's term: a candidate that
	// merely cannot hear the leader does not unseat it.
	bound := now.Before(n.promised) || n.role == Leader && n.Status(now).HoldVIP
	if m.Pre {
		grant := !bound && !src.Witness && m.Term > n.term
		term := n.term
		if grant {
			term = m.Term
		}
		n.send(Message{Kind: Vote, To: m.From, Term: term, Granted: grant, Pre: true})
		return
	}
	if m.Term < n.term || bound || src.Witness {
		n.send(Message{Kind: Vote, To: m.From, Term: n.term})
		return
	}
	if m.Term > n.term {
		n.term, n.voted, n.leader = m.Term, "", ""
		n.role = Follower
	}
	grant := n.voted == "" || n.voted == m.From
	if grant {
		n.voted, n.promised, n.heardLeader = m.From, now.Add(n.cfg.Promise), now
	}
	n.send(Message{Kind: Vote, To: m.From, Term: n.term, Granted: grant})
}

func (n *Node) vote(m Message, now time.Time) {
	if !m.Granted && m.Term > n.term && n.role == Candidate {
		// Refused by a member of a later term: take it up and stand again
		// at once in it (no leader was heard, so none to wait for).
		n.term, n.voted, n.role = m.Term, "", Follower
		return
	}
	if m.Pre && m.Granted {
		if n.role == Candidate && n.pre && m.Term == n.term+1 {
			n.votes[m.From] = true
			if len(n.votes) >= n.quorum {
				n.campaign(now)
			}
		}
		return
	}
	if m.Term > n.term {
		n.stepDown(m.Term, now)
		return
	}
	if n.role != Candidate || n.pre || m.Pre || m.Term != n.term || !m.Granted {
		return
	}
	n.votes[m.From] = true
	if len(n.votes) >= n.quorum {
		n.lead(now)
	}
}

// lead makes a candidate with a quorum of votes the leader: the votes
// count as acknowledgements of its request (heartbeat 0).
func (n *Node) lead(now time.Time) {
	n.role, n.leader = Leader, n.cfg.Self
	n.seq = 0
	n.sentAt = map[uint64]time.Time{0: n.standAt}
	n.acked = map[string]uint64{}
	for id := range n.votes {
		n.acked[id] = 0
	}
	n.beat(now)
}

func (n *Node) beat(now time.Time) {
	n.seq++
	n.sentAt[n.seq] = now
	n.acked[n.cfg.Self] = n.seq
	n.lastBeat = now
	n.send(Message{Kind: Heartbeat, Term: n.term, Seq: n.seq})
	for s, at := range n.sentAt {
		if now.Sub(at) > n.cfg.Lease && s != n.seq {
			delete(n.sentAt, s)
		}
	}
}

func (n *Node) stepDown(term uint64, now time.Time) {
	if term > n.term {
		n.term, n.voted = term, ""
	}
	n.role, n.leader = Follower, ""
	n.heardLeader = now
}

// leaseUntil is when the leader's lease ends: the quorum-th newest of the
// members' acknowledged heartbeats, plus Lease.
func (n *Node) leaseUntil() time.Time {
	var times []time.Time
	for _, seq := range n.acked {
		if at, ok := n.sentAt[seq]; ok {
			times = append(times, at)
		}
	}
	if len(times) < n.quorum {
		return time.Time{}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) })
	return times[n.quorum-1].Add(n.cfg.Lease)
}

// Tick advances the clock: heartbeats, hellos, elections, and the end of
// a lease.
func (n *Node) Tick(now time.Time) {
	switch n.role {
	case Leader:
		if !now.Before(n.leaseUntil()) {
			n.stepDown(n.term, now)
			return
		}
		if now.Sub(n.lastBeat) >= n.cfg.Heartbeat {
			n.beat(now)
		}
		return
	case Candidate:
		if now.Sub(n.standAt) >= n.timeout() {
			n.stand(now)
		}
	case Follower:
		if !n.witness() && now.Sub(n.heardLeader) >= n.timeout() && !now.Before(n.promised) {
			n.stand(now)
		}
	}
	if now.Sub(n.lastHello) >= n.cfg.Heartbeat {
		n.lastHello = now
		n.send(Message{Kind: Hello, Term: n.term, Leader: n.leader})
	}
}

func (n *Node) timeout() time.Duration {
	return n.cfg.Election + time.Duration(n.rank)*n.cfg.Heartbeat/2
}

// stand starts with a pre-vote: a member that could not win (cut off
// from a quorum) never raises its term, so when it is back it does not
// make a working leader step down.
func (n *Node) stand(now time.Time) {
	n.role, n.leader, n.pre = Candidate, "", true
	n.standAt = now
	n.votes = map[string]bool{n.cfg.Self: true}
	if len(n.votes) >= n.quorum {
		n.campaign(now)
		return
	}
	n.send(Message{Kind: VoteRequest, Term: n.term + 1, Pre: true})
}

// campaign is the election proper, once a quorum said it would vote.
func (n *Node) campaign(now time.Time) {
	n.term++
	n.pre, n.voted = false, n.cfg.Self
	n.standAt = now
	n.votes = map[string]bool{n.cfg.Self: true}
	if len(n.votes) >= n.quorum {
		n.lead(now)
		return
	}
	n.send(Message{Kind: VoteRequest, Term: n.term})
}

// Status is what the member knows and decides now.
type Status struct {
	Self   string
	Role   Role
	Term   uint64
	Leader string // "" = none known
	// HoldVIP: this member leads with a lease; the watchdog holds the
	// address exactly while it is true.
	HoldVIP    bool
	LeaseUntil time.Time
	// Heard: when each other member was last heard from.
	Heard map[string]time.Time
	// Quorum: a quorum (counting this member) was heard from within Lease.
	Quorum bool
}

// Status reports the member's view at now.
func (n *Node) Status(now time.Time) Status {
	st := Status{Self: n.cfg.Self, Role: n.role, Term: n.term, Leader: n.leader, Heard: map[string]time.Time{}}
	alive := 1
	for id, at := range n.heard {
		st.Heard[id] = at
		if now.Sub(at) < n.cfg.Lease {
			alive++
		}
	}
	st.Quorum = alive >= n.quorum
	if n.role == Leader {
		st.LeaseUntil = n.leaseUntil()
		st.HoldVIP = now.Before(st.LeaseUntil)
	}
	return st
}

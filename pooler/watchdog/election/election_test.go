package election

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sim runs members on a simulated network and clock, 10 ms a step, and
// checks after every step that at most one member holds the VIP.
type sim struct {
	t       *testing.T
	cfgs    map[string]Config
	nodes   map[string]*Node
	order   []string
	now     time.Time
	start   time.Time
	down    map[string]bool     // crashed: no ticks, messages to it are lost
	frozen  map[string]bool     // stopped: no ticks, messages to it wait
	cut     map[[2]string]bool  // link down, both ways
	flight  []envelope          // messages on the wire
	holder  map[string][]string // per member: "from–to" intervals it held the VIP, for reports
	holding map[string]time.Time
	drop    func(from, to string) bool // extra loss
}

type envelope struct {
	m  Message
	to string
	at time.Time
}

const step = 10 * time.Millisecond

// pair is two poolers (p1 preferred) and a witness w.
func pair(t *testing.T) *sim { return newSim(t, "p1:100", "p2:50", "w:witness") }

func newSim(t *testing.T, specs ...string) *sim {
	var members []Member
	for _, s := range specs {
		id, what, _ := strings.Cut(s, ":")
		m := Member{ID: id, Witness: what == "witness"}
		fmt.Sscanf(what, "%d", &m.Priority)
		members = append(members, m)
	}
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	s := &sim{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}, now: start, start: start,
		down: map[string]bool{}, frozen: map[string]bool{}, cut: map[[2]string]bool{},
		holder: map[string][]string{}, holding: map[string]time.Time{}}
	for _, m := range members {
		cfg := Defaults(m.ID, members)
		s.cfgs[m.ID] = cfg
		s.order = append(s.order, m.ID)
		s.boot(m.ID)
	}
	return s
}

func (s *sim) boot(id string) {
	n, err := New(s.cfgs[id], s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	s.nodes[id] = n
	delete(s.down, id)
}

func (s *sim) at() string { return s.now.Sub(s.start).String() }

func (s *sim) linked(a, b string) bool { return !s.cut[[2]string{a, b}] && !s.cut[[2]string{b, a}] }

// run advances d, checking the one-holder rule at every step.
func (s *sim) run(d time.Duration) {
	s.t.Helper()
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(step)
		var keep []envelope
		for _, e := range s.flight {
			switch {
			case s.down[e.to]:
			case s.frozen[e.to] || e.at.After(s.now):
				keep = append(keep, e)
			default:
				s.nodes[e.to].Step(e.m, s.now)
			}
		}
		s.flight = keep
		for _, id := range s.order {
			if s.down[id] || s.frozen[id] {
				continue
			}
			n := s.nodes[id]
			n.Tick(s.now)
			for _, m := range n.Ready() {
				for _, to := range s.order {
					if to == id || m.To != "" && m.To != to || !s.linked(id, to) || s.drop != nil && s.drop(id, to) {
						continue
					}
					s.flight = append(s.flight, envelope{m: m, to: to, at: s.now.Add(time.Millisecond)})
				}
			}
		}
		s.checkOneHolder()
	}
}

// checkOneHolder: a frozen member counts as holding until its lease ends
// (the watchdog's probe and the address's lifetime cover the rest).
func (s *sim) checkOneHolder() {
	s.t.Helper()
	var holders []string
	for _, id := range s.order {
		held := !s.down[id] && s.nodes[id].Status(s.now).HoldVIP
		if held {
			holders = append(holders, id)
			if _, ok := s.holding[id]; !ok {
				s.holding[id] = s.now
			}
		} else if since, ok := s.holding[id]; ok {
			s.holder[id] = append(s.holder[id], since.Sub(s.start).String()+"–"+s.at())
			delete(s.holding, id)
		}
	}
	if len(holders) > 1 {
		s.t.Fatalf("at %s %v all hold the VIP", s.at(), holders)
	}
}

func (s *sim) holderNow() string {
	for _, id := range s.order {
		if !s.down[id] && s.nodes[id].Status(s.now).HoldVIP {
			return id
		}
	}
	return ""
}

// until runs until cond holds, at most limit; it returns how long it took.
func (s *sim) until(what string, limit time.Duration, cond func() bool) time.Duration {
	s.t.Helper()
	from := s.now
	for !cond() {
		if s.now.Sub(from) >= limit {
			s.t.Fatalf("at %s: %s did not happen within %s; holder %q, %s", s.at(), what, limit, s.holderNow(), s.describe())
		}
		s.run(step)
	}
	return s.now.Sub(from)
}

func (s *sim) describe() string {
	var b strings.Builder
	for _, id := range s.order {
		st := s.nodes[id].Status(s.now)
		fmt.Fprintf(&b, "%s: %s term %d leader %q; ", id, st.Role, st.Term, st.Leader)
	}
	return b.String()
}

func (s *sim) partition(groups ...[]string) {
	s.cut = map[[2]string]bool{}
	group := map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	for _, a := range s.order {
		for _, b := range s.order {
			if group[a] != group[b] {
				s.cut[[2]string{a, b}] = true
			}
		}
	}
}

func (s *sim) heal() { s.cut = map[[2]string]bool{} }

func (s *sim) leads(id string) func() bool {
	return func() bool { return s.holderNow() == id }
}

func TestStartThePreferredPoolerLeads(t *testing.T) {
	s := pair(t)
	took := s.until("p1 holds the VIP", 5*time.Second, s.leads("p1"))
	s.run(10 * time.Second)
	if s.holderNow() != "p1" || len(s.holder["p1"]) != 0 {
		t.Fatalf("p1 took the VIP after %s but did not keep it: %v; %s", took, s.holder, s.describe())
	}
	for _, id := range []string{"p2", "w"} {
		if st := s.nodes[id].Status(s.now); st.Leader != "p1" || st.Role != Follower || !st.Quorum {
			t.Errorf("%s: %+v; want a follower of p1 with a quorum", id, st)
		}
	}
	t.Logf("p1 leads %s after start", took)
}

func TestLeaderKilled(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.run(3 * time.Second)
	s.down["p1"] = true
	took := s.until("p2 holds the VIP", 3*time.Second, s.leads("p2"))
	t.Logf("p1 killed: p2 holds the VIP after %s", took)
	if took > 2500*time.Millisecond {
		t.Errorf("takeover took %s; want at most 2.5 s with a 500 ms heartbeat", took)
	}
	// p1 comes back: it follows, it does not take the VIP back.
	s.boot("p1")
	s.run(5 * time.Second)
	if s.holderNow() != "p2" || s.nodes["p1"].Status(s.now).Leader != "p2" {
		t.Errorf("after p1's restart: holder %q; %s", s.holderNow(), s.describe())
	}
}

func TestLeaderFrozenThenThawed(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.run(2 * time.Second)
	s.frozen["p1"] = true
	took := s.until("p2 holds the VIP", 3*time.Second, s.leads("p2"))
	t.Logf("p1 frozen: p2 holds the VIP after %s", took)
	s.run(10 * time.Second)
	delete(s.frozen, "p1")
	s.run(step) // its first tick after the thaw
	if st := s.nodes["p1"].Status(s.now); st.HoldVIP || st.Role == Leader {
		t.Fatalf("thawed p1 still leads: %+v", st)
	}
	s.run(3 * time.Second)
	if s.holderNow() != "p2" || s.nodes["p1"].Status(s.now).Leader != "p2" {
		t.Errorf("after the thaw: holder %q; %s", s.holderNow(), s.describe())
	}
}

func TestPartitionLeaderAlone(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.run(time.Second)
	cutAt := s.now
	s.partition([]string{"p1"}, []string{"p2", "w"})
	s.until("p1 drops the VIP", 2*time.Second, func() bool { return !s.nodes["p1"].Status(s.now).HoldVIP })
	dropped := s.now.Sub(cutAt)
	s.until("p2 holds the VIP", 3*time.Second, s.leads("p2"))
	took := s.now.Sub(cutAt)
	t.Logf("{p1} | {p2, w}: p1 dropped the VIP after %s, p2 took it after %s", dropped, took)
	if took <= dropped {
		t.Errorf("p2 took the VIP (%s) before p1 dropped it (%s)", took, dropped)
	}
	s.run(10 * time.Second)
	if s.holderNow() != "p2" {
		t.Errorf("during the partition the holder became %q", s.holderNow())
	}
	s.heal()
	s.run(5 * time.Second)
	if s.holderNow() != "p2" || s.nodes["p1"].Status(s.now).Leader != "p2" {
		t.Errorf("after healing: holder %q; %s", s.holderNow(), s.describe())
	}
}

func TestPartitionFollowerAlone(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.partition([]string{"p2"}, []string{"p1", "w"})
	s.run(20 * time.Second)
	if s.holderNow() != "p1" || len(s.holder["p1"]) != 0 {
		t.Errorf("a cut-off follower disturbed the leader: %v; %s", s.holder, s.describe())
	}
	s.heal()
	s.run(5 * time.Second) // p2 stood in vain many times (high term): the leader stays
	if s.holderNow() != "p1" {
		t.Errorf("after healing: holder %q; %s", s.holderNow(), s.describe())
	}
}

func TestWitnessLossKeepsTheLeader(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.down["w"] = true
	s.run(10 * time.Second)
	if s.holderNow() != "p1" || len(s.holder["p1"]) != 0 {
		t.Fatalf("the witness's loss moved the VIP: %v", s.holder)
	}
	s.down["p2"] = true // now p1 alone: no quorum
	took := s.until("p1 drops the VIP", 2*time.Second, func() bool { return s.holderNow() == "" })
	t.Logf("p1 alone: dropped the VIP after %s", took)
	s.run(10 * time.Second)
	if h := s.holderNow(); h != "" {
		t.Errorf("without a quorum %s holds the VIP", h)
	}
	s.boot("w")
	s.until("p1 leads again with the witness back", 5*time.Second, s.leads("p1"))
}

func TestTwoPoolersWithoutWitness(t *testing.T) {
	s := newSim(t, "p1:100", "p2:50")
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.partition([]string{"p1"}, []string{"p2"})
	s.until("p1 drops the VIP", 2*time.Second, func() bool { return s.holderNow() == "" })
	s.run(20 * time.Second) // neither side can tell a dead peer from a cut link
	if h := s.holderNow(); h != "" {
		t.Errorf("%s holds the VIP in a split pair without a witness", h)
	}
}

func TestStaleLeaderStepsDownOnAnswer(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	p1 := s.nodes["p1"]
	term := p1.Status(s.now).Term
	p1.Step(Message{Kind: Ack, From: "w", To: "p1", Term: term + 5}, s.now)
	if st := p1.Status(s.now); st.Role == Leader || st.HoldVIP || st.Term != term+5 {
		t.Fatalf("a higher term in an answer: %+v; want a follower in term %d", st, term+5)
	}
}

func TestStrangersAndWitnessesCannotLead(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	p2 := s.nodes["p2"]
	before := p2.Status(s.now)
	for _, m := range []Message{
		{Kind: Heartbeat, From: "mallory", Term: 99, Seq: 1},
		{Kind: Heartbeat, From: "w", Term: 99, Seq: 1},
		{Kind: VoteRequest, From: "w", Term: 99},
		{Kind: Heartbeat, From: "p1", To: "w", Term: 99, Seq: 1},
		{Kind: Heartbeat, From: "p2", Term: 99, Seq: 1},
	} {
		p2.Step(m, s.now)
	}
	if after := p2.Status(s.now); after.Term != before.Term || after.Leader != before.Leader {
		t.Errorf("messages from strangers, witnesses, to others, or from itself changed p2: %+v → %+v", before, after)
	}
}

// Random faults: crashes, restarts, freezes, cuts and loss, 200 runs of a
// simulated minute each; never two holders (checked every step), and once
// the faults stop a leader holds the VIP within a few seconds.
func TestRandomFaultsNeverTwoHolders(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			s := pair(t)
			s.drop = func(string, string) bool { return r.Float64() < 0.05 }
			for range 60 {
				id := s.order[r.IntN(len(s.order))]
				switch r.IntN(6) {
				case 0:
					s.down[id] = true
				case 1:
					if s.down[id] {
						s.boot(id)
					}
				case 2:
					s.frozen[id] = !s.frozen[id]
				case 3:
					other := s.order[r.IntN(len(s.order))]
					s.cut[[2]string{id, other}] = !s.cut[[2]string{id, other}]
				case 4:
					s.heal()
				}
				s.run(time.Duration(r.IntN(2000)) * time.Millisecond)
			}
			for _, id := range s.order {
				if s.down[id] {
					s.boot(id)
				}
				delete(s.frozen, id)
			}
			s.heal()
			s.drop = nil
			s.until("a leader after the faults stop", 8*time.Second, func() bool { return s.holderNow() != "" })
		})
	}
}

func TestConfigValidate(t *testing.T) {
	members := []Member{{ID: "p1", Priority: 1}, {ID: "p2"}, {ID: "w", Witness: true}}
	good := Defaults("p1", members)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"self missing":           func(c *Config) { c.Self = "p9" },
		"duplicate":              func(c *Config) { c.Members = append(c.Members, Member{ID: "p2"}) },
		"only witnesses":         func(c *Config) { c.Members = []Member{{ID: "p1", Witness: true}} },
		"lease ≤ heartbeat":      func(c *Config) { c.Lease = c.Heartbeat },
		"promise ≤ lease":        func(c *Config) { c.Promise = c.Lease },
		"election < promise":     func(c *Config) { c.Election = c.Promise - time.Millisecond },
		"heartbeat not positive": func(c *Config) { c.Heartbeat = 0 },
	} {
		c := good
		c.Members = append([]Member(nil), good.Members...)
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(c, time.Now()); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// A follower restarted just before the leader freezes has not heard the
// leader yet: refused by the witness's later term, it takes the term up
// and stands again at once, not a full election timeout later.
func TestRestartedFollowerThenLeaderFrozen(t *testing.T) {
	s := pair(t)
	s.until("p1 leads", 5*time.Second, s.leads("p1"))
	s.down["p1"] = true
	s.until("p2 leads", 3*time.Second, s.leads("p2"))
	s.boot("p1")
	s.run(300 * time.Millisecond)
	s.frozen["p2"] = true
	took := s.until("p1 leads", 3*time.Second, s.leads("p1"))
	t.Logf("p2 frozen 0.3 s after p1's restart: p1 holds the VIP after %s", took)
	if took > 2*time.Second {
		t.Errorf("took %s; want at most 2 s", took)
	}
}

package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// Fault kinds. Overlap and Recovering are not faults of their own: asked
// for, Overlap lets a step stay in force while the next one is injected,
// and Recovering injects the next one while the cluster still recovers
// from a step (a rejoin, a promotion, a standby catching up).
const (
	PostmasterKill  Kind = "postmaster-kill"  // SIGKILL the postmaster; heal: clean the resource up
	HostCrash       Kind = "host-crash"       // power off; heal: boot once fencing is confirmed
	Freeze          Kind = "freeze"           // SIGSTOP every process of a host; heal: thaw (or boot, if fenced)
	LinkCut         Kind = "link-cut"         // take a host's link down; heal: restore it
	Partition       Kind = "partition"        // the primary alone on one side; heal: join the sides
	PartitionSync   Kind = "partition-sync"   // the primary and its synchronous standby against the rest (two of four: no side has quorum)
	PartitionClient Kind = "client-partition" // the primary and the client host against the rest: clients keep writing to an isolated primary
	PoolerFreeze    Kind = "pooler-freeze"    // freeze the pooler leader's host (the seed's experiment 6)
	PoolerKill      Kind = "pooler-kill"      // SIGKILL the pooler leader's process; heal: start it again
	BMCDown         Kind = "bmc-down"         // a host loses power with its BMC: no fencing until the BMC is back; heal: BMC up, boot
	PacketLoss      Kind = "packet-loss"      // a host's database link drops LossPercent of its packets; heal: stop it
	SlowLink        Kind = "slow-link"        // a host's database link throttled to SlowKbit with a 1 s queue (the lab's delay); heal: unthrottle
	Switchover      Kind = "switchover"       // not a fault: an operator's rampart switchover to the synchronous standby, for faults to land in
	Overlap         Kind = "overlap"          // two faults in force at once
	Recovering      Kind = "recovering"       // the next fault a few seconds after a heal, while the cluster recovers from it
)

// Kinds is every kind, in the order the help lists them.
func Kinds() []Kind {
	return []Kind{PostmasterKill, HostCrash, Freeze, LinkCut, Partition, PartitionSync, PartitionClient, PoolerFreeze, PoolerKill, BMCDown, PacketLoss, SlowLink, Switchover, Overlap, Recovering}
}

// LossPercent is the share of packets a packet-loss fault drops each way.
const LossPercent = 25

// SlowKbit is the rate a slow-link fault leaves a link, each way: the
// workload's WAL (full-page images after each checkpoint) fills its one-
// second queue, so everything on the link, Corosync's token and the
// synchronous standby's replies included, waits up to a second.
const SlowKbit = 128

// Role is what a fault hits, resolved to a host when the step runs: the
// primary then is not the primary now.
type Role string

// Roles.
const (
	Primary      Role = "primary"
	SyncStandby  Role = "sync standby"
	AsyncStandby Role = "async standby"
	PoolerLeader Role = "pooler leader"
	Witness      Role = "witness"
)

// roles are the roles kind may hit (none: not a fault).
func roles(k Kind) []Role {
	db := []Role{Primary, SyncStandby, AsyncStandby}
	switch k {
	case PostmasterKill, HostCrash, BMCDown:
		return db
	case Freeze, LinkCut:
		return append(db, PoolerLeader, Witness)
	case PacketLoss, SlowLink:
		return append(db, PoolerLeader)
	case Partition, PartitionSync, PartitionClient, Switchover:
		return []Role{Primary}
	case PoolerFreeze, PoolerKill:
		return []Role{PoolerLeader}
	}
	return nil
}

// light says whether kind may join a fault already in force: it leaves
// every database host a member of the cluster, so quorum (three of four)
// and with it fencing survive the pair.
func light(k Kind) bool { return k == PostmasterKill || k == PoolerFreeze || k == PoolerKill }

// Hold bounds: how long a fault stays before it is healed.
const (
	MinHold = 4 * time.Second
	MaxHold = 12 * time.Second
)

// Step is one fault of a campaign.
type Step struct {
	Kind   Kind
	Target Role
	Hold   time.Duration
	// Overlap: the next step is injected while this one is in force, and
	// both are healed together after the next one's hold.
	Overlap bool
	// Hurry, when not zero: the next step comes this long after this one
	// heals, without waiting for the cluster to converge.
	Hurry time.Duration
}

func (s Step) String() string {
	o := ""
	if s.Overlap {
		o = ", overlapping the next"
	}
	if s.Hurry > 0 {
		o = fmt.Sprintf(", the next %.1fs after its heal", s.Hurry.Seconds())
	}
	return fmt.Sprintf("%s of the %s for %.1fs%s", s.Kind, s.Target, s.Hold.Seconds(), o)
}

// ParseKinds reads a comma-separated list of kinds ("" or "all": every
// kind), without repeats.
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return Kinds(), nil
	}
	var ks []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if !slices.Contains(Kinds(), k) {
			return nil, fmt.Errorf("fault kind %q: use %s", k, kindList())
		}
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	return ks, nil
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// FormatKinds is ParseKinds' inverse, for replay commands.
func FormatKinds(ks []Kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

// Plan draws n steps from seed over kinds: the same arguments give the
// same plan, so a campaign is replayed from its seed. An overlapping pair's
// second fault is a light one on another role.
func Plan(seed uint64, n int, kinds []Kind) ([]Step, error) {
	if n < 0 {
		return nil, fmt.Errorf("plan: %d faults", n)
	}
	var faults, joiners []Kind
	for _, k := range kinds {
		if k == Overlap || k == Recovering {
			continue
		}
		if roles(k) == nil {
			return nil, fmt.Errorf("plan: unknown fault kind %q", k)
		}
		faults = append(faults, k)
		if light(k) {
			joiners = append(joiners, k)
		}
	}
	if len(faults) == 0 && n > 0 {
		return nil, fmt.Errorf("plan: no fault kind among %q", kinds)
	}
	overlap := slices.Contains(kinds, Overlap) && len(joiners) > 0
	recovering := slices.Contains(kinds, Recovering)
	r := rand.New(rand.NewPCG(seed, 0x72616d70617274)) // "rampart"
	hold := func() time.Duration {
		// Whole tenths of a second: the plan reads as it prints.
		span := int64((MaxHold - MinHold) / (100 * time.Millisecond))
		return MinHold + time.Duration(r.Int64N(span+1))*100*time.Millisecond
	}
	steps := make([]Step, 0, n)
	for len(steps) < n {
		k := faults[r.IntN(len(faults))]
		s := Step{Kind: k, Target: pick(r, roles(k)), Hold: hold()}
		if overlap && len(steps)+2 <= n && r.IntN(4) == 0 {
			j := joiners[r.IntN(len(joiners))]
			others := slices.DeleteFunc(slices.Clone(roles(j)), func(ro Role) bool { return ro == s.Target })
			if len(others) > 0 {
				s.Overlap = true
				steps = append(steps, s, Step{Kind: j, Target: pick(r, others), Hold: hold()})
				continue
			}
		}
		// Drawn only when asked for, so that the plans of other kinds stay.
		if recovering && len(steps)+2 <= n && r.IntN(4) == 0 {
			s.Hurry = time.Second + time.Duration(r.Int64N(41))*100*time.Millisecond // 1–5 s
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

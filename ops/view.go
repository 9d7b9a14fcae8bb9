package ops

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

// View is the cluster as `rampart status` shows it.
type View struct {
	Time      time.Time    `json:"time"`
	Source    string       `json:"source"` // whose view the nodes are: pacemaker, or a pooler\'s
	Pacemaker *ClusterView `json:"pacemaker,omitempty"`
	Resource  string       `json:"resource,omitempty"` // the ocf:rampart:pgsql primitive
	Clone     string       `json:"clone,omitempty"`    // its promotable clone
	// Params are the resource's parameters as the agent reads them
	// (AgentParams): its defaults where the CIB sets none, and a value the
	// agent refuses left out (Problems names it). Nil where there is no
	// resource or its parameters could not be read.
	Params ocf.Values `json:"-"`
	// Hosts is where each node's PostgreSQL is reached (node_hosts; a node
	// not listed by its name), and Port its port (pgport; 0 unknown).
	Hosts map[string]string `json:"hosts,omitempty"`
	Port  int               `json:"port,omitempty"`
	// SyncCount is sync_count (0: asynchronous replication) and Policy
	// sync_policy; nil and "" where unknown.
	SyncCount *int         `json:"sync_count,omitempty"`
	Policy    string       `json:"sync_policy,omitempty"`
	Nodes     []NodeView   `json:"nodes"`
	Primary   string       `json:"primary,omitempty"`
	VIPs      []VIPView    `json:"vips,omitempty"`
	Poolers   []PoolerView `json:"poolers,omitempty"`
	// Synced is the agent's durable record of the nodes that hold every
	// acknowledged commit (while no primary runs, only they may be
	// promoted).
	Synced   *SyncedView `json:"synced,omitempty"`
	Problems []string    `json:"problems"`
	// NodeProblems are the problems of Problems that concern one node
	// only (it is down, lags, failed an action there): what an operator may
	// knowingly set aside (rampart switchover --ignore NODE).
	NodeProblems map[string][]string `json:"-"`
	// Preferred is the standby the primary is asked to choose first as
	// synchronous (rampart switchover sets it for a failback; "" none).
	Preferred string        `json:"sync_preferred,omitempty"`
	Healthy   bool          `json:"healthy"`
	Failures  []FailureView `json:"failures,omitempty"`
}

// SyncedView is the agent's record of who holds every acknowledged
// commit: the last primary and the eligible members of its synchronous set.
type SyncedView struct {
	Timeline uint32   `json:"timeline"`
	Primary  string   `json:"primary"`
	Standbys []string `json:"standbys"`
}

// ClusterView is Pacemaker's summary.
type ClusterView struct {
	Quorate bool   `json:"quorate"`
	DC      string `json:"dc"`
	Version string `json:"version"`
}

// NodeView is one database node.
type NodeView struct {
	Name      string `json:"name"`
	Pacemaker string `json:"pacemaker"` // online, offline, standby, unclean
	Role      string `json:"role"`      // primary, failed-primary, standby, stopped
	// State is what the primary's agent says of it (rampart-RSC-state):
	// primary, primary-writes-blocked, sync, sync-catching-up, potential,
	// async, disconnected, catchup, stopped.
	State    string `json:"state,omitempty"`
	Timeline uint32 `json:"timeline,omitempty"`
	LSN      string `json:"lsn,omitempty"`
	// LagBytes is how far its last reported position trails the primary's.
	LagBytes *int64 `json:"lag_bytes,omitempty"`
	// ReportedAgo is the age of that position (the agent reports it at
	// every monitor).
	ReportedAgo *float64 `json:"reported_seconds_ago,omitempty"`
}

// VIPView is one address resource.
type VIPView struct {
	ID    string   `json:"id"`
	Agent string   `json:"agent"`
	IP    string   `json:"ip,omitempty"`
	Nodes []string `json:"nodes"`
}

// PoolerView is one pooler as its /health answered.
type PoolerView struct {
	URL     string `json:"url"`
	Error   string `json:"error,omitempty"`
	Primary string `json:"primary,omitempty"` // the node it sends writes to
	// Nodes are the servers as its health checks see them.
	Nodes  []PoolerNode `json:"nodes,omitempty"`
	Member string       `json:"member,omitempty"` // its id in the pair
	Leader bool         `json:"leader"`           // it leads the pair and holds its address
	// LeaderID is who leads, as it knows ("" none).
	LeaderID string `json:"leader_id,omitempty"`
	Term     uint64 `json:"term,omitempty"`
}

// PoolerNode is one server as a pooler sees it.
type PoolerNode struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Up       bool   `json:"up"`
	LagBytes int64  `json:"lag_bytes"`
	Drained  bool   `json:"drained"`
}

// FailureView is a failed resource action Pacemaker remembers.
type FailureView struct {
	Op     string `json:"op"`
	Node   string `json:"node"`
	Exit   int    `json:"exit"`
	Reason string `json:"reason,omitempty"`
}

// Observed is what `rampart status` gathered; Assemble turns it into a View.
type Observed struct {
	Now      time.Time
	Cluster  *pacemaker.ClusterStatus     // nil: no Pacemaker here
	Params   map[string]map[string]string // primitive → parameters
	Options  map[string]string            // cluster properties (crm_config), the agent's record among them
	Attrs    map[string]map[string]string // attribute → node → value
	Poolers  []PoolerView                 // as gathered (errors included)
	Resource string                       // "" = the one ocf:rampart:pgsql primitive
	Errors   []string                     // sources that could not be read
	// PacemakerError is why Cluster is nil: worth saying only where no
	// pooler answered (a pooler host runs no Pacemaker).
	PacemakerError string
}

// staleAfter: a position older than this means the node's monitor is not
// running (the agent reports every few seconds).
const staleAfter = 30 * time.Second

// AgentParams reads the parameters of an ocf:rampart:pgsql resource with
// the agent's own table, as the agent will: the values of the good ones,
// its defaults applied, and what it refuses (every action then fails with
// OCF_ERR_CONFIGURED). Nil raw gives the agent's defaults.
func AgentParams(raw map[string]string) (ocf.Values, []error) {
	return ocf.ValidateEach(pgsql.Params, raw)
}

// resourceParams reads the parameters of resource from all the
// resources' (nil: they could not be read, which is said elsewhere) and
// says what is wrong with them.
func resourceParams(resource string, all map[string]map[string]string) (ocf.Values, []string) {
	raw, ok := all[resource]
	switch {
	case resource == "" || all == nil:
		return nil, nil
	case !ok:
		return nil, []string{fmt.Sprintf("resource %s has no parameters in the CIB's resources section: its settings are unknown", resource)}
	}
	values, refused := AgentParams(raw)
	var wrong []string
	for _, err := range refused {
		wrong = append(wrong, fmt.Sprintf("resource %s: %v; the agent fails every action (OCF_ERR_CONFIGURED) until it is fixed in the CIB", resource, err))
	}
	return values, wrong
}

// asynchronous says whether the view's resource replicates asynchronously
// (sync_count=0): no standby then has every acknowledged commit.
func (v View) asynchronous() bool { return v.SyncCount != nil && *v.SyncCount == 0 }

// Assemble builds the view and lists what is wrong in plain words.
func Assemble(o Observed) View {
	v := View{Time: o.Now, Resource: o.Resource, Poolers: o.Poolers}
	var problems []string
	say := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	v.NodeProblems = map[string][]string{}
	sayOf := func(node, format string, args ...any) {
		say(format, args...)
		v.NodeProblems[node] = append(v.NodeProblems[node], problems[len(problems)-1])
	}
	for _, e := range o.Errors {
		say("could not read %s", e)
	}
	c := o.Cluster
	answered := slices.IndexFunc(o.Poolers, func(p PoolerView) bool { return p.Error == "" })
	switch {
	case c == nil && answered >= 0:
		// A pooler host: the servers as its pooler sees them.
		v.Source = "pooler " + o.Poolers[answered].URL
		v.Primary = o.Poolers[answered].Primary
		for _, pn := range o.Poolers[answered].Nodes {
			nv := NodeView{Name: pn.Name, Pacemaker: "-", Role: pn.Role, State: "up"}
			switch {
			case !pn.Up:
				nv.State = "down"
				say("%s does not answer the pooler's health checks", pn.Name)
			case pn.Drained:
				nv.State = "drained"
			}
			if pn.Role == "standby" {
				lag := pn.LagBytes
				nv.LagBytes = &lag
			}
			v.Nodes = append(v.Nodes, nv)
		}
	case c == nil:
		if o.PacemakerError != "" {
			say("could not read %s", o.PacemakerError)
		}
		say("no Pacemaker cluster seen from here (crm_mon failed or is not installed): run status on a database node, or name a pooler with --pooler")
	default:
		v.Source = "pacemaker"
	}
	if c != nil {
		v.Pacemaker = &ClusterView{Quorate: c.Quorate, DC: c.DC, Version: c.Version}
		if v.Resource == "" {
			for _, r := range c.Resources {
				if r.Agent == "ocf:rampart:pgsql" {
					v.Resource = r.ID
					break
				}
			}
		}
		if !c.Resolved {
			say("Pacemaker has no designated controller yet: the cluster is starting or split")
		} else if !c.Quorate {
			say("this node's partition has no quorum: Pacemaker stops resources here until the others are back")
		}
	}
	var wrong []string
	v.Params, wrong = resourceParams(v.Resource, o.Params)
	problems = append(problems, wrong...)
	if _, ok := v.Params["sync_count"]; ok {
		n := int(v.Params.Int("sync_count"))
		v.SyncCount = &n
	}
	v.Policy = v.Params.String("sync_policy")
	v.Hosts, _ = pgsql.ParseNodeHosts(v.Params.String("node_hosts"))
	v.Port = int(v.Params.Int("pgport"))
	// A standby further behind than max_lag is worth a word (0: no limit;
	// unknown: not judged).
	_, lagKnown := v.Params["max_lag"]
	maxLag := v.Params.Int("max_lag")
	if c != nil && v.Resource == "" {
		say("no ocf:rampart:pgsql resource in the cluster")
	}

	states := o.Attrs[pgsql.StateAttr(v.Resource)]
	positions := newestPositions(o.Attrs[pgsql.PositionAttr(v.Resource)], o.Attrs[pgsql.SeenAttr(v.Resource)])
	// A failed promoted instance is one Pacemaker is recovering (a probe
	// that found a crashed primary, a failed monitor): not the primary
	// clients reach, but not a stopped node either.
	var promoted, failedPromoted []string
	if c != nil && v.Resource != "" {
		for _, r := range c.Resources {
			if r.ID != v.Resource {
				continue
			}
			if r.Clone != "" {
				v.Clone = r.Clone
			}
			if (r.Role == "Promoted" || r.Role == "Master") && r.Active {
				if r.Failed {
					failedPromoted = append(failedPromoted, r.Nodes...)
				} else {
					promoted = append(promoted, r.Nodes...)
				}
			}
		}
	}
	running := map[string]bool{}
	if c != nil {
		for _, n := range c.RunningOn(v.Resource) {
			running[n] = true
		}
	}
	if len(promoted) == 1 {
		v.Primary = promoted[0]
	}
	var primaryPos pgsql.Position
	havePrimaryPos := false
	if v.Primary != "" {
		primaryPos, havePrimaryPos = pgsql.ParsePosition(positions[v.Primary])
	}
	if c != nil {
		for _, n := range c.Nodes {
			nv := NodeView{Name: n.Name, Pacemaker: "online", Role: "stopped", State: states[n.Name]}
			switch {
			case n.Unclean:
				nv.Pacemaker = "unclean"
				sayOf(n.Name, "%s is unclean: Pacemaker waits until it is fenced", n.Name)
			case !n.Online:
				nv.Pacemaker = "offline"
				sayOf(n.Name, "%s is offline (not a cluster member): start it, or fence and repair it", n.Name)
			case n.Standby:
				nv.Pacemaker = "standby"
				sayOf(n.Name, "%s is in standby mode: nothing runs there (crm node online %s)", n.Name, n.Name)
			}
			switch {
			case slices.Contains(promoted, n.Name):
				nv.Role = "primary"
			case slices.Contains(failedPromoted, n.Name):
				nv.Role = "failed-primary"
				sayOf(n.Name, "%s: Pacemaker shows a failed primary there and is recovering it (demote, stop); crm_mon shows the steps", n.Name)
			case running[n.Name]:
				nv.Role = "standby"
			case nv.Pacemaker == "online" && v.Resource != "":
				sayOf(n.Name, "%s is online but its PostgreSQL does not run (a failure, a ban or constraint, or a start still to come: crm_mon --inactive says which)", n.Name)
			}
			if p, ok := pgsql.ParsePosition(positions[n.Name]); ok && nv.Role != "stopped" {
				nv.Timeline, nv.LSN = p.Timeline, p.LSN.String()
				ago := o.Now.Sub(time.UnixMilli(p.AtMillis)).Seconds()
				nv.ReportedAgo = &ago
				if ago > staleAfter.Seconds() {
					sayOf(n.Name, "%s last reported its position %.0f s ago: its monitor is not running", n.Name, ago)
				}
				if havePrimaryPos && nv.Role == "standby" {
					lag := int64(primaryPos.LSN) - int64(p.LSN)
					if primaryPos.LSN < p.LSN {
						lag = 0 // the primary's report is older
					}
					nv.LagBytes = &lag
					if p.Timeline < primaryPos.Timeline && (nv.State == "" || nv.State == "disconnected") {
						sayOf(n.Name, "%s is on timeline %d, the primary on %d, and does not stream: rejoin it (rampart rejoin on %s)", n.Name, p.Timeline, primaryPos.Timeline, n.Name)
					} else if lagKnown && maxLag > 0 && lag > maxLag {
						sayOf(n.Name, "%s trails the primary by %s", n.Name, Bytes(lag))
					}
				}
			}
			if nv.Role == "standby" && v.Primary != "" {
				switch nv.State {
				case "sync", "async", "potential":
				case "sync-catching-up":
					sayOf(n.Name, "%s is joining the synchronous standbys: it is still catching up", n.Name)
				case "", "disconnected":
					sayOf(n.Name, "%s runs as a standby but does not stream from the primary %s", n.Name, v.Primary)
				default:
					sayOf(n.Name, "%s does not stream yet (%s)", n.Name, nv.State)
				}
			}
			// Under sync_count=0 the agent wants no synchronous standby: a
			// writes-blocked state is one it has not rewritten yet.
			if nv.Role == "primary" && nv.State == "primary-writes-blocked" && !v.asynchronous() {
				say("%s blocks writes: fewer standbys qualify as synchronous than sync_count wants (%s); bring a standby back, or lower sync_count", n.Name, v.syncText())
			}
			v.Nodes = append(v.Nodes, nv)
		}
		v.Preferred = o.Options[pgsql.PreferredAttr(v.Resource)]
		synced, haveRecord := pgsql.ParseSyncedSet(o.Options[pgsql.SyncedAttr(v.Resource)])
		if haveRecord {
			v.Synced = &SyncedView{Timeline: synced.Timeline, Primary: synced.Primary, Standbys: synced.Standbys}
			if v.Synced.Standbys == nil {
				v.Synced.Standbys = []string{}
			}
		}
		switch {
		case v.Resource == "":
		case len(promoted) == 0 && haveRecord && !v.asynchronous() && !slices.ContainsFunc(synced.Nodes(), func(n string) bool { return running[n] }):
			others := slices.DeleteFunc(slices.Sorted(maps.Keys(running)), synced.Has)
			say("no PostgreSQL primary, and none of the nodes that hold every acknowledged commit runs: %s must come back "+
				"(boot its host, or fix it and crm resource cleanup %s --node NODE); the agent promotes no other node%s",
				strings.Join(synced.Nodes(), " or "), orClone(v), acceptHint(others))
		case len(promoted) == 0 && haveRecord && !v.asynchronous() && slices.ContainsFunc(v.Nodes, func(nv NodeView) bool { return nv.Timeline > synced.Timeline }):
			later := slices.IndexFunc(v.Nodes, func(nv NodeView) bool { return nv.Timeline > synced.Timeline })
			say("no PostgreSQL primary, and %s is on timeline %d, later than the durable record's %d: the record is stale (a partition's CIB came back, or a promotion "+
				"outside rampart) and the agent promotes nobody; find the node with every acknowledged commit and run rampart failover --to NODE --accept-data-loss",
				v.Nodes[later].Name, v.Nodes[later].Timeline, synced.Timeline)
		case len(promoted) == 0:
			say("no PostgreSQL primary: writes fail until Pacemaker promotes a standby")
		case len(promoted) > 1:
			say("more than one primary: %s", strings.Join(promoted, ", "))
		}
		for _, f := range c.Failures {
			v.Failures = append(v.Failures, FailureView{Op: f.OpKey, Node: f.Node, Exit: f.ExitCode, Reason: f.ExitReason})
			reason := ""
			if f.ExitReason != "" {
				reason = ": " + f.ExitReason
			}
			sayOf(f.Node, "failed action %s on %s (exit %d%s); once fixed: crm resource cleanup", f.OpKey, f.Node, f.ExitCode, reason)
		}
		for _, r := range c.Resources {
			if r.Agent != "ocf:rampart:vip" && r.Agent != "ocf:heartbeat:IPaddr2" {
				continue
			}
			vip := VIPView{ID: r.ID, Agent: r.Agent, IP: o.Params[r.ID]["ip"], Nodes: r.Nodes}
			v.VIPs = append(v.VIPs, vip)
			switch {
			case len(r.Nodes) == 0:
				say("address %s (%s) is not held anywhere", r.ID, vip.IP)
			case v.Primary != "" && !slices.Contains(r.Nodes, v.Primary):
				say("address %s is on %s, the primary is %s", r.ID, strings.Join(r.Nodes, ", "), v.Primary)
			}
		}
	}
	var leaders []string
	for _, p := range o.Poolers {
		switch {
		case p.Error != "":
			say("pooler %s does not answer: %s", p.URL, p.Error)
			continue
		case p.Primary == "":
			say("pooler %s knows no primary: writes through it wait or fail", p.URL)
		case v.Primary != "" && p.Primary != v.Primary:
			say("pooler %s sends writes to %s, Pacemaker's primary is %s", p.URL, p.Primary, v.Primary)
		}
		if p.Leader {
			leaders = append(leaders, p.URL)
		}
	}
	pair, known := false, false
	for _, p := range o.Poolers {
		pair = pair || p.Member != ""
		known = known || p.LeaderID != ""
	}
	switch {
	case pair && len(leaders) == 0 && !known:
		say("no pooler leads the pair: nobody holds the pooler address")
	case len(leaders) > 1:
		say("more than one pooler claims to lead: %s", strings.Join(leaders, ", "))
	}
	v.Problems = problems
	if v.Problems == nil {
		v.Problems = []string{}
	}
	v.Healthy = len(problems) == 0
	return v
}

// Bytes writes n bytes in the largest binary unit that keeps it readable.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// acceptHint says how to promote one of nodes anyway, if there is one.
func acceptHint(nodes []string) string {
	if len(nodes) == 0 {
		return ""
	}
	return fmt.Sprintf("; to promote %s anyway, losing the commits only they have: rampart failover --to %s --accept-data-loss", nodes[0], nodes[0])
}

// orClone is the clone's name for crm commands, or the resource's.
func orClone(v View) string {
	if v.Clone != "" {
		return v.Clone
	}
	return v.Resource
}

// newestPositions is, for each node, the newer of what its monitor last
// saw (seen, every monitor) and what it last reported for an election or
// a promotion (reported): an agent older than the seen attribute has
// only the latter.
func newestPositions(reported, seen map[string]string) map[string]string {
	out := make(map[string]string, len(reported)+len(seen))
	for n, s := range reported {
		out[n] = s
	}
	for n, s := range seen {
		p, ok := pgsql.ParsePosition(s)
		if !ok {
			continue
		}
		if q, ok := pgsql.ParsePosition(out[n]); !ok || q.AtMillis < p.AtMillis {
			out[n] = s
		}
	}
	return out
}

package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Config says what lab to build. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// ID names the lab's namespaces (rampart-<id>-…) and its folder, so that
	// two labs with different ids can exist at once.
	ID string
	// DBHosts is the number of database hosts, n1 … nN; n1 starts as primary.
	DBHosts int
	// Subnet is the lab's IPv4 subnet. It exists only inside the lab's own
	// namespaces; two labs may use the same one.
	Subnet netip.Prefix
	// Management is the IPv4 subnet of the lab's management network: the
	// database hosts' second link (eth1) and their simulated BMCs, apart
	// from Subnet as on real sites, so a partition of Subnet leaves fencing
	// working. It must not overlap Subnet.
	Management netip.Prefix
	// Root is the folder that holds one folder per lab.
	Root string
	// PGBin is the folder of PostgreSQL's server binaries.
	PGBin string
	// Token is Corosync's token timeout: how long a silent node stays a
	// member. It is the real timeout (token_coefficient 0, so it does not
	// grow with the node count); consensus is Corosync's default 1.2 × token.
	// 1 s keeps a host failure under 5 s to the first write and, measured
	// over 30 minutes of load on two busy cores, drops no healthy member
	// (README, "Corosync and Pacemaker settings").
	Token time.Duration
	// Poolers is the number of pooler hosts (p1 … pN) and Witness adds
	// the pooler pair's witness host (w); none by default.
	Poolers int
	Witness bool
	// Agent is the rampart binary that database hosts see as their OCF
	// provider "rampart" (/usr/lib/ocf/resource.d/rampart/pgsql, …); "" for
	// none. The machine's own resource.d is not touched.
	Agent string
	// Installed runs the machine's installed rampart instead (the package's
	// InstalledBinary with its agent links, where Pacemaker finds them on a
	// real host): nothing is laid over resource.d or /usr/sbin, and Agent
	// must be InstalledBinary.
	Installed bool
	// EarlyAck builds a broken cluster on purpose, for showing that a
	// history checker catches lost commits: synchronous_commit = local, so
	// a primary acknowledges commits before its synchronous standby has
	// them. Never for anything else.
	EarlyAck bool
	// DurableReads runs the pooler pair with durable_reads = on.
	DurableReads bool
}

// InstalledBinary is where the rampart package puts the binary.
const InstalledBinary = "/usr/bin/rampart"

// DefaultConfig is a 3-database-host lab with id "lab".
func DefaultConfig() Config {
	return Config{
		ID:         "lab",
		DBHosts:    3,
		Subnet:     netip.MustParsePrefix("192.168.77.0/24"),
		Management: netip.MustParsePrefix("192.168.78.0/24"),
		Root:       "/var/lib/rampart/lab",
		PGBin:      "/usr/lib/postgresql/15/bin",
		Token:      time.Second,
	}
}

var idPattern = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// rootPattern keeps the lab folder's path plain: ipmi_sim hands its power
// command line to sh, and the path is part of it.
var rootPattern = regexp.MustCompile(`^/[A-Za-z0-9/._-]*$`)

// MaxDBHosts bounds the address plan: database hosts take .11 to .19.
const MaxDBHosts = 9

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if !idPattern.MatchString(c.ID) {
		return fmt.Errorf("lab id %q: use 1 to 12 lower-case letters or digits", c.ID)
	}
	if c.DBHosts < 1 || c.DBHosts > MaxDBHosts {
		return fmt.Errorf("database hosts: %d: use 1 to %d", c.DBHosts, MaxDBHosts)
	}
	if c.Poolers < 0 || c.Poolers > witnessOffset-poolerOffset {
		return fmt.Errorf("pooler hosts: %d: use 0 to %d", c.Poolers, witnessOffset-poolerOffset)
	}
	if !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 24 || c.Subnet.Bits() < 8 {
		return fmt.Errorf("lab subnet %v: use an IPv4 prefix from /8 to /24", c.Subnet)
	}
	if c.Subnet.Masked() != c.Subnet {
		return fmt.Errorf("lab subnet %v: host bits set; did you mean %v?", c.Subnet, c.Subnet.Masked())
	}
	if !c.Management.IsValid() || !c.Management.Addr().Is4() || c.Management.Bits() > 24 || c.Management.Bits() < 8 {
		return fmt.Errorf("management subnet %v: use an IPv4 prefix from /8 to /24", c.Management)
	}
	if c.Management.Masked() != c.Management {
		return fmt.Errorf("management subnet %v: host bits set; did you mean %v?", c.Management, c.Management.Masked())
	}
	if c.Management.Overlaps(c.Subnet) {
		return fmt.Errorf("management subnet %v overlaps the lab subnet %v: pick another", c.Management, c.Subnet)
	}
	if !rootPattern.MatchString(c.Root) {
		return fmt.Errorf("lab root %q: use an absolute path of letters, digits, '/', '.', '_' and '-'", c.Root)
	}
	if c.PGBin == "" || c.PGBin[0] != '/' {
		return fmt.Errorf("PostgreSQL bin folder %q: use an absolute path", c.PGBin)
	}
	if c.Agent != "" && c.Agent[0] != '/' {
		return fmt.Errorf("agent binary %q: use an absolute path", c.Agent)
	}
	if c.Installed && c.Agent != InstalledBinary {
		return fmt.Errorf("installed lab: the agent binary is %s, not %q", InstalledBinary, c.Agent)
	}
	if c.Token < 500*time.Millisecond || c.Token > time.Minute {
		return errors.New("corosync token: use 500ms to 1m")
	}
	return nil
}

// Role is what a lab host is for.
type Role string

// Host roles. Pooler and witness hosts come with the pooler pair.
const (
	RoleDatabase Role = "database"
	RolePooler   Role = "pooler"
	RoleWitness  Role = "witness"
	RoleClient   Role = "client"
)

// HostSpec is one host of the address plan.
type HostSpec struct {
	Name   string
	Role   Role
	Addr   netip.Addr
	NodeID int // Corosync node id; 0 for hosts outside the cluster
	// Mgmt is the host's address on the management network (eth1) and BMC
	// its simulated BMC's; both invalid for hosts without a BMC.
	Mgmt, BMC netip.Addr
}

// Address plan, as offsets in the lab subnet: database hosts .11–.19,
// pooler hosts .21–.29 and a witness .30 (reserved), the client .50,
// virtual IPs from .100. On the management network a database host keeps
// its offset and its BMC adds 200 (n1: .11, its BMC .211).
const (
	dbOffset      = 11
	poolerOffset  = 21
	witnessOffset = 30
	clientOffset  = 50
	vipOffset     = 100
	bmcOffset     = 200
)

// Hosts is the lab's address plan: database hosts first, then the client.
func (c Config) Hosts() []HostSpec {
	var hosts []HostSpec
	for i := 0; i < c.DBHosts; i++ {
		hosts = append(hosts, HostSpec{
			Name:   fmt.Sprintf("n%d", i+1),
			Role:   RoleDatabase,
			Addr:   c.addr(dbOffset + i),
			NodeID: i + 1,
			Mgmt:   offset(c.Management, dbOffset+i),
			BMC:    offset(c.Management, bmcOffset+dbOffset+i),
		})
	}
	for i := 0; i < c.Poolers; i++ {
		hosts = append(hosts, HostSpec{Name: fmt.Sprintf("p%d", i+1), Role: RolePooler, Addr: c.addr(poolerOffset + i)})
	}
	if c.Witness {
		hosts = append(hosts, HostSpec{Name: "w", Role: RoleWitness, Addr: c.addr(witnessOffset)})
	}
	hosts = append(hosts, HostSpec{Name: "client", Role: RoleClient, Addr: c.addr(clientOffset)})
	return hosts
}

// VIP is the first virtual IP of the lab (unused until an agent holds it).
func (c Config) VIP() netip.Addr { return c.addr(vipOffset) }

// PoolerVIP is the pooler pair's address (held by the leading pooler).
func (c Config) PoolerVIP() netip.Addr { return c.addr(vipOffset + 1) }

func (c Config) addr(n int) netip.Addr { return offset(c.Subnet, n) }

func offset(p netip.Prefix, n int) netip.Addr {
	a := p.Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a)
}

// Dir is the lab's folder.
func (c Config) Dir() string { return c.Root + "/" + c.ID }

// NamespacePrefix starts the name of every namespace of lab id.
func NamespacePrefix(id string) string { return "rampart-" + id + "-" }

// netNamespace is where the lab's bridge lives.
func (c Config) netNamespace() string { return NamespacePrefix(c.ID) + "net" }

// hostNamespace is the network namespace of host name.
func (c Config) hostNamespace(name string) string { return NamespacePrefix(c.ID) + name }

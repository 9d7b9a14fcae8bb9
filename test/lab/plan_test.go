package lab

import (
	"context"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"id with a dash would confuse namespace names", func(c *Config) { c.ID = "a-b" }, "lab id"},
		{"empty id", func(c *Config) { c.ID = "" }, "lab id"},
		{"upper-case id", func(c *Config) { c.ID = "Lab" }, "lab id"},
		{"no database host", func(c *Config) { c.DBHosts = 0 }, "database hosts"},
		{"more database hosts than the address plan has room for", func(c *Config) { c.DBHosts = 10 }, "database hosts"},
		{"IPv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet"},
		{"subnet smaller than /24", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.168.77.0/25") }, "subnet"},
		{"subnet with host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("192.168.77.5/24") }, "did you mean 192.168.77.0/24"},
		{"relative root", func(c *Config) { c.Root = "lab" }, "root"},
		{"root that sh would split (ipmi_sim runs the BMC power program through it)", func(c *Config) { c.Root = "/var/lib/my labs" }, "root"},
		{"management network overlapping the lab subnet", func(c *Config) { c.Management = netip.MustParsePrefix("192.168.0.0/16") }, "overlaps"},
		{"IPv6 management network", func(c *Config) { c.Management = netip.MustParsePrefix("fd00::/64") }, "management subnet"},
		{"token too short for a loaded machine", func(c *Config) { c.Token = 100 * time.Millisecond }, "token"},
		{"installed lab with a binary of its own", func(c *Config) { c.Installed, c.Agent = true, "/tmp/rampart" }, "installed lab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestAddressPlan(t *testing.T) {
	c := DefaultConfig()
	var got []string
	for _, h := range c.Hosts() {
		got = append(got, h.Name+"="+h.Addr.String()+"/"+string(h.Role))
	}
	want := []string{"n1=192.168.77.11/database", "n2=192.168.77.12/database", "n3=192.168.77.13/database", "client=192.168.77.50/client"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if c.VIP().String() != "192.168.77.100" {
		t.Errorf("VIP %v", c.VIP())
	}
	c.Subnet = netip.MustParsePrefix("10.9.0.0/16")
	if h := c.Hosts()[0]; h.Addr.String() != "10.9.0.11" {
		t.Errorf("first host in 10.9.0.0/16: %v", h.Addr)
	}
}

func TestCorosyncConf(t *testing.T) {
	c := DefaultConfig()
	conf := renderCorosyncConf(c)
	for _, want := range []string{"cluster_name: rampart-lab", "transport: knet", "token: 1000", "token_coefficient: 0",
		"ring0_addr: 192.168.77.13\n\t\tname: n3\n\t\tnodeid: 3", "provider: corosync_votequorum"} {
		if !strings.Contains(conf, want) {
			t.Errorf("corosync.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "192.168.77.50") || strings.Contains(conf, "two_node") {
		t.Errorf("corosync.conf of 3 database hosts names the client or two_node:\n%s", conf)
	}
	c.DBHosts = 2
	if !strings.Contains(renderCorosyncConf(c), "two_node: 1") {
		t.Error("a 2-node cluster needs two_node: 1")
	}
}

func TestSeedCIB(t *testing.T) {
	empty := `<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config/>
    <nodes/>
  </configuration>
  <status/>
</cib>`
	cib, err := renderSeedCIB(empty)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ClusterOptions() {
		if !strings.Contains(cib, `name="`+o.Name+`" value="`+o.Value+`"`) {
			t.Errorf("seed CIB lacks %s=%s:\n%s", o.Name, o.Value, cib)
		}
	}
	if !strings.Contains(cib, `crm_feature_set="3.16.1"`) {
		t.Error("seed CIB must keep this Pacemaker's feature set")
	}
	if _, err := renderSeedCIB("<cib/>"); err == nil {
		t.Error("a CIB without <crm_config/> must be refused")
	}
}

func TestParseMembers(t *testing.T) {
	tests := []struct {
		file string
		want []int
	}{
		{"cmap-members-3.txt", []int{1, 2, 3}},
		{"cmap-members-n3-left.txt", []int{1, 2}},
	}
	for _, tt := range tests {
		b, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseMembers(string(b)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.file, got, tt.want)
		}
	}
	if got := parseMembers("garbage\nruntime.members.x.status (str) = joined\n = \n"); len(got) != 0 {
		t.Errorf("garbage: got %v", got)
	}
}

func TestParseStat(t *testing.T) {
	p, err := parseStat(42, "42 (postgres: n1: walsender (x)) S 1 42 42 0 -1")
	if err != nil || p.Comm != "postgres: n1: walsender (x)" || p.State != 'S' {
		t.Errorf("got %+v, %v", p, err)
	}
	for _, bad := range []string{"", "42 postgres S", "42 (x)"} {
		if _, err := parseStat(42, bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCheckGroups(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name   string
		groups [][]string
		ok     bool
	}{
		{"one host from the rest", [][]string{{"n1"}}, true},
		{"two groups and the rest", [][]string{{"n1"}, {"n2", "client"}}, true},
		{"nothing named", nil, false},
		{"every host in one group is no partition", [][]string{{"n1", "n2", "n3", "client"}}, false},
		{"unknown host", [][]string{{"n9"}}, false},
		{"host in two groups", [][]string{{"n1"}, {"n1", "n2"}}, false},
		{"empty group", [][]string{{"n1"}, {}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkGroups(c, tt.groups); (err == nil) != tt.ok {
				t.Errorf("checkGroups(%v) = %v, want ok=%v", tt.groups, err, tt.ok)
			}
		})
	}
}

func TestWaitForReportsLastState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n := 0
	err := WaitFor(ctx, "the impossible", time.Millisecond, func(context.Context) (bool, string, error) {
		n++
		return false, "still not", nil
	})
	if err == nil || !strings.Contains(err.Error(), "the impossible") || !strings.Contains(err.Error(), "last state: still not") {
		t.Errorf("got %v", err)
	}
	if n < 2 {
		t.Errorf("checked %d times, want it polled", n)
	}
}

func TestParseCmapCounters(t *testing.T) {
	out := "stats.srp.operational_entered (u64) = 3\nstats.srp.firewall_enabled_or_nic_failure (u8) = 0\n" +
		"stats.knet.node2.link0.down_count (u32) = 12\nnot a counter\nstats.srp.name (str) = text\n"
	got := parseCmapCounters(out)
	want := map[string]uint64{"stats.srp.operational_entered": 3, "stats.srp.firewall_enabled_or_nic_failure": 0,
		"stats.knet.node2.link0.down_count": 12}
	if !maps.Equal(got, want) {
		t.Errorf("parseCmapCounters = %v, want %v", got, want)
	}
}

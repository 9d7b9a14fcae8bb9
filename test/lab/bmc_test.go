package lab

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestBMCAddressPlan(t *testing.T) {
	c := DefaultConfig()
	var got []string
	for _, h := range c.Hosts() {
		got = append(got, h.Name+" eth1="+h.Mgmt.String()+" bmc="+h.BMC.String())
	}
	want := []string{
		"n1 eth1=192.168.78.11 bmc=192.168.78.211",
		"n2 eth1=192.168.78.12 bmc=192.168.78.212",
		"n3 eth1=192.168.78.13 bmc=192.168.78.213",
		"client eth1=invalid IP bmc=invalid IP", // the client has no BMC
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestRenderBMCConf(t *testing.T) {
	c := DefaultConfig()
	c.Agent = "/usr/bin/rampart"
	conf := renderBMCConf(c, c.Hosts()[1], "0123456789abcdef")
	for _, want := range []string{
		"addr 192.168.78.212 623",
		`chassis_control "/var/lib/rampart/lab/lab/rampart lab bmc-power --root /var/lib/rampart/lab --id lab n2"`,
		`user 2 true "admin" "0123456789abcdef" admin`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("no %q in\n%s", want, conf)
		}
	}
	if g1, g2 := bmcGUID(1), bmcGUID(2); len(g1) != 32 || g1 == g2 {
		t.Errorf("GUIDs %q %q: want 32 hex digits each, distinct", g1, g2)
	}
}

func TestParseChassisRequest(t *testing.T) {
	tests := []struct {
		args    []string
		want    ChassisRequest
		wantErr bool
	}{
		{[]string{"get", "power"}, ChassisRequest{Get: []string{"power"}}, false},
		{[]string{"get", "power", "boot"}, ChassisRequest{Get: []string{"power", "boot"}}, false},
		// ipmi_sim quotes values; through sh they arrive bare, directly quoted.
		{[]string{"set", "power", "0"}, ChassisRequest{Set: [][2]string{{"power", "0"}}}, false},
		{[]string{"set", "power", `"1"`}, ChassisRequest{Set: [][2]string{{"power", "1"}}}, false},
		{[]string{"set", "power", "0", "reset", "1"}, ChassisRequest{Set: [][2]string{{"power", "0"}, {"reset", "1"}}}, false},
		{[]string{"set", "power"}, ChassisRequest{}, true},
		{[]string{"get"}, ChassisRequest{}, true},
		{[]string{"toggle", "power"}, ChassisRequest{}, true},
		{nil, ChassisRequest{}, true},
	}
	for _, tt := range tests {
		got, err := ParseChassisRequest(tt.args)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseChassisRequest(%q) = %+v, %v; want %+v, error %v", tt.args, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestListensUDP(t *testing.T) {
	// /proc/net/udp of a namespace where ipmi_sim listens on 192.168.78.211:623.
	text := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: D34EA8C0:026F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40213 2 0000000000000000 0
`
	if !listensUDP(text, netip.MustParseAddr("192.168.78.211").As4(), 623) {
		t.Error("does not see 192.168.78.211:623")
	}
	if listensUDP(text, netip.MustParseAddr("192.168.78.212").As4(), 623) {
		t.Error("sees 192.168.78.212:623, which nothing binds")
	}
}

func TestFencingConfig(t *testing.T) {
	c := DefaultConfig()
	c.Agent = "/usr/bin/rampart"
	l := &Lab{cfg: c, state: State{Passwords: map[string]string{bmcRole: "0123456789abcdef"}}}
	conf := l.fencingConfig()
	for _, want := range []string{
		"primitive fence-n1 stonith:fence_rampart_ipmi",
		`params ip=192.168.78.211 username=admin password="0123456789abcdef" node=n1 pcmk_host_list=n1`,
		"location fence-n3-elsewhere fence-n3 -inf: n3", // no host runs the device that fences it
		"stonith-enabled=true",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("no %q in\n%s", want, conf)
		}
	}
	if got := l.FenceDevices(); !reflect.DeepEqual(got, []string{"fence-n1", "fence-n2", "fence-n3"}) {
		t.Errorf("FenceDevices %v", got)
	}
	c.DBHosts = 1
	if got := (&Lab{cfg: c}).FenceDevices(); got != nil {
		t.Errorf("one-host lab: FenceDevices %v, want none (no host can fence it)", got)
	}
}

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/fence/ipmi"
	"github.com/rampart-ha/rampart/test/lab"
)

// The lab's fencing as Pacemaker uses it: fence_rampart_ipmi, run by the
// fencer, powers lab hosts off and on through their simulated BMCs.
func TestFencing(t *testing.T) {
	c := lab.DefaultConfig()
	c.ID = "e2efence"
	l := startLab(t, c)
	ctx := deadline(t, 3*time.Minute)
	run := func(host string, argv ...string) string {
		t.Helper()
		cmd, err := l.Exec(ctx, host, argv...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s on %s: %v\n%s", strings.Join(argv, " "), host, err, out)
		}
		return string(out)
	}

	// Pacemaker reads our metadata and knows which device fences whom.
	if md := run("n1", "stonith_admin", "--metadata", "--agent", ipmi.Name); !strings.Contains(md, `<resource-agent name="`+ipmi.Name+`"`) {
		t.Errorf("stonith_admin --metadata:\n%s", md)
	}
	if got := run("n1", "stonith_admin", "--list", "n3"); !strings.Contains(got, "fence-n3") || strings.Contains(got, "fence-n2") {
		t.Errorf("devices that can fence n3:\n%s\nwant fence-n3 only", got)
	}

	// Debian's fence_ipmilan agrees with ours about the lab's BMCs (the
	// same comparison as fence/ipmi's test, here over the management
	// network, with the lab's credentials).
	bmc := l.Hosts()[2].BMC.String()
	for _, agent := range []struct{ name, extra string }{
		{ipmi.Name, ""},
		{"fence_ipmilan", "cipher=3\n"}, // ipmi_sim does not list its cipher suites; ipmitool would wait 10 s for them
	} {
		cmd, err := l.Exec(ctx, "n1", agent.name)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(fmt.Sprintf("ip=%s\nusername=%s\npassword=%s\nlanplus=1\naction=status\n%s", bmc, lab.BMCUser, l.BMCPassword(), agent.extra))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s status of n3's BMC: %v\n%s\nwant exit 0 (on)", agent.name, err, out)
		}
	}
	before := l.Hosts()[2].Anchor
	start := time.Now()
	run("n1", "stonith_admin", "--reboot", "n3", "--timeout", "60")
	took := time.Since(start)
	if hist, _ := l.FenceHistory(ctx, "n2", "n3"); !strings.Contains(hist, "of n3 successful") {
		t.Errorf("fence history of n3:\n%s\nwant a successful reboot", hist)
	}
	// It was powered off (a new init) and on again: n3 rejoins the cluster.
	if err := lab.WaitFor(ctx, "n3 powered on again, a new init", 100*time.Millisecond, func(context.Context) (bool, string, error) {
		now := l.Hosts()[2].Anchor
		return now != 0 && now != before, fmt.Sprintf("init pid %d (was %d)", now, before), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitClusterOnline(ctx, l.DBHosts()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitStreaming(ctx, "n1", []string{"n2", "n3"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("stonith_admin --reboot n3: %s; n3 back in the cluster and streaming", took.Round(10*time.Millisecond))
}

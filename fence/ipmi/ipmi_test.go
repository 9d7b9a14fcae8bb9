package ipmi

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/fence"
	"github.com/rampart-ha/rampart/fence/fencetest"
)

// TestHelperPower is ipmi_sim's chassis_control program in these tests:
// "PROG get power" prints power:0|1 from the state file, "PROG set power
// "0|1"" writes it (lanserv/extcmd.c's protocol).
func TestHelperPower(t *testing.T) {
	state := os.Getenv("RAMPART_TEST_POWER_FILE")
	if state == "" {
		t.Skip("helper process of TestAgainstFenceIpmilan")
	}
	args := flagArgs()
	switch {
	case len(args) >= 2 && args[0] == "get":
		b, err := os.ReadFile(state)
		v := strings.TrimSpace(string(b))
		if err != nil {
			v = "1"
		}
		for _, p := range args[1:] {
			switch p {
			case "power":
				fmt.Printf("power:%s\n", v)
			case "boot":
				fmt.Println("boot:default")
			}
		}
	case len(args) >= 3 && args[0] == "set":
		for i := 1; i+1 < len(args); i += 2 {
			if args[i] == "power" {
				_ = os.WriteFile(state, []byte(strings.Trim(args[i+1], `"`)), 0o644)
			}
		}
	default:
		os.Exit(1)
	}
	os.Exit(0)
}

// flagArgs returns what follows "--" on the command line.
func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startBMC runs OpenIPMI's ipmi_sim on loopback with this test binary as
// its power control, and returns its port and power state file.
func startBMC(t *testing.T) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		t.Skip("needs ipmi_sim (Debian openipmi; make deps)")
	}
	dir := t.TempDir()
	port := freeUDPPort(t)
	state := filepath.Join(dir, "power")
	if err := os.WriteFile(state, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`name "test-bmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s -test.run=^TestHelperPower$ --"
  user 2 true "ipmiusr" "test" admin 10 none md2 md5 straight
`, port, self)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n"
	for name, text := range map[string]string{"lan.conf": conf, "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ipmi_sim", "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), "RAMPART_TEST_POWER_FILE="+state)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Ready when it answers a status.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := ours(t, port, "status", "")
		if code == 0 {
			return port, state
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim does not answer on port %d:\n%s", port, log.String())
		}
		time.Sleep(100 * time.Millisecond) // ipmi_sim has no readiness signal
	}
}

func options(port int, extra string) string {
	return fmt.Sprintf("ip=127.0.0.1\nipport=%d\nusername=ipmiusr\npassword=test\nlanplus=1\npower_wait=0\n%s", port, extra)
}

// ours runs fence_rampart_ipmi in this process through stdin.
func ours(t *testing.T, port int, action, extra string) (int, string, string) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := New().Run(ctx, nil, strings.NewReader(options(port, extra)+"action="+action+"\n"), &out, &errb, slog.New(slog.DiscardHandler))
	return code, out.String(), errb.String()
}

// Debian's fence_ipmilan and ours against the same ipmi_sim give the same
// exit codes for on, off, status, reboot and monitor, and the BMC's power
// state follows.
func TestAgainstFenceIpmilan(t *testing.T) {
	const ipmilan = "/usr/sbin/fence_ipmilan"
	if _, err := os.Stat(ipmilan); err != nil {
		t.Skip("needs fence_ipmilan (Debian fence-agents; make deps)")
	}
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("fence_ipmilan needs ipmitool (make deps)")
	}
	port, state := startBMC(t)
	theirs := func(action string) int {
		// ipmitool asks the BMC for its cipher suites first, which ipmi_sim
		// does not answer (10 s lost per call): name the suite.
		opts := map[string]string{"ip": "127.0.0.1", "ipport": fmt.Sprint(port), "username": "ipmiusr", "password": "test", "lanplus": "1", "power_wait": "0", "cipher": "3"}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, err := fence.Call(ctx, ipmilan, action, opts)
		if err != nil {
			t.Fatalf("fence_ipmilan %s: %v", action, err)
		}
		return r.Code
	}
	power := func() string { b, _ := os.ReadFile(state); return strings.TrimSpace(string(b)) }
	for _, step := range []struct {
		action string
		code   int
		power  string
	}{
		{"status", 0, "1"}, {"off", 0, "0"}, {"status", 2, "0"}, {"off", 0, "0"}, {"on", 0, "1"},
		{"status", 0, "1"}, {"reboot", 0, "1"}, {"status", 0, "1"}, {"monitor", 0, "1"},
	} {
		for _, who := range []string{"fence_rampart_ipmi", "fence_ipmilan"} {
			var code int
			var out, errs string
			if who == "fence_ipmilan" {
				code = theirs(step.action)
			} else {
				code, out, errs = ours(t, port, step.action, "")
			}
			if code != step.code || power() != step.power {
				t.Errorf("%s %s: exit %d, power %s; want exit %d, power %s (%s %s)", who, step.action, code, power(), step.code, step.power, out, errs)
			}
		}
	}
	// Ours alone: another node's plug is refused, never reported off.
	if code, _, errs := ours(t, port, "status", "node=n1\nplug=n2\n"); code != 1 || !strings.Contains(errs, "not a node this device fences") {
		t.Errorf("status for another node's plug: exit %d %q, want 1", code, errs)
	}
	if code, _, errs := ours(t, port, "off", "node=n1\nnodename=n2\n"); code != 1 || power() != "1" {
		t.Errorf("off for another node: exit %d (%s), power %s; want 1 and still on", code, errs, power())
	}
	// Wrong password: exit 1, no power change.
	if code, _, _ := ours(t, port, "off", "password=wrong\n"); code != 1 || power() != "1" {
		t.Errorf("off with a wrong password: exit %d, power %s; want 1 and on", code, power())
	}
}

// The password can come from a file: nothing on a command line.
func TestPasswordFile(t *testing.T) {
	port, _ := startBMC(t)
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	in := fmt.Sprintf("ip=127.0.0.1\nipport=%d\nusername=ipmiusr\npassword_file=%s\naction=status\n", port, f)
	if code := New().Run(context.Background(), nil, strings.NewReader(in), &out, &errb, slog.New(slog.DiscardHandler)); code != 0 {
		t.Errorf("status with password_file: exit %d %s %s", code, out.String(), errb.String())
	}
	if code := New().Run(context.Background(), nil, strings.NewReader(in+"password=x\n"), &out, &errb, slog.New(slog.DiscardHandler)); code != 1 {
		t.Errorf("password and password_file together: exit %d, want 1", code)
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

func TestMetadata(t *testing.T) {
	var out bytes.Buffer
	if code := New().Run(context.Background(), []string{"-o", "metadata"}, nil, &out, io.Discard, slog.New(slog.DiscardHandler)); code != 0 {
		t.Fatal(code)
	}
	golden := filepath.Join("testdata", "metadata.xml")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(golden); err != nil || out.String() != string(want) {
		t.Errorf("metadata differs from %s (go test -update rewrites it): %v\n%s", golden, err, out.String())
	}
	fencetest.ValidMetadata(t, out.String())
}

// Bad options: exit 1 with a message, and no BMC is contacted (none runs
// at 192.0.2.1).
func TestBadOptions(t *testing.T) {
	for name, in := range map[string]string{
		"no ip":               "action=off\n",
		"port out of range":   "action=off\nip=192.0.2.1\nipport=70000\n",
		"cipher not a number": "action=off\nip=192.0.2.1\ncipher=aes\n",
		"privilege unknown":   "action=off\nip=192.0.2.1\nprivlvl=root\n",
		"not a line":          "action=off\nip\n",
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		code := New().Run(context.Background(), nil, strings.NewReader(in), &out, &errb, slog.New(slog.DiscardHandler))
		if code != 1 || !strings.HasPrefix(errb.String(), "Failed:") || time.Since(start) > time.Second {
			t.Errorf("%s: exit %d after %s, stderr %q; want 1 at once with Failed:", name, code, time.Since(start), errb.String())
		}
	}
}

// A BMC that does not answer: status fails (exit 1) after one round of
// connection attempts, not two.
func TestUnansweredBMC(t *testing.T) {
	// A socket that takes the packets and never answers, like a BMC that
	// hangs or a host whose network drops them.
	mute, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	port := mute.LocalAddr().(*net.UDPAddr).Port
	start := time.Now()
	code, _, errOut := ours(t, port, "status", "ipmitool_timeout=1\n")
	took := time.Since(start)
	if code != 1 || !strings.Contains(errOut, "Get Channel Authentication Capabilities") {
		t.Errorf("status against nothing: exit %d, %q; want 1 naming the unanswered first command", code, errOut)
	}
	t.Logf("unanswered BMC: failed after %s", took.Round(100*time.Millisecond))
	if took > 8*time.Second {
		t.Errorf("an unanswered BMC took %s to fail: the agent tried more than one round", took)
	}
}

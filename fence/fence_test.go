package fence

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/fence/fencetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var testParams = append(append([]Param{}, Common...),
	Param{Name: "ip", Deprecated: []string{"ipaddr"}, Short: 'a', Value: "ip", Type: String, Required: true, Desc: "IP address"},
	Param{Name: "password", Deprecated: []string{"passwd"}, Short: 'p', Value: "password", Type: String, Secret: true, Desc: "Password"},
	Param{Name: "lanplus", Short: 'P', Type: Boolean, Desc: "Use lanplus"},
	Param{Name: "privlvl", Short: 'L', Value: "level", Type: Select, Choices: []string{"user", "operator", "administrator"}, Default: "administrator", Desc: "Privilege"},
	Param{Name: "ipport", Short: 'u', Value: "port", Type: Integer, Default: "623", Desc: "Port"},
)

func TestParseStdin(t *testing.T) {
	in := `# Pacemaker writes these in hash order
nodename=n2
ipaddr=192.168.1.1
plug=n2
password="se=cret"
lanplus=yes
status-file=/x
power_wait=0.5
action=off
action=reboot

`
	o, warnings, err := ParseStdin(strings.NewReader(in), testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{"nodename": "n2", "ip": "192.168.1.1", "plug": "n2", "password": "se=cret", "lanplus": "1", "power_wait": "0.5", "action": "reboot"}
	if len(o) != len(want) {
		t.Errorf("got %v, want %v", o, want)
	}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("%s = %q, want %q", k, o[k], v)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "status-file") || strings.Contains(warnings[0], "/x") {
		t.Errorf("warnings %q: want one naming status-file, without its value", warnings)
	}
	for name, bad := range map[string]string{
		"no equals sign":     "ip\n",
		"not a boolean":      "lanplus=maybe\n",
		"not a number":       "power_wait=soon\n",
		"not a choice":       "privlvl=root\n",
		"not an integer":     "ipport=6x3\n",
		"space in the name":  "ip addr=1\n",
		"seconds out of any": "delay=-5\n",
	} {
		if _, _, err := ParseStdin(strings.NewReader(bad), testParams); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
}

func TestParseArgs(t *testing.T) {
	o, err := ParseArgs([]string{"-a", "10.0.0.1", "--password=x y", "-P", "-o", "status", "--plug", "n1", "-L", "operator", "-u623"}, testParams)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"ip": "10.0.0.1", "password": "x y", "lanplus": "1", "action": "status", "plug": "n1", "privlvl": "operator", "ipport": "623"} {
		if o[k] != v {
			t.Errorf("%s = %q, want %q", k, o[k], v)
		}
	}
	for _, bad := range [][]string{{"--bogus=1"}, {"-Z"}, {"-a"}, {"stray"}, {"--nodename=n1"}, {"-L", "root"}} {
		if _, err := ParseArgs(bad, testParams); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func FuzzParseStdin(f *testing.F) {
	f.Add("action=off\nip=1.2.3.4\n")
	f.Add("# c\n\nlanplus=\"1\"\nbogus=x\n")
	f.Fuzz(func(t *testing.T, in string) {
		o, _, err := ParseStdin(strings.NewReader(in), testParams)
		if err != nil {
			return
		}
		for k, v := range o {
			if _, ok := byName(testParams, k); !ok || strings.ContainsAny(v, "\n\x00") {
				t.Fatalf("accepted %q=%q from %q", k, v, in)
			}
		}
	})
}

// fakeDevice is a scripted device: the narrow interface a unit test of the
// action logic needs.
type fakeDevice struct {
	power     Power
	stuck     bool // ignores power changes
	statusErr error
	sets      []bool
}

func (d *fakeDevice) Status(context.Context) (Power, error) { return d.power, d.statusErr }
func (d *fakeDevice) SetPower(_ context.Context, on bool) error {
	d.sets = append(d.sets, on)
	if !d.stuck {
		d.power = Off
		if on {
			d.power = On
		}
	}
	return nil
}
func (d *fakeDevice) Close() error { return nil }

func testAgent(d *fakeDevice, opened *int) *Agent {
	return &Agent{
		Name: "fence_test", Short: "a test agent", Long: "Fences nothing.",
		Params: []Param{
			{Name: "ip", Short: 'a', Value: "ip", Type: String, Required: true, Desc: "IP address"},
			{Name: "node", Value: "name", Type: String, Desc: "the node this device fences"},
			{Name: "power_wait", Value: "seconds", Type: Second, Default: "0", Desc: "Wait X seconds after issuing ON/OFF"},
		},
		Open: func(context.Context, Options) (Device, error) {
			*opened++
			return d, nil
		},
		Nodes: func(o Options) []string {
			if o["node"] == "" {
				return nil
			}
			return []string{o["node"]}
		},
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		device   fakeDevice
		stdin    string
		code     int
		stdout   string
		stderr   string
		sets     []bool
		noDevice bool
	}{
		{"status on", fakeDevice{power: On}, "action=status\nip=x\n", 0, "Status: ON", "", nil, false},
		{"status off", fakeDevice{power: Off}, "action=status\nip=x\n", 2, "Status: OFF", "", nil, false},
		{"status unreachable", fakeDevice{statusErr: errors.New("timeout")}, "action=status\nip=x\n", 1, "", "Unable to obtain", nil, false},
		{"off, confirmed", fakeDevice{power: On}, "action=off\nip=x\n", 0, "Success: Powered OFF", "", []bool{false}, false},
		{"off when off: nothing to do", fakeDevice{power: Off}, "action=off\nip=x\n", 0, "Success: Powered OFF", "", nil, false},
		{"off never confirmed", fakeDevice{power: On, stuck: true}, "action=off\nip=x\npower_timeout=0\n", 1, "", "still not OFF", []bool{false}, false},
		{"reboot: off then on", fakeDevice{power: On}, "action=reboot\nip=x\n", 0, "Success: Rebooted", "", []bool{false, true}, false},
		{"the default action is reboot", fakeDevice{power: On}, "ip=x\n", 0, "Success: Rebooted", "", []bool{false, true}, false},
		{"a plug that is not ours: 1, never off", fakeDevice{power: On}, "action=status\nip=x\nnode=n1\nplug=n2\n", 1, "", "not a node this device fences", nil, true},
		{"nodename decides without a plug", fakeDevice{power: On}, "action=off\nip=x\nnode=n1\nnodename=n2\n", 1, "", "n2 is not a node", nil, true},
		{"our plug", fakeDevice{power: On}, "action=off\nip=x\nnode=n1\nplug=n1\n", 0, "Success", "", []bool{false}, false},
		{"list", fakeDevice{}, "action=list\nip=x\nnode=n1\n", 0, "n1,", "", nil, true},
		{"list without a node name", fakeDevice{}, "action=list\nip=x\n", 1, "", "node", nil, true},
		{"missing required option", fakeDevice{}, "action=off\n", 1, "", "required option ip", nil, true},
		{"bad option value", fakeDevice{}, "action=off\nip=x\npower_wait=x\n", 1, "", "power_wait", nil, true},
		{"unknown action", fakeDevice{}, "action=explode\nip=x\n", 1, "", "Unrecognised action 'explode'", nil, true},
		{"validate-all", fakeDevice{}, "action=validate-all\nip=x\n", 0, "", "", nil, true},
		{"monitor", fakeDevice{power: Off}, "action=monitor\nip=x\n", 0, "", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.device
			opened := 0
			var out, errb bytes.Buffer
			code := testAgent(&d, &opened).Run(context.Background(), nil, strings.NewReader(tt.stdin), &out, &errb, slog.New(slog.DiscardHandler))
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
			if len(d.sets) != len(tt.sets) {
				t.Errorf("power commands %v, want %v", d.sets, tt.sets)
			}
			if tt.noDevice && opened > 0 {
				t.Errorf("the device was contacted")
			}
		})
	}
}

func TestDelayComesBeforeOff(t *testing.T) {
	d := fakeDevice{power: On}
	opened := 0
	start := time.Now()
	code := testAgent(&d, &opened).Run(context.Background(), nil, strings.NewReader("action=off\nip=x\ndelay=0.3\n"), io.Discard, io.Discard, slog.New(slog.DiscardHandler))
	if code != 0 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("exit %d after %s, want 0 after at least the 0.3 s delay", code, time.Since(start))
	}
}

func TestMetadata(t *testing.T) {
	opened := 0
	var out bytes.Buffer
	if code := testAgent(&fakeDevice{}, &opened).Run(context.Background(), []string{"-o", "metadata"}, nil, &out, io.Discard, slog.New(slog.DiscardHandler)); code != 0 {
		t.Fatal(code)
	}
	golden := filepath.Join("testdata", "metadata.xml")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("metadata differs from %s (go test -update rewrites it):\n%s", golden, out.String())
	}
	fencetest.ValidMetadata(t, out.String())
}

// Call runs fence-agents' fence_dummy as Pacemaker would.
func TestCallFenceDummy(t *testing.T) {
	const dummy = "/usr/sbin/fence_dummy"
	if _, err := os.Stat(dummy); err != nil {
		t.Skip("needs fence_dummy (Debian fence-agents; make deps)")
	}
	state := filepath.Join(t.TempDir(), "power")
	opts := map[string]string{"type": "file", "status_file": state}
	ctx := context.Background()
	for _, step := range []struct {
		action string
		code   int
	}{{"status", 2}, {"on", 0}, {"status", 0}, {"off", 0}, {"status", 2}, {"bogus", 1}} {
		r, err := Call(ctx, dummy, step.action, opts)
		if err != nil || r.Code != step.code {
			t.Errorf("%s: exit %d, %v (stdout %q stderr %q), want %d", step.action, r.Code, err, r.Stdout, r.Stderr, step.code)
		}
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Call(short, dummy, "status", map[string]string{"type": "file", "status_file": state, "random_sleep_range": "30"}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a hung agent: %v after %s, want killed at the deadline", err, time.Since(start))
	}
	if _, err := Call(ctx, dummy, "status", map[string]string{"x": "a\nb"}); err == nil {
		t.Errorf("a value with a newline was passed on")
	}
}

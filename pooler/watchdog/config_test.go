package watchdog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `[pooler]
listen_port = 6432
[watchdog]
self = pa
key_file = /etc/rampart/watchdog.key
heartbeat = 400ms
vip = 192.168.77.100
[members]
pa = 192.168.77.21:7480 priority=100
pb = 192.168.77.22:7480 priority=50
w = 192.168.77.30:7480 witness
[nodes]
n1 = host=192.168.77.11
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("pooler.ini", strings.NewReader(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Present || c.Self != "pa" || c.Heartbeat != 400*time.Millisecond || len(c.Members) != 3 || !c.Members[2].Witness ||
		c.Members[0].Priority != 100 || c.VIP.String() != "192.168.77.100" {
		t.Errorf("parsed %+v", c)
	}
	if e := c.Election(); e.Lease != 800*time.Millisecond || e.Promise != time.Second || e.Election != 1200*time.Millisecond {
		t.Errorf("timings %+v; want lease 2×, promise 2.5×, election 3× the heartbeat", e)
	}
	none, err := ParseConfig("pooler.ini", strings.NewReader("[pooler]\nlisten_port = 6432\n"))
	if err != nil || none.Present {
		t.Errorf("a file without [watchdog]: %+v, %v; want not present, no error", none, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ change, old, want string }{
		{"self = pz", "self = pa", `:4: self: "pz" is not in [members]`},
		{"", "key_file = /etc/rampart/watchdog.key", "key_file: missing"},
		{"heartbeat = 5ms", "heartbeat = 400ms", ":6: heartbeat:"},
		{"vip = nowhere", "vip = 192.168.77.100", ":7: vip:"},
		{"pb = 192.168.77.21:7480", "pb = 192.168.77.22:7480 priority=50", ":10: pb: member pb (192.168.77.21:7480) listed twice"},
		{"pb = 192.168.77.22 priority=50", "pb = 192.168.77.22:7480 priority=50", ":10: pb:"},
		{"pb = 192.168.77.22:7480 priority=high", "pb = 192.168.77.22:7480 priority=50", ":10: pb:"},
		{"pb = 192.168.77.22:7480 leader", "pb = 192.168.77.22:7480 priority=50", ":10: pb:"},
		{"colour = blue", "heartbeat = 400ms", ":6: colour: unknown key"},
	} {
		text := strings.Replace(goodConfig, tc.old, tc.change, 1)
		_, err := ParseConfig("pooler.ini", strings.NewReader(text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error containing %q", tc.change, err, tc.want)
		}
	}
}

func TestReadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	os.WriteFile(path, []byte("0123456789abcdef0123\n"), 0o600)
	if k, err := ReadKey(path); err != nil || string(k) != "0123456789abcdef0123" {
		t.Errorf("ReadKey = %q, %v", k, err)
	}
	os.Chmod(path, 0o644)
	if _, err := ReadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key: %v; want a refusal that says chmod 600", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := ReadKey(path); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

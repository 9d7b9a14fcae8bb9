package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// systemd's WatchdogSec, as the pooler speaks it: READY=1 once it serves,
// then WATCHDOG=1 from the election loop at least twice per period; a
// stopped (hung) process sends none, so systemd restarts it, and its lease
// has long run out by then. No systemd here: the test is the notify socket.
func TestPoolerSystemdWatchdog(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	if agentBinary == "" {
		t.Skip("needs the rampart binary (built by TestMain as root)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	os.WriteFile(filepath.Join(dir, "users"), []byte(`"app" "secret"`+"\n"), 0o600)
	udp, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	wport := udp.LocalAddr().(*net.UDPAddr).Port
	udp.Close()
	tcp, _ := net.Listen("tcp", "127.0.0.1:0")
	pport := tcp.Addr().(*net.TCPAddr).Port
	tcp.Close()
	conf := fmt.Sprintf("[pooler]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nauth_file = %s/users\nhealth_check_user = app\n"+
		"[nodes]\nn1 = host=127.0.0.1 port=1\n[watchdog]\nself = p1\nkey_file = %s\nheartbeat = 200ms\n[members]\np1 = 127.0.0.1:%d\n", pport, dir, key, wport)
	os.WriteFile(filepath.Join(dir, "pooler.ini"), []byte(conf), 0o600)

	cmd := exec.Command(agentBinary, "pooler", "run", "--config", filepath.Join(dir, "pooler.ini"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("--- rampart pooler run\n%s", out.String())
		}
	}()
	// messages collects what arrives on the notify socket for d.
	messages := func(d time.Duration) []string {
		var got []string
		buf := make([]byte, 4096)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			conn.SetReadDeadline(end)
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			got = append(got, strings.Split(strings.TrimSpace(string(buf[:n])), "\n")...)
		}
		return got
	}
	count := func(msgs []string, what string) int {
		n := 0
		for _, m := range msgs {
			if m == what {
				n++
			}
		}
		return n
	}
	first := messages(2 * time.Second)
	if count(first, "READY=1") != 1 || count(first, "WATCHDOG=1") < 3 {
		t.Fatalf("running: got %q; want READY=1 and WATCHDOG=1 at least twice a second", first)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	messages(100 * time.Millisecond) // what was already queued
	if hung := messages(2 * time.Second); count(hung, "WATCHDOG=1") != 0 {
		t.Errorf("stopped: got %q; want no WATCHDOG=1 (systemd would restart it)", hung)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	if again := messages(2 * time.Second); count(again, "WATCHDOG=1") < 3 {
		t.Errorf("resumed: got %q; want WATCHDOG=1 again", again)
	}
	t.Logf("WATCHDOG=1 at least twice a second while running, none while stopped")
}

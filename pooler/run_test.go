package pooler

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auth := write("userlist.txt", `"app" "s3cret"`+"\n"+`"ro" "SCRAM-SHA-256$4096:c2FsdA==$`+strings.Repeat("A", 43)+`=:`+strings.Repeat("A", 43)+`="`+"\n")
	conf := write("pooler.ini", "[pooler]\nauth_file = "+auth+"\nhealth_check_user = app\nwrite_functions = audit\n[nodes]\nn1 = host=10.0.0.1\nn2 = host=10.0.0.2 port=5433 weight=0\n")
	_, pc, err := Load(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.Users) != 2 || pc.Nodes[1].Addr != "10.0.0.2:5433" || pc.Nodes[1].Weight != 0 || !pc.Rules.WriteFunctions["audit"] {
		t.Errorf("proxy config %+v", pc)
	}
	// The health check user must be able to log in: a verifier is not enough.
	conf2 := write("p2.ini", "[pooler]\nauth_file = "+auth+"\nhealth_check_user = ro\n[nodes]\nn1 = host=a\n")
	if _, _, err := Load(conf2, nil); err == nil || !strings.Contains(err.Error(), "needs a password") {
		t.Errorf("health user with a verifier only: %v", err)
	}
	conf3 := write("p3.ini", "[pooler]\nauth_file = "+filepath.Join(dir, "none")+"\nhealth_check_user = app\n[nodes]\nn1 = host=a\n")
	if _, _, err := Load(conf3, nil); err == nil || !strings.Contains(err.Error(), "auth_file") {
		t.Errorf("missing auth file: %v", err)
	}
	// server_tls_ca_file must hold a certificate; the proxy gets its path.
	for name, ca := range map[string]string{"absent": filepath.Join(dir, "none.crt"), "no PEM": auth} {
		c := write("ca.ini", "[pooler]\nauth_file = "+auth+"\nhealth_check_user = app\nserver_tls_sslmode = verify-full\nserver_tls_ca_file = "+ca+"\n[nodes]\nn1 = host=a\n")
		if _, _, err := Load(c, nil); err == nil || !strings.Contains(err.Error(), "server_tls_ca_file") {
			t.Errorf("server_tls_ca_file %s: %v, want a refusal naming it", name, err)
		}
	}
	// Passwords in clear and server_tls_sslmode=prefer: said, loudly.
	var logged strings.Builder
	if _, _, err := Load(conf, slog.New(slog.NewTextHandler(&logged, nil))); err != nil || !strings.Contains(logged.String(), "verify-full") {
		t.Errorf("prefer with passwords: %v, logged %q; want a warning naming verify-full", err, logged.String())
	}
	// Others may not read it (issue 18: key_file's mode was checked, auth_file's not).
	for _, mode := range []os.FileMode{0o644, 0o604} {
		if err := os.Chmod(auth, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(conf, nil); err == nil || !strings.Contains(err.Error(), "chmod") {
			t.Errorf("auth_file mode %o: %v, want a refusal saying chmod", mode, err)
		}
	}
}

func TestMissingCapabilities(t *testing.T) {
	if got := missingCapabilities(1<<12 | 1<<13 | 1<<21); len(got) != 0 {
		t.Errorf("both held: %v", got)
	}
	if got := missingCapabilities(1 << 12); strings.Join(got, " ") != "CAP_NET_RAW" {
		t.Errorf("admin only: %v", got)
	}
	if got := missingCapabilities(0); len(got) != 2 {
		t.Errorf("none: %v", got)
	}
}

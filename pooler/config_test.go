package pooler

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sample = `; rampart pooler
[pooler]
listen_addr = *
listen_port = 6432
auth_file = /etc/rampart/userlist.txt
health_check_user = rampart
admin_users = dba, ops
http_listen = 127.0.0.1:9187
primary_reads = on
durable_reads = on
durable_read_timeout = 5s
pool_mode = transaction
default_pool_size = 30
server_idle_timeout = 600
max_packet_size = 64MB
max_lag_bytes = 1MB
max_lag_time = 2s
read_your_writes = 500ms
health_check_period = 1min
write_functions = audit_log, App.Touch

[nodes]
n1 = host=10.0.0.11
n2 = host=10.0.0.12 port=5433 weight=2
n3 = host='db 3.example' weight=0
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("pooler.ini", strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ListenAddr, want.AuthFile, want.DefaultPoolSize = "*", "/etc/rampart/userlist.txt", 30
	want.HealthCheckUser, want.PrimaryReads = "rampart", true
	want.DurableReads, want.DurableReadTimeout = true, 5*time.Second
	want.AdminUsers = []string{"dba", "ops"}
	want.HTTPListen = "127.0.0.1:9187"
	want.ServerIdleTimeout, want.MaxPacketSize = 600*time.Second, 64<<20
	want.MaxLagBytes, want.MaxLagTime, want.ReadYourWrites = 1<<20, 2*time.Second, 500*time.Millisecond
	want.HealthCheckPeriod = time.Minute
	want.WriteFunctions = []string{"audit_log", "app.touch"}
	want.Nodes = []Node{
		{Name: "n1", Host: "10.0.0.11", Port: 5432, Weight: 1},
		{Name: "n2", Host: "10.0.0.12", Port: 5433, Weight: 2},
		{Name: "n3", Host: "db 3.example", Port: 5432, Weight: 0},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		text string
		line int
		want string
	}{
		{"listen_port = 1\n", 1, "outside any section"},
		{"[pooler]\nlisten_prot = 6432\n[nodes]\nn1 = host=a\n", 2, "listen_prot: unknown key (known: admin_users, auth_file"},
		{"[pooler]\nlisten_port = 0\n", 2, "listen_port: \"0\": use a whole number from 1 to 65535"},
		{"[pooler]\nlisten_port = 6432\nlisten_port = 6433\n", 3, "set twice (first on line 2)"},
		{"[pooler]\npool_mode = statement\n", 2, "use transaction or session"},
		{"[pooler]\nlisten_addr = localhost\n", 2, "not an IP address"},
		{"[pooler]\nserver_idle_timeout = soon\n", 2, "use a duration"},
		{"[pooler]\nhealth_check_period = 10ms\n", 2, "at least 100ms"},
		{"[pooler]\nmax_packet_size = 12XB\n", 2, "use bytes"},
		{"[pooler]\ndurable_reads = always\n", 2, "use on or off"},
		{"[pooler]\ndurable_read_timeout = 1ms\n", 2, "at least 100ms"},
		{"[pooler]\nmax_packet_size = 2GB\n", 2, "1kB to 1GB"},
		{"[pool]\n", 1, "unknown section [pool]"},
		{"[pooler\n", 1, "no closing ]"},
		{"[pooler]\njust words\n", 2, "want key = value"},
		{"[nodes]\nn1 = port=5432\n", 2, "n1: no host="},
		{"[nodes]\nn1 = host=a user=b\n", 2, "unknown node setting \"user\""},
		{"[nodes]\nn1 = host=a weight=-1\n", 2, "weight"},
		{"[nodes]\nn1 = host='a\n", 2, "n1:"},
		{"[pooler]\nauth_file = a\nhealth_check_user = u\n", 3, "no [nodes]"},
		{"[pooler]\nauth_file = a\n[nodes]\nn1 = host=a\n", 4, "health_check_user: missing"},
		{"[pooler]\nprimary_reads = maybe\n", 2, "use on or off"},
		{"[pooler]\nread_your_writes = always\n", 2, "use a duration such as 500ms, 2s, 10min, or seconds, or lsn"},
		{"[pooler]\nread_your_writes_wait = -1s\n", 2, "at least 0s"},
		{"[pooler]\nhttp_listen = 9187\n", 2, "use host:port"},
		{"[pooler]\nclient_tls_sslmode = verify-full\n", 2, "use disable, allow, prefer or require"},
		{"[pooler]\nauth_file = a\nhealth_check_user = u\nclient_tls_sslmode = require\n[nodes]\nn1 = host=a\n", 6, "needs client_tls_cert_file"},
	}
	for _, tt := range tests {
		_, err := ParseConfig("p.ini", strings.NewReader(tt.text))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Line != tt.line || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "p.ini:") {
			t.Errorf("%q: got %v; want p.ini:%d: …%s…", tt.text, err, tt.line, tt.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(sample)
	f.Add("[pooler]\nauth_file = a\nhealth_check_user = u\n[nodes]\nn1 = host=a port=1\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseConfig("f.ini", strings.NewReader(text))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line < 1 {
				t.Errorf("error %v does not name a line", err)
			}
			return
		}
		if len(c.Nodes) == 0 || c.ListenPort < 1 || c.DefaultPoolSize < 1 {
			t.Errorf("accepted an invalid config: %+v", c)
		}
	})
}

// read_your_writes = lsn: causal reads by WAL position, with a bounded
// wait for a standby; a duration keeps the timer mode.
func TestParseReadYourWrites(t *testing.T) {
	base := "[pooler]\nauth_file = a\nhealth_check_user = u\n%s[nodes]\nn1 = host=a\n"
	c, err := ParseConfig("p.ini", strings.NewReader(fmt.Sprintf(base, "read_your_writes = LSN\nread_your_writes_wait = 50ms\n")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadYourWritesLSN || c.ReadYourWrites != 0 || c.ReadYourWritesWait != 50*time.Millisecond {
		t.Errorf("lsn: %v, %s, wait %s", c.ReadYourWritesLSN, c.ReadYourWrites, c.ReadYourWritesWait)
	}
	if c, err = ParseConfig("p.ini", strings.NewReader(fmt.Sprintf(base, "read_your_writes = 3s\n"))); err != nil || c.ReadYourWritesLSN || c.ReadYourWrites != 3*time.Second {
		t.Errorf("3s: %+v, %v", c, err)
	}
}

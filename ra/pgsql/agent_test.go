package pgsql

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/ocf/ocftest"
	"github.com/rampart-ha/rampart/ra/pg"
)

var update = flag.Bool("update", false, "rewrite golden files")

func noPacemaker(context.Context, ...string) (string, error) {
	panic("this test must not call Pacemaker's tools")
}

func runAgent(t *testing.T, environ []string, action string) (ocf.Status, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	st := ocf.Run(context.Background(), New(noPacemaker, time.Now), []string{"pgsql", action}, environ, &out, &errb,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	return st, out.String(), errb.String()
}

func TestMetaDataGolden(t *testing.T) {
	out := ocftest.MetaData(t, New(noPacemaker, time.Now))
	ocftest.Golden(t, out, "testdata/meta-data.xml", *update)
	ocftest.ValidDTD(t, out)
}

// Invariant 6: bad parameters are refused with OCF_ERR_CONFIGURED, naming
// the parameter, before anything is touched (noPacemaker panics if called).
func TestBadParametersAreRefused(t *testing.T) {
	base := []string{"OCF_RESOURCE_INSTANCE=pgsql:0", "OCF_RESKEY_CRM_meta_on_node=n1"}
	tests := []struct {
		name, kv, says string
	}{
		{"no pgdata", "", "pgdata is required"},
		{"relative pgdata", "OCF_RESKEY_pgdata=data", "pgdata"},
		{"user name with a space (no shell text from parameters)", "OCF_RESKEY_system_user=post gres", "system_user"},
		{"sync_count out of range", "OCF_RESKEY_sync_count=17", "sync_count"},
		{"unknown policy", "OCF_RESKEY_sync_policy=fast", "sync_policy"},
		{"bad method", "OCF_RESKEY_sync_method=quorum", "sync_method"},
		{"node_hosts without =", "OCF_RESKEY_node_hosts=n1 n2", "node_hosts"},
		{"conninfo_opts unterminated", "OCF_RESKEY_conninfo_opts=sslmode='x", "conninfo_opts"},
		{"a password in conninfo_opts", "OCF_RESKEY_conninfo_opts=sslmode=require password=secret", "~/.pgpass"},
		{"a misspelt parameter", "OCF_RESKEY_sync_cuont=2", "unknown parameter sync_cuont"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{}, base...)
			if !strings.HasPrefix(tt.kv, "OCF_RESKEY_pgdata") && tt.name != "no pgdata" {
				env = append(env, "OCF_RESKEY_pgdata=/var/lib/postgresql/15/main")
			}
			if tt.kv != "" {
				env = append(env, tt.kv)
			}
			for _, action := range []string{"start", "monitor", "promote", "validate-all"} {
				st, _, stderr := runAgent(t, env, action)
				if st != ocf.ErrConfigured || !strings.Contains(stderr, "ocf-exit-reason:") || !strings.Contains(stderr, tt.says) {
					t.Errorf("%s: status %v, stderr %q; want OCF_ERR_CONFIGURED naming %q", action, st, stderr, tt.says)
				}
			}
		})
	}
}

func TestValidateAllReportsMissingBinaries(t *testing.T) {
	st, _, stderr := runAgent(t, []string{"OCF_RESKEY_pgdata=/d", "OCF_RESKEY_bindir=/nonexistent/bin"}, "validate-all")
	if st != ocf.ErrInstalled || !strings.Contains(stderr, "bindir") {
		t.Errorf("status %v, stderr %q; want OCF_ERR_INSTALLED naming bindir", st, stderr)
	}
}

// conninfo_opts must not carry a secret (it would show in ps on the
// pg_rewind and pg_basebackup command lines, and in postgresql.auto.conf)
// nor a key the agent sets itself (it would be overwritten, or override
// where the standby connects).
func TestConninfoOptsCheck(t *testing.T) {
	tests := []struct {
		name, opts string
		says       string // "" for accepted
	}{
		{"none", "", ""},
		{"TLS settings", "sslmode=verify-full sslrootcert=/etc/ssl/ca.pem", ""},
		{"a password file", "passfile=/var/lib/postgresql/.pgpass-repl", ""},
		{"a password", "sslmode=require password=secret", "~/.pgpass"},
		{"a password, quoted", "password='a b'", "~/.pgpass"},
		{"a password in capitals", "PASSWORD=secret", "~/.pgpass"},
		{"the key's passphrase", "sslpassword=secret", "sslpassword"},
		{"host", "host=10.0.0.9", "node_hosts"},
		{"hostaddr", "hostaddr=10.0.0.9", "node_hosts"},
		{"port", "port=5433", "pgport"},
		{"user", "user=postgres", "repuser"},
		{"application_name", "application_name=n9", "node's name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ocf.Validate(Params, map[string]string{"pgdata": "/var/lib/postgresql/15/main", "conninfo_opts": tt.opts})
			switch {
			case tt.says == "" && err != nil:
				t.Errorf("conninfo_opts=%q refused: %v", tt.opts, err)
			case tt.says != "" && (ocf.StatusOf(err) != ocf.ErrConfigured || !strings.Contains(fmt.Sprint(err), tt.says)):
				t.Errorf("conninfo_opts=%q: %v (status %v); want OCF_ERR_CONFIGURED saying %q", tt.opts, err, ocf.StatusOf(err), tt.says)
			}
		})
	}
}

func TestPrimaryConninfo(t *testing.T) {
	extra, _ := pg.ParseConninfo("sslmode=require connect_timeout=5 host=evil")
	c := PrimaryConninfo("n2", "n1", 5432, "repl", map[string]string{"n1": "10.0.0.11"}, extra)
	for k, want := range map[string]string{"host": "10.0.0.11", "port": "5432", "user": "repl", "application_name": "n2",
		"sslmode": "require", "connect_timeout": "5", "tcp_user_timeout": "5000"} {
		if c[k] != want {
			t.Errorf("%s = %q, want %q (in %s)", k, c[k], want, c)
		}
	}
	if c := PrimaryConninfo("n3", "n9", 5433, "repl", nil, nil); c["host"] != "n9" || c["port"] != "5433" {
		t.Errorf("a node without an address is reached by name: %s", c)
	}
}

func TestPositionRoundTrip(t *testing.T) {
	p := Position{Timeline: 3, LSN: 0x16B374D848, Eligible: true, AtMillis: 1795655849710}
	back, ok := ParsePosition(p.String())
	if !ok || back != p {
		t.Errorf("%q → %+v, %v", p.String(), back, ok)
	}
	for _, bad := range []string{"", "1:0/0:1", "x:0/0:1:5", "1:0/0:2:5", "1:zz:1:5", "1:0/0:1:soon"} {
		if _, ok := ParsePosition(bad); ok {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
}

func TestMemoRoundTripAndGarbage(t *testing.T) {
	m := Memo{Joined: map[string]string{"n2": "0/5000000"}, ShortSince: 17, States: map[string]string{"n2": "sync"}}
	back := ParseMemo(m.String())
	if back.String() != m.String() || back.JoinedLSNs()["n2"] != 0x5000000 {
		t.Errorf("round trip: %+v", back)
	}
	if g := ParseMemo("{not json"); g.Joined != nil || g.ShortSince != 0 {
		t.Errorf("garbage gives %+v, want an empty memo", g)
	}
}

func TestStandbyStates(t *testing.T) {
	in := SyncInput{Self: "n1", Members: []string{"n2", "n3", "n4", "n5"}, Standbys: []Standby{
		{Name: "n2", State: "streaming", SyncState: "sync"},
		{Name: "n3", State: "streaming", SyncState: "sync"},
		{Name: "n4", State: "catchup", SyncState: "async"},
	}}
	d := SyncDecision{Names: names(pg.First, 2, "n2", "n3"), Eligible: []string{"n2"}, WritesBlocked: true}
	got := StandbyStates(in, d)
	want := map[string]string{"n1": "primary-writes-blocked", "n2": "sync", "n3": "sync-catching-up", "n4": "catchup", "n5": "disconnected"}
	for n, s := range want {
		if got[n] != s {
			t.Errorf("%s: %q, want %q", n, got[n], s)
		}
	}
}

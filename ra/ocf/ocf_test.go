package ocf

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestParseEnv(t *testing.T) {
	env, err := ParseEnv([]string{
		"OCF_RESOURCE_INSTANCE=pgsql:2",
		"OCF_RESKEY_pgdata=/var/lib/postgresql/15/main",
		"OCF_RESKEY_crm_feature_set=3.16.1",
		"OCF_RESKEY_CRM_meta_timeout=20000",
		"OCF_RESKEY_CRM_meta_interval=3000",
		"OCF_RESKEY_CRM_meta_role=Master",
		"OCF_RESKEY_CRM_meta_on_node=n2",
		"OCF_RESKEY_CRM_meta_clone_max=3",
		"OCF_RESKEY_CRM_meta_clone_node_max=1",
		"OCF_RESKEY_CRM_meta_master_max=1",
		"OCF_RESKEY_CRM_meta_notify=true",
		"OCF_CHECK_LEVEL=10",
		"PATH=/usr/bin",
		"no equals sign",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Env{
		Resource: "pgsql", Instance: "pgsql:2",
		Params:  map[string]string{"pgdata": "/var/lib/postgresql/15/main", "crm_feature_set": "3.16.1"},
		Timeout: 20 * time.Second, Interval: 3 * time.Second, Role: Promoted, OnNode: "n2", CheckLevel: 10,
		Clone: Clone{Max: 3, NodeMax: 1, PromotedMax: 1, Notify: true},
	}
	env.Meta, env.Notify = nil, Notify{}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got  %+v\nwant %+v", env, want)
	}
}

func TestParseEnvRoles(t *testing.T) {
	for raw, want := range map[string]Role{"Promoted": Promoted, "Master": Promoted, "Unpromoted": Unpromoted, "Slave": Unpromoted, "": ""} {
		env, err := ParseEnv([]string{"OCF_RESKEY_CRM_meta_role=" + raw})
		if err != nil || env.Role != want {
			t.Errorf("role %q: got %q, %v; want %q", raw, env.Role, err, want)
		}
	}
}

func TestParseEnvRejectsBadMeta(t *testing.T) {
	for _, kv := range []string{
		"OCF_RESKEY_CRM_meta_timeout=20s",
		"OCF_RESKEY_CRM_meta_interval=-5",
		"OCF_RESKEY_CRM_meta_role=Boss",
		"OCF_RESKEY_CRM_meta_promoted_max=one",
		"OCF_CHECK_LEVEL=deep",
	} {
		if _, err := ParseEnv([]string{kv}); StatusOf(err) != ErrArgs {
			t.Errorf("%s: got %v (status %v), want OCF_ERR_ARGS", kv, err, StatusOf(err))
		}
	}
}

func TestParseNotify(t *testing.T) {
	env, err := ParseEnv([]string{
		"OCF_RESKEY_CRM_meta_notify_type=pre",
		"OCF_RESKEY_CRM_meta_notify_operation=promote",
		"OCF_RESKEY_CRM_meta_notify_promote_resource=pgsql:1 ",
		"OCF_RESKEY_CRM_meta_notify_promote_uname=n2 ",
		"OCF_RESKEY_CRM_meta_notify_stop_resource= ",
		"OCF_RESKEY_CRM_meta_notify_stop_uname= ",
		// Pacemaker 2.1 sends both names; the OCF 1.1 one wins.
		"OCF_RESKEY_CRM_meta_notify_promoted_resource= ",
		"OCF_RESKEY_CRM_meta_notify_promoted_uname= ",
		"OCF_RESKEY_CRM_meta_notify_master_resource=stale:0",
		"OCF_RESKEY_CRM_meta_notify_master_uname=stale",
		// Only the deprecated name: still understood.
		"OCF_RESKEY_CRM_meta_notify_slave_resource=pgsql:1 pgsql:2",
		"OCF_RESKEY_CRM_meta_notify_slave_uname=n2 n3",
		"OCF_RESKEY_CRM_meta_notify_inactive_resource=pgsql:0",
		"OCF_RESKEY_CRM_meta_notify_all_uname=n1 n2 n3",
	})
	if err != nil {
		t.Fatal(err)
	}
	n := env.Notify
	if n.Type != "pre" || n.Operation != "promote" {
		t.Errorf("type %q operation %q", n.Type, n.Operation)
	}
	check := func(name string, got []Instance, want []Instance) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	check("promote", n.Promote, []Instance{{"pgsql:1", "n2"}})
	check("stop (\" \" is empty)", n.Stop, []Instance{})
	check("promoted (OCF 1.1 name wins)", n.Promoted, []Instance{})
	check("unpromoted (from slave_*)", n.Unpromoted, []Instance{{"pgsql:1", "n2"}, {"pgsql:2", "n3"}})
	check("inactive (no uname)", n.Inactive, []Instance{{"pgsql:0", ""}})
	check("demote (absent)", n.Demote, nil)
	if !reflect.DeepEqual(n.All, []string{"n1", "n2", "n3"}) {
		t.Errorf("all: %v", n.All)
	}
}

var testParams = []Param{
	{Name: "pgdata", Type: String, Required: true, Unique: true, Short: "data directory", Long: "The data directory."},
	{Name: "port", Type: Integer, Default: "5432", Min: 1, Max: 65535, Short: "port", Long: "TCP port."},
	{Name: "auto_rejoin", Type: Boolean, Default: "false", Short: "rejoin", Long: "Rejoin by itself."},
	{Name: "grace", Type: Time, Default: "10s", Short: "grace", Long: "Grace period."},
	{Name: "policy", Type: String, Default: "durability", Choices: []string{"durability", "availability"}, Short: "policy", Long: "What to do."},
	{Name: "user", Type: String, Default: "postgres", Short: "user", Long: "OS user.", Check: func(s string) error {
		if strings.ContainsAny(s, " /") {
			return errors.New("not a user name")
		}
		return nil
	}},
}

func TestValidate(t *testing.T) {
	v, err := Validate(testParams, map[string]string{"pgdata": "/d", "auto_rejoin": "yes", "crm_feature_set": "3.16.1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.String("pgdata") != "/d" || v.Int("port") != 5432 || !v.Bool("auto_rejoin") || v.Duration("grace") != 10*time.Second || v.String("policy") != "durability" {
		t.Errorf("values %v", v)
	}
	tests := []struct {
		name string
		raw  map[string]string
		want string
	}{
		{"required parameter missing", map[string]string{}, "parameter pgdata is required"},
		{"required parameter empty", map[string]string{"pgdata": ""}, "parameter pgdata is required"},
		{"unknown parameter (a typo)", map[string]string{"pgdata": "/d", "pgdtaa": "/x"}, "unknown parameter pgdtaa"},
		{"integer not a number", map[string]string{"pgdata": "/d", "port": "5432a"}, "port=\"5432a\": not an integer"},
		{"integer out of range", map[string]string{"pgdata": "/d", "port": "70000"}, "out of range"},
		{"boolean misspelt", map[string]string{"pgdata": "/d", "auto_rejoin": "ja"}, "not a boolean"},
		{"time with unknown unit", map[string]string{"pgdata": "/d", "grace": "10 fortnights"}, "unknown unit"},
		{"value not among the choices", map[string]string{"pgdata": "/d", "policy": "speed"}, "use one of durability, availability"},
		{"custom check", map[string]string{"pgdata": "/d", "user": "post gres"}, "not a user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(testParams, tt.raw)
			if StatusOf(err) != ErrConfigured || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (status %v), want OCF_ERR_CONFIGURED about %q", err, StatusOf(err), tt.want)
			}
		})
	}
}

// ValidateEach reports every bad parameter, and leaves them out of the
// values rather than giving them their defaults.
func TestValidateEach(t *testing.T) {
	v, errs := ValidateEach(testParams, map[string]string{"port": "5432a", "policy": "speed", "pgdtaa": "/x", "auto_rejoin": "yes"})
	var got []string
	for _, err := range errs {
		if StatusOf(err) != ErrConfigured {
			t.Errorf("%v: status %v", err, StatusOf(err))
		}
		got = append(got, err.Error())
	}
	want := []string{"unknown parameter pgdtaa", "parameter pgdata is required", `port="5432a"`, `policy="speed"`}
	if len(got) != len(want) {
		t.Fatalf("errors %q; want %d about %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("error %d is %q; want one about %q", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"pgdata", "port", "policy", "pgdtaa"} {
		if val, ok := v[bad]; ok {
			t.Errorf("%s = %q in the values; want it left out", bad, val)
		}
	}
	if !v.Bool("auto_rejoin") || v.String("user") != "postgres" || v.Duration("grace") != 10*time.Second {
		t.Errorf("good values %v", v)
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"10": 10 * time.Second, "10s": 10 * time.Second, "500ms": 500 * time.Millisecond,
		"2min": 2 * time.Minute, "1h": time.Hour, "3 sec": 3 * time.Second} {
		if got, err := ParseTime(in); err != nil || got != want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "s", "-1s", "1.5s", "10y", "99999999999"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q): no error", bad)
		}
	}
}

func testAgent(action Action) *Agent {
	return &Agent{
		Name: "test", Version: "0.1", Short: "A test agent", Long: "An agent for the framework's tests.",
		Params: testParams,
		Ops: []Op{
			{Name: "start", Timeout: 60 * time.Second},
			{Name: "stop", Timeout: 60 * time.Second},
			{Name: "monitor", Timeout: 20 * time.Second, Interval: 4 * time.Second},
			{Name: "monitor", Timeout: 20 * time.Second, Interval: 3 * time.Second, Role: Promoted},
			{Name: "promote", Timeout: 90 * time.Second},
			{Name: "notify", Timeout: 500 * time.Millisecond},
		},
		Actions: map[string]Action{"monitor": action},
	}
}

func run(t *testing.T, a *Agent, environ []string, args ...string) (Status, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	st := Run(context.Background(), a, append([]string{"test"}, args...), environ, &out, &errb, discard())
	return st, out.String(), errb.String()
}

func TestRunExitCodes(t *testing.T) {
	okEnv := []string{"OCF_RESKEY_pgdata=/d", "OCF_RESOURCE_INSTANCE=test:0"}
	tests := []struct {
		name    string
		action  Action
		environ []string
		args    []string
		want    Status
		reason  string
	}{
		{"no action", nil, okEnv, nil, ErrArgs, ""},
		{"unimplemented action", nil, okEnv, []string{"migrate_to"}, ErrUnimplemented, "ocf-exit-reason:action \"migrate_to\" is not implemented"},
		{"bad parameter is OCF_ERR_CONFIGURED whatever the action", nil, []string{"OCF_RESKEY_port=x"}, []string{"monitor"}, ErrConfigured, "ocf-exit-reason:parameter pgdata is required"},
		{"bad meta is OCF_ERR_ARGS", nil, append(okEnv, "OCF_RESKEY_CRM_meta_timeout=soon"), []string{"monitor"}, ErrArgs, "ocf-exit-reason:CRM_meta_timeout"},
		{"validate-all without a hook checks parameters", nil, okEnv, []string{"validate-all"}, Success, ""},
		{"status passes through", func(context.Context, *Request) (Status, error) { return RunningPromoted, nil }, okEnv, []string{"monitor"}, RunningPromoted, ""},
		{"an *Error sets status and reason", func(context.Context, *Request) (Status, error) {
			return Success, Errorf(FailedPromoted, "postmaster of primary gone: %w", errors.New("no such process"))
		}, okEnv, []string{"monitor"}, FailedPromoted, "ocf-exit-reason:postmaster of primary gone: no such process"},
		{"any other error is OCF_ERR_GENERIC", func(context.Context, *Request) (Status, error) { return Success, errors.New("boom") }, okEnv, []string{"monitor"}, ErrGeneric, "ocf-exit-reason:boom"},
		{"backquotes, where Pacemaker cuts a reason, become quotes", func(context.Context, *Request) (Status, error) {
			return Success, errors.New("it may have diverged; rejoin it with `rampart rejoin` or set auto_rejoin=true")
		}, okEnv, []string{"monitor"}, ErrGeneric, "ocf-exit-reason:it may have diverged; rejoin it with 'rampart rejoin' or set auto_rejoin=true"},
		{"exit reason prefix from the environment", func(context.Context, *Request) (Status, error) { return Success, errors.New("boom") },
			append(okEnv, "OCF_EXIT_REASON_PREFIX=reason:"), []string{"monitor"}, ErrGeneric, "reason:boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _, stderr := run(t, testAgent(tt.action), tt.environ, tt.args...)
			if st != tt.want || !strings.Contains(stderr, tt.reason) {
				t.Errorf("got %v, stderr %q; want %v with %q", st, stderr, tt.want, tt.reason)
			}
		})
	}
}

func TestRunSetsDeadlineFromMetaTimeout(t *testing.T) {
	var left time.Duration
	a := testAgent(func(ctx context.Context, r *Request) (Status, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return Success, errors.New("no deadline")
		}
		left = time.Until(d)
		return Success, nil
	})
	st, _, stderr := run(t, a, []string{"OCF_RESKEY_pgdata=/d", "OCF_RESKEY_CRM_meta_timeout=20000"}, "monitor")
	// 20 s minus a margin of 2 s to report the reason before Pacemaker kills us.
	if st != Success || left > 18*time.Second || left < 17*time.Second {
		t.Errorf("status %v (%s), deadline in %v, want about 18s", st, stderr, left)
	}
}

func TestMetaDataGolden(t *testing.T) {
	st, out, _ := run(t, testAgent(nil), nil, "meta-data")
	if st != Success {
		t.Fatalf("meta-data: %v", st)
	}
	golden := filepath.Join("testdata", "meta-data.xml")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("meta-data differs from %s (go test -update rewrites it):\n%s", golden, out)
	}
}

// The meta-data must validate against resource-agents' DTD, which is what
// crm and pcs rely on.
func TestMetaDataValidatesAgainstDTD(t *testing.T) {
	const dtd = "/usr/share/resource-agents/ra-api-1.dtd"
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Skip("needs xmllint (Debian libxml2-utils; make deps installs it)")
	}
	if _, err := os.Stat(dtd); err != nil {
		t.Skipf("needs %s (Debian resource-agents; make deps installs it)", dtd)
	}
	_, out, _ := run(t, testAgent(nil), nil, "meta-data")
	cmd := exec.Command("xmllint", "--noout", "--dtdvalid", dtd, "-")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint: %v\n%s", err, b)
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add("OCF_RESKEY_CRM_meta_timeout", "20000", "OCF_RESKEY_CRM_meta_notify_start_uname", "n1 n2")
	f.Add("OCF_RESKEY_CRM_meta_role", "Master", "OCF_RESKEY_CRM_meta_notify_start_resource", " ")
	f.Add("OCF_RESKEY_pgdata", "/d", "OCF_RESKEY_CRM_meta_promoted_max", "-1")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		env, err := ParseEnv([]string{k1 + "=" + v1, k2 + "=" + v2})
		if err != nil {
			if StatusOf(err) != ErrArgs {
				t.Errorf("error %v has status %v, want OCF_ERR_ARGS", err, StatusOf(err))
			}
			return
		}
		if env.Timeout < 0 || env.Interval < 0 {
			t.Errorf("negative durations: %+v", env)
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add("pgdata", "/d", "port", "5432")
	f.Add("grace", "10min", "policy", "availability")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		v, err := Validate(testParams, map[string]string{k1: v1, k2: v2, "pgdata": "/d"})
		if err != nil {
			if StatusOf(err) != ErrConfigured {
				t.Errorf("error %v has status %v", err, StatusOf(err))
			}
			return
		}
		for _, p := range testParams {
			if _, ok := v[p.Name]; !ok {
				t.Errorf("valid values lack %s", p.Name)
			}
		}
	})
}

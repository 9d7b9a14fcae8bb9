package pgxsuite

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/test/lab"
)

// setting is one row of pg_settings that a start-up packet may set.
type setting struct {
	Name, Type, Context, Reset, Min, Max string
	Enum                                 []string
}

// stringCandidates are values to try for string parameters (any other
// string parameter has no value safe to guess, and is skipped, said so).
var stringCandidates = map[string]string{
	"application_name": "leak test", "search_path": "leak_schema, public", "DateStyle": "SQL, DMY",
	"TimeZone": "Asia/Tokyo", "default_text_search_config": "pg_catalog.simple", "timezone_abbreviations": "Australia",
	"IntervalStyle": "iso_8601", "lc_messages": "C", "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C",
	"default_tablespace": "pg_default", "temp_tablespaces": "pg_default", "cluster_name": "",
	"local_preload_libraries": "", "session_preload_libraries": "", "role": "",
}

// candidate is a value of s other than its default, or "" when there is
// none to guess.
func candidate(s setting) string {
	switch s.Type {
	case "bool":
		if s.Reset == "on" {
			return "off"
		}
		return "on"
	case "enum":
		for _, e := range s.Enum {
			if !strings.EqualFold(e, s.Reset) {
				return e
			}
		}
	case "integer", "real":
		for _, v := range []string{s.Min, s.Max} {
			if v != "" && v != s.Reset {
				return v
			}
		}
	case "string":
		return stringCandidates[s.Name]
	}
	return ""
}

// No client's start-up parameter reaches another client (issue 17): for
// every parameter PostgreSQL accepts in a start-up packet, client A
// connects through a transaction-mode pooler with one server connection
// asking for a value other than the default; client B, connected meanwhile
// without it, must see the default, and A must keep its value. What the
// pooler cannot keep apart (parameters only a connection's start can set)
// it must refuse at start-up, and PostgreSQL must take the value directly.
func TestStartupParametersStayWithTheirClient(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	pgBin := lab.DefaultConfig().PGBin
	if missing := prerequisites(pgBin); len(missing) > 0 {
		t.Skipf("needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	s := &suite{t: t, pgBin: pgBin, work: workDir(t), out: t.TempDir()}
	if err := os.Mkdir(filepath.Join(s.out, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.pg = postgresUser(t)
	s.src = pgxModuleDir(t)
	s.startPostgres()
	s.buildRampart()
	port, _ := s.startRampart("leak", "transaction", 1)
	ctx := context.Background()

	direct := conninfo(s.port, "pgx_md5")
	settings := pgSettings(t, ctx, direct)
	var tried, leaked, refused, skipped int
	for _, set := range settings {
		v := candidate(set)
		if v == "" {
			skipped++
			continue
		}
		// What PostgreSQL itself makes of the value (its own spelling), and
		// the default: a value it refuses is no test of the pooler.
		want, err := show(ctx, direct, set.Name, map[string]string{set.Name: v})
		if err != nil {
			skipped++
			continue
		}
		def, err := show(ctx, direct, set.Name, nil)
		if err != nil || def == want {
			skipped++
			continue
		}
		tried++
		a, err := connect(ctx, conninfo(port, "pgx_md5"), map[string]string{set.Name: v})
		if err != nil {
			// Only a parameter the pooler cannot reset may be refused, and
			// the refusal must say why.
			refused++
			if set.Context != "backend" && set.Context != "superuser-backend" {
				t.Errorf("%s=%s (context %s) refused through the pooler, taken directly: %v", set.Name, v, set.Context, err)
			}
			continue
		}
		gotA, errA := showOn(ctx, a, set.Name)
		b, err := connect(ctx, conninfo(port, "pgx_md5"), nil)
		if err != nil {
			a.Close(ctx)
			t.Fatalf("a client without parameters: %v", err)
		}
		gotB, errB := showOn(ctx, b, set.Name)
		gotA2, errA2 := showOn(ctx, a, set.Name)
		a.Close(ctx)
		b.Close(ctx)
		switch {
		case errA != nil || errB != nil || errA2 != nil:
			t.Errorf("%s: SHOW failed: %v / %v / %v", set.Name, errA, errB, errA2)
		case gotB != def:
			leaked++
			t.Errorf("%s: client B sees %q (client A's %q), want the default %q", set.Name, gotB, v, def)
		case gotA != want || gotA2 != want:
			t.Errorf("%s: client A asked for %q and sees %q, then %q after B", set.Name, want, gotA, gotA2)
		}
	}
	t.Logf("%d start-up parameters of PostgreSQL: %d tried, %d leaked to the next client, %d refused at start-up (only a connection's start can set them), %d without a value to try",
		len(settings), tried, leaked, refused, skipped)
	if tried < 100 {
		t.Errorf("only %d parameters tried: the test lost its reach", tried)
	}
}

// pgSettings lists what a start-up packet may set (pg_settings' contexts
// user, superuser, backend and superuser-backend).
func pgSettings(t *testing.T, ctx context.Context, conninfo string) []setting {
	t.Helper()
	c, err := pgconn.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, `SELECT json_agg(json_build_object('Name', name, 'Type', vartype, 'Context', context, 'Reset', reset_val,
		'Min', coalesce(min_val, ''), 'Max', coalesce(max_val, ''), 'Enum', coalesce(enumvals, '{}')) ORDER BY name)
		FROM pg_settings WHERE context IN ('user', 'superuser', 'backend', 'superuser-backend')`, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("pg_settings: %v", res.Err)
	}
	var out []setting
	if err := json.Unmarshal(res.Rows[0][0], &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func connect(ctx context.Context, conninfo string, params map[string]string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgconn.ConnectConfig(cctx, cfg)
}

func show(ctx context.Context, conninfo, name string, params map[string]string) (string, error) {
	c, err := connect(ctx, conninfo, params)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	return showOn(ctx, c, name)
}

func showOn(ctx context.Context, c *pgconn.PgConn, name string) (string, error) {
	res := c.ExecParams(ctx, "SELECT pg_catalog.current_setting($1)", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) != 1 {
		return "", errors.New("no row")
	}
	return string(res.Rows[0][0]), nil
}

// pgxModuleDir is pgx's source in the module cache (its testsetup/ files
// set PostgreSQL up as pgx's tests expect; they are only read).
func pgxModuleDir(t *testing.T) string {
	t.Helper()
	var mod struct{ Dir, Error string }
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/jackc/pgx/v5").Output()
	if jerr := json.Unmarshal(out, &mod); jerr != nil || mod.Error != "" || mod.Dir == "" {
		t.Fatalf("go mod download -json github.com/jackc/pgx/v5: %v %v %s", err, jerr, mod.Error)
	}
	if _, err := os.Stat(mod.Dir + "/testsetup/postgresql_setup.sql"); err != nil {
		t.Fatal(err)
	}
	return mod.Dir
}

package proxy

import (
	"strings"
	"testing"
)

func TestParamSQL(t *testing.T) {
	defaults := map[string]string{"application_name": "", "DateStyle": "ISO, MDY", "TimeZone": "UTC", "client_encoding": "UTF8",
		"standard_conforming_strings": "on", "IntervalStyle": "postgres", "in_hot_standby": "off", "server_version": "15.8",
		"default_transaction_read_only": "off", "is_superuser": "off"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range defaults {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		want   map[string]string
		st     paramState
		expect string
	}{
		{"nothing asked, defaults", nil, paramState{current: with(), initial: with()}, ""},
		{"same as the server has", map[string]string{"application_name": "pgbench", "DateStyle": "ISO, MDY"},
			paramState{current: with("application_name", "pgbench"), initial: with()}, ""},
		{"another client's name is replaced", map[string]string{"application_name": "psql"},
			paramState{current: with("application_name", "pgbench"), initial: with()}, "SELECT pg_catalog.set_config('application_name', 'psql', false);"},
		{"a name not asked for goes back to the default", nil,
			paramState{current: with("application_name", "pgbench", "TimeZone", "Europe/Berlin"), initial: with()},
			`RESET "TimeZone";RESET "application_name";`},
		{"every reported parameter the client sets goes back to the default, not only a known list (issue 17: default_transaction_read_only leaked)", nil,
			paramState{current: with("default_transaction_read_only", "on"), initial: with()}, `RESET "default_transaction_read_only";`},
		{"server-controlled parameters are left alone", nil,
			paramState{current: with("in_hot_standby", "on", "server_version", "16.1", "is_superuser", "on"), initial: with()}, ""},
		{"unreported: set once, then known", map[string]string{"search_path": "app, public"},
			paramState{current: with(), initial: with(), custom: map[string]string{}}, "SELECT pg_catalog.set_config('search_path', 'app, public', false);"},
		{"unreported: already set", map[string]string{"search_path": "app"},
			paramState{current: with(), initial: with(), custom: map[string]string{"search_path": "app"}}, ""},
		{"both at once", map[string]string{"search_path": "app", "TimeZone": "UTC"},
			paramState{current: with("application_name", "x"), initial: with(), custom: map[string]string{}},
			`RESET "application_name";SELECT pg_catalog.set_config('search_path', 'app', false);`},
		{"unreported: another client's is reset", nil,
			paramState{current: with(), initial: with(), custom: map[string]string{"search_path": "app"}}, `RESET "search_path";`},
		{"unreported: unknown after a pinned client", map[string]string{"search_path": "app"},
			paramState{current: with(), initial: with(), custom: map[string]string{"search_path": unknownValue}}, "SELECT pg_catalog.set_config('search_path', 'app', false);"},
		{"a name a client set is quoted: nothing in it runs (issue 18)", nil,
			paramState{current: with(), initial: with(), custom: map[string]string{`x.y;DROP TABLE t;--"`: "1"}},
			`RESET "x.y;DROP TABLE t;--""";`},
		{"quotes and backslashes", map[string]string{"application_name": `it's a \ test`},
			paramState{current: with(), initial: with()}, `SELECT pg_catalog.set_config('application_name', E'it''s a \\ test', false);`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := paramSQL(tc.want, tc.st); got != tc.expect {
				t.Errorf("paramSQL = %q; want %q", got, tc.expect)
			}
		})
	}
}

func TestStartupParams(t *testing.T) {
	got, err := startupParams(map[string]string{"user": "app", "database": "lab", "datestyle": "ISO", "TimeZone": "UTC",
		"application_name": "psql", "extra_float_digits": "3", "options": " ", "_pq_.x": "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"DateStyle": "ISO", "TimeZone": "UTC", "application_name": "psql", "extra_float_digits": "3"}
	if len(got) != len(want) {
		t.Errorf("startupParams = %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("startupParams[%s] = %q; want %q", k, got[k], v)
		}
	}
	for _, bad := range []map[string]string{
		{"user": "app", "replication": "database"},
		{"user": "app", "options": "-c search_path=x"},
		{"user": "app", "bad name; DROP": "x"},
	} {
		if _, err := startupParams(bad); err == nil || strings.TrimSpace(err.Error()) == "" {
			t.Errorf("startupParams(%v) accepted it", bad)
		}
	}
}

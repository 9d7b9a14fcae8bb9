package route

import (
	"strings"
	"testing"
)

// catalog is a few pg_proc rows, as the pooler would load them.
type catalog map[string]Volatility

func (c catalog) Volatility(name string) Volatility {
	if v, ok := c[name]; ok {
		return v
	}
	return c[name[strings.LastIndexByte(name, '.')+1:]]
}

var testRules = Rules{
	Functions: catalog{
		"count": Immutable, "lower": Immutable, "now": Stable, "coalesce": Immutable,
		"my_report": Stable, "my_audit": Volatile, "mislabelled": Stable, "generate_series": Immutable,
	},
	WriteFunctions: map[string]bool{"mislabelled": true},
}

func TestClassify(t *testing.T) {
	tests := []struct {
		sql    string
		target Target
		pin    bool
		txn    Txn
		reason string // part of the reason, when the target is the primary or pinned
	}{
		// Plain reads.
		{"SELECT 1", AnyServer, false, TxnNone, ""},
		{"select count(*) from orders where lower(name) = 'x'", AnyServer, false, TxnNone, ""},
		{"SELECT now(), random(), pg_is_in_recovery(), inet_server_port()", AnyServer, false, TxnNone, ""},
		{"WITH r AS (SELECT * FROM t) SELECT * FROM r", AnyServer, false, TxnNone, ""},
		{"SELECT * FROM generate_series(1, 3)", AnyServer, false, TxnNone, ""},
		{"SHOW work_mem", AnyServer, false, TxnNone, ""},
		{"TABLE orders", AnyServer, false, TxnNone, ""},
		{"VALUES (1), (2)", AnyServer, false, TxnNone, ""},
		{"EXPLAIN SELECT * FROM t", AnyServer, false, TxnNone, ""},
		{"COPY (SELECT * FROM t) TO STDOUT", AnyServer, false, TxnNone, ""},
		{"COPY t TO STDOUT", AnyServer, false, TxnNone, ""},
		{"SELECT my_report(1)", AnyServer, false, TxnNone, ""},
		{"SELECT 1; SELECT 2", AnyServer, false, TxnNone, ""},
		{"", AnyServer, false, TxnNone, ""},
		{"SET LOCAL work_mem = '64MB'", AnyServer, false, TxnNone, ""},

		// Writes, obvious and hidden.
		{"INSERT INTO t VALUES (1)", Primary, false, TxnNone, "InsertStmt"},
		{"UPDATE t SET a = 1", Primary, false, TxnNone, "UpdateStmt"},
		{"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", Primary, false, TxnNone, "data-modifying WITH"},
		{"SELECT * FROM t FOR UPDATE", Primary, false, TxnNone, "FOR UPDATE"},
		{"SELECT * FROM t FOR SHARE SKIP LOCKED", Primary, false, TxnNone, "FOR UPDATE/SHARE"},
		{"SELECT * INTO new_t FROM t", Primary, false, TxnNone, "SELECT INTO"},
		{"SELECT nextval('s')", Primary, false, TxnNone, "nextval"},
		{"SELECT setval('s', 10)", Primary, false, TxnNone, "setval"},
		{"SELECT pg_catalog.nextval('s')", Primary, false, TxnNone, "nextval"},
		{"SELECT my_audit(1)", Primary, false, TxnNone, "volatile"},
		{"SELECT unheard_of(1)", Primary, false, TxnNone, "not in the catalogue"},
		{"SELECT mislabelled()", Primary, false, TxnNone, "listed as writing"},
		{"SELECT coalesce((SELECT nextval('s')), 0)", Primary, false, TxnNone, "nextval"},
		{"SELECT * FROM t WHERE id IN (SELECT my_audit(id) FROM u)", Primary, false, TxnNone, "volatile"},
		{"SELECT pg_advisory_xact_lock(1)", Primary, false, TxnNone, "pg_advisory_xact_lock"},
		{"EXPLAIN ANALYZE DELETE FROM t", Primary, false, TxnNone, "DeleteStmt"},
		{"COPY t FROM STDIN", Primary, false, TxnNone, "COPY FROM"},
		{"SELECT 1; INSERT INTO t VALUES (1)", Primary, false, TxnNone, "InsertStmt"},
		{"CREATE TABLE x (a int)", Primary, false, TxnNone, "CreateStmt"},
		{"LOCK TABLE t", Primary, false, TxnNone, "LockStmt"},
		{"CALL p()", Primary, false, TxnNone, "CallStmt"},
		{"DO $$ BEGIN END $$", Primary, false, TxnNone, "DoStmt"},
		{"VACUUM t", Primary, false, TxnNone, "VacuumStmt"},
		{"NOTIFY ch", Primary, false, TxnNone, "NotifyStmt"},
		{"SELEC 1", Primary, false, TxnNone, "not parsed"},

		// Session state: the client keeps its server.
		{"RESET ALL", Primary, true, TxnNone, "SET"},
		{"SET ROLE admin", Primary, true, TxnNone, "SET role"},
		{"SET SESSION AUTHORIZATION admin", Primary, true, TxnNone, "SET session_authorization"},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", Primary, true, TxnNone, "SET"},
		{"LISTEN ch", Primary, true, TxnNone, "LISTEN"},
		{"PREPARE q AS SELECT 1", AnyServer, true, TxnNone, "PREPARE"},
		{"EXECUTE q", Primary, true, TxnNone, "prepared"},
		{"SELECT pg_advisory_lock(1)", Primary, true, TxnNone, "pg_advisory_lock"},
		{"SELECT set_config('a.b', 'c', false)", Primary, true, TxnNone, "set_config"},
		{"CREATE TEMP TABLE tt (a int)", Primary, true, TxnNone, "temporary"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", AnyServer, true, TxnNone, "WITH HOLD"},

		// Transaction control.
		{"BEGIN", Primary, false, TxnBegin, "transaction block"},
		{"START TRANSACTION ISOLATION LEVEL REPEATABLE READ", Primary, false, TxnBegin, "transaction block"},
		{"BEGIN READ ONLY", AnyServer, false, TxnBeginReadOnly, ""},
		{"START TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE", AnyServer, false, TxnBeginReadOnly, ""},
		{"BEGIN READ WRITE", Primary, false, TxnBegin, "transaction block"},
		{"COMMIT", AnyServer, false, TxnEnd, ""},
		{"ROLLBACK", AnyServer, false, TxnEnd, ""},
		{"END", AnyServer, false, TxnEnd, ""},
		{"SAVEPOINT a", AnyServer, false, TxnOther, ""},
		{"SET TRANSACTION READ ONLY", AnyServer, false, TxnOther, ""},
		{"SET TRANSACTION READ WRITE", Primary, false, TxnOther, "READ WRITE"},
		{"PREPARE TRANSACTION 'x'", Primary, false, TxnEnd, "two-phase"},
		{"BEGIN; SELECT 1; COMMIT", Primary, false, TxnEnd, "transaction"},
	}
	for _, tt := range tests {
		v := Classify(tt.sql, testRules)
		if v.Target != tt.target || v.Pin != tt.pin || v.Txn != tt.txn || !strings.Contains(v.Reason, tt.reason) {
			t.Errorf("Classify(%q) = %+v; want target %v, pin %v, txn %v, reason containing %q", tt.sql, v, tt.target, tt.pin, tt.txn, tt.reason)
		}
	}
}

// SET and RESET of a parameter for the session neither pin nor need the
// primary: the proxy carries the value (Verdict.Sets).
func TestSessionParameters(t *testing.T) {
	for sql, want := range map[string]string{
		"SET search_path = app, public":        "search_path",
		"SET application_name = 'x'":           "application_name",
		"SET TIME ZONE 'UTC'":                  "timezone",
		"SET extra_float_digits TO DEFAULT":    "extra_float_digits",
		"RESET DateStyle":                      "datestyle",
		"SET a.b = 1; SELECT 2":                "a.b",
		"set session statement_timeout = '5s'": "statement_timeout",
	} {
		v := Classify(sql, testRules)
		if v.Pin || v.Target == Primary || len(v.Sets) != 1 || v.Sets[0] != want {
			t.Errorf("Classify(%q) = %+v; want no pin, any server, Sets [%s]", sql, v, want)
		}
	}
	if v := Merge(Classify("SET a.b = 1", testRules), Classify("SET a.c = 2", testRules)); len(v.Sets) != 2 {
		t.Errorf("Merge keeps Sets %v; want both", v.Sets)
	}
}

// Without a catalogue nothing with a function call is provably read-only.
func TestDeallocates(t *testing.T) {
	for sql, want := range map[string]string{"DISCARD ALL": AllStatements, "DEALLOCATE ALL": AllStatements, "DEALLOCATE s1": "s1",
		"DEALLOCATE PREPARE \"S 2\"": "S 2", "SELECT 1; DISCARD PLANS": "", "SELECT 'DISCARD'": "", "EXECUTE s1": ""} {
		if got := strings.Join(Classify(sql, testRules).Deallocates, ","); got != want {
			t.Errorf("Classify(%q).Deallocates = %q, want %q", sql, got, want)
		}
	}
	if v := Merge(Verdict{Deallocates: []string{"a"}}, Verdict{Deallocates: []string{"b"}}); len(v.Deallocates) != 2 {
		t.Errorf("Merge keeps Deallocates %v, want both", v.Deallocates)
	}
}

func TestClassifyWithoutCatalogue(t *testing.T) {
	if v := Classify("SELECT lower('A')", Rules{}); v.Target != Primary {
		t.Errorf("got %+v, want the primary", v)
	}
	if v := Classify("SELECT a FROM t", Rules{}); v.Target != AnyServer {
		t.Errorf("got %+v, want any server", v)
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SELECT 1", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "BEGIN READ ONLY", "SELECT nextval('s')", "SET a = 1; SELECT 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		v := Classify(sql, testRules)
		if v.Target == AnyServer && v.Reason != "" && !v.Pin {
			t.Errorf("Classify(%q) = %+v: a reason without primary or pin", sql, v)
		}
		// Whatever precedes it, a write keeps the string on the primary: an
		// open comment, quote or dollar quote makes it unparsable, which
		// goes to the primary too.
		if w := Classify(sql+"\n;INSERT INTO t VALUES (1)", testRules); w.Target != Primary {
			t.Errorf("Classify(%q + INSERT) = %+v, want the primary", sql, w)
		}
	})
}

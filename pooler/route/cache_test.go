package route

import (
	"strings"
	"testing"
)

func TestCache(t *testing.T) {
	c := NewCache(testRules, 2)
	for i := 0; i < 3; i++ {
		if v := c.Classify("SELECT nextval('s')"); v.Target != Primary {
			t.Fatalf("cached verdict %+v, want the primary", v)
		}
	}
	if h, m := c.Stats(); h != 2 || m != 1 {
		t.Errorf("hits %d, misses %d; want 2, 1", h, m)
	}
	c.Classify("SELECT 1")
	c.Classify("SELECT 2") // full: starts afresh
	if v := c.Classify("SELECT 1"); v.Target != AnyServer {
		t.Errorf("after eviction: %+v", v)
	}
	if len(c.seen) > 2 {
		t.Errorf("cache holds %d verdicts, more than its size 2", len(c.seen))
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;": "SELECT abalance FROM pgbench_accounts WHERE aid = ?;",
		"SELECT * FROM t1 WHERE a = 'it''s' AND b = 1.5":           "SELECT * FROM t1 WHERE a = '?' AND b = ?",
		"SELECT x2, 'a', -3":    "SELECT x2, '?', -?",
		"SELECT 'unterminated":  "SELECT 'unterminated",
		"SELECT $1":             "SELECT $1",
		"SELECT E'\\n'":         "SELECT E'\\n'",
		`SELECT "col 1" FROM t`: `SELECT "col 1" FROM t`,
		"SELECT 1 -- two":       "SELECT 1 -- two",
		"SELECT 1 /* two */":    "SELECT 1 /* two */",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// The cache's premise: a literal's value never changes a verdict. Any
// statement, with its numbers and strings replaced by others, classifies
// the same.
func FuzzNormalizeKeepsVerdict(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT nextval('s')", "SET a = 'b'", "SELECT * FROM t WHERE a = 'x' FOR UPDATE",
		"BEGIN READ ONLY", "INSERT INTO t VALUES (1, 'a')", "SELECT set_config('a', 'b', false)", "SELECT 1.5e3, 'it''s'"} {
		f.Add(s, "7", "zz")
	}
	f.Fuzz(func(t *testing.T, sql, num, str string) {
		if normalize(sql) == sql || strings.ContainsAny(num+str, "'\x00") {
			return
		}
		other := strings.NewReplacer("?", num, "'?'", "'"+str+"'").Replace(normalize(sql))
		if normalize(other) != normalize(sql) {
			return // the substitutes changed the token structure: not the same key
		}
		a, b := Classify(sql, testRules), Classify(other, testRules)
		if strings.HasPrefix(a.Reason, "not parsed") || strings.HasPrefix(b.Reason, "not parsed") {
			return // one is not SQL: the server rejects it wherever it runs
		}
		if a.Target != b.Target || a.Pin != b.Pin || a.Txn != b.Txn {
			t.Errorf("%q → %+v but %q → %+v: same cache key, different verdicts", sql, a, other, b)
		}
	})
}

// A query text over 8 kB is classified but not kept (issue 18: the cache
// bounded its entries, not their size).
func TestCacheKeepsNoHugeText(t *testing.T) {
	c := NewCache(testRules, 10)
	huge := "SELECT '" + strings.Repeat("x", 1<<20) + "' || $1::text FROM t WHERE a = $2"
	for range 3 {
		if v := c.Classify(huge); v.Target != AnyServer {
			t.Fatalf("a plain read classified %+v", v)
		}
	}
	if _, misses := c.Stats(); misses != 3 || len(c.seen) != 0 {
		t.Errorf("misses %d, %d entries: a 1 MB text was kept", misses, len(c.seen))
	}
}

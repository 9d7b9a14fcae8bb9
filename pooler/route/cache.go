package route

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Cache remembers verdicts by query text with its literals blanked
// (normalize), so that a statement the application sends again, with
// other values, is parsed once. It holds at most its size; when
// full it starts afresh (applications send a bounded set of statements,
// and those come back at once).
type Cache struct {
	rules Rules
	size  int
	mu    sync.Mutex
	seen  map[string]Verdict
	// Hits and Misses count lookups since the cache was made.
	hits, misses uint64
}

// maxCachedQuery bounds the query texts the cache keeps: with at most
// size entries of at most this, a client cannot make it hold more than
// size × 8 kB.
const maxCachedQuery = 8 << 10

// NewCache returns a cache of at most size verdicts under rules.
func NewCache(rules Rules, size int) *Cache {
	return &Cache{rules: rules, size: max(size, 1), seen: map[string]Verdict{}}
}

// Classify returns the verdict for sql, parsing it on first sight.
func (c *Cache) Classify(sql string) Verdict {
	key := normalize(sql)
	c.mu.Lock()
	v, ok := c.seen[key]
	if ok {
		c.hits++
	} else {
		c.misses++
	}
	c.mu.Unlock()
	if ok {
		return v
	}
	v = Classify(sql, c.rules)
	if len(key) > maxCachedQuery {
		return v // a huge text is rarely sent twice: it must not fill memory
	}
	c.mu.Lock()
	if len(c.seen) >= c.size {
		c.seen = map[string]Verdict{}
	}
	c.seen[key] = v
	c.mu.Unlock()
	return v
}

// normalize replaces the numbers and simple string literals of sql by ?,
// so that statements differing only in values share a cache entry: no
// rule of Classify looks at a literal's value. Text it cannot lex with
// certainty (dollar quotes, backslashes, comments, quoted identifiers, an
// unterminated string, invalid UTF-8) is its own key. Two texts with one
// key may still differ in being valid SQL ("1.2.3"): then the server
// rejects the bad one wherever it runs.
func normalize(sql string) string {
	if strings.ContainsAny(sql, "$\\\"") || strings.Contains(sql, "--") || strings.Contains(sql, "/*") || !utf8.ValidString(sql) || strings.IndexByte(sql, 0) >= 0 {
		return sql
	}
	var b strings.Builder
	b.Grow(len(sql))
	for i := 0; i < len(sql); {
		ch := sql[i]
		switch {
		case ch == '\'':
			j := i + 1
			for {
				k := strings.IndexByte(sql[j:], '\'')
				if k < 0 {
					return sql // unterminated: the server will say so
				}
				j += k + 1
				if j < len(sql) && sql[j] == '\'' {
					j++ // '' inside the literal
					continue
				}
				break
			}
			b.WriteString("'?'")
			i = j
		case ch >= '0' && ch <= '9' && (i == 0 || !identChar(sql[i-1])):
			j := i
			for j < len(sql) && (sql[j] >= '0' && sql[j] <= '9' || sql[j] == '.') {
				j++
			}
			b.WriteByte('?')
			i = j
		default:
			b.WriteByte(ch)
			i++
		}
	}
	return b.String()
}

func identChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// Stats returns the cache's hits and misses.
func (c *Cache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Reset forgets every verdict: what the catalogue says of functions has
// changed.
func (c *Cache) Reset() {
	c.mu.Lock()
	c.seen = map[string]Verdict{}
	c.mu.Unlock()
}

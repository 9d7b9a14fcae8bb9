package route

import "sync"

// Cache remembers verdicts by query text, so that a statement the
// application sends again is parsed once. It holds at most its size; when
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

// NewCache returns a cache of at most size verdicts under rules.
func NewCache(rules Rules, size int) *Cache {
	return &Cache{rules: rules, size: max(size, 1), seen: map[string]Verdict{}}
}

// Classify returns the verdict for sql, parsing it on first sight.
func (c *Cache) Classify(sql string) Verdict {
	c.mu.Lock()
	v, ok := c.seen[sql]
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
	c.mu.Lock()
	if len(c.seen) >= c.size {
		c.seen = map[string]Verdict{}
	}
	c.seen[sql] = v
	c.mu.Unlock()
	return v
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

package route

import "testing"

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

package pool

import (
	"context"
	"sync"
	"time"
)

// Set holds pools by key, each of the same size, made when first asked
// for.
type Set[K comparable, C any] struct {
	size  int
	mu    sync.Mutex
	pools map[K]*Pool[C]
}

// NewSet returns an empty set of pools of size slots each.
func NewSet[K comparable, C any](size int) *Set[K, C] {
	return &Set[K, C]{size: size, pools: map[K]*Pool[C]{}}
}

// Pool returns k's pool, made if there is none.
func (s *Set[K, C]) Pool(k K) *Pool[C] {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[k]
	if p == nil {
		p = New[C](s.size)
		s.pools[k] = p
	}
	return p
}

// Get is k's pool's Get. A pool whose connection could not be made and
// that holds nothing is forgotten: a client trying database names one
// after another must not grow the set. The pool returned is the one the
// connection goes back to (Put, Discard), forgotten or not.
func (s *Set[K, C]) Get(ctx context.Context, k K, wait time.Duration, now time.Time, f Funcs[C]) (C, *Pool[C], error) {
	p := s.Pool(k)
	c, err := p.Get(ctx, wait, now, f)
	if err != nil {
		s.mu.Lock()
		if s.pools[k] == p && p.unused() {
			delete(s.pools, k)
		}
		s.mu.Unlock()
	}
	return c, p, err
}

// Each calls fn for every pool, on a snapshot taken first (fn may take
// its time).
func (s *Set[K, C]) Each(fn func(K, *Pool[C])) {
	s.mu.Lock()
	keys := make([]K, 0, len(s.pools))
	pools := make([]*Pool[C], 0, len(s.pools))
	for k, p := range s.pools {
		keys = append(keys, k)
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for i, k := range keys {
		fn(k, pools[i])
	}
}

// Len is how many pools the set holds.
func (s *Set[K, C]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pools)
}

package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/test/chaos/history"
	"github.com/rampart-ha/rampart/test/lab"
)

// markEvery is how often the campaign asks the leading pooler how it sees
// the nodes.
const markEvery = 500 * time.Millisecond

// poolerMaxLag is the lab poolers' max_lag_bytes (the pooler's default):
// past it a standby takes no reads.
const poolerMaxLag = 16 << 20

// marker samples the leading pooler's /health while the clients run.
type marker struct {
	mu     sync.Mutex
	marks  []history.PoolerMark
	cancel context.CancelFunc
	done   chan struct{}
}

// sampleMarks starts sampling l's leading pooler every markEvery.
func sampleMarks(ctx context.Context, l *lab.Lab, started time.Time, now func() time.Time) *marker {
	ctx, cancel := context.WithCancel(ctx)
	m := &marker{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(markEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pv, err := l.PoolerView(ctx)
			if err != nil || !pv.Leader {
				continue // no leader answers: no sample, no verdict
			}
			ms := Marks(pv, now().Sub(started))
			m.mu.Lock()
			m.marks = append(m.marks, ms...)
			m.mu.Unlock()
		}
	}()
	return m
}

// stop ends the sampling and returns the marks (again on a second call).
func (m *marker) stop() []history.PoolerMark {
	if m == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks
}

// Marks are a pooler's view of its nodes at offset at, as the checker
// reads them: usable when up, not drained and within the lag limit.
func Marks(pv ops.PoolerView, at time.Duration) []history.PoolerMark {
	var out []history.PoolerMark
	for _, n := range pv.Nodes {
		m := history.PoolerMark{At: at, Pooler: pv.Member, Node: n.Name, Usable: true}
		switch {
		case !n.Up:
			m.Usable, m.Why = false, "down"
		case n.Drained:
			m.Usable, m.Why = false, "drained"
		case n.LagBytes > poolerMaxLag:
			m.Usable, m.Why = false, fmt.Sprintf("lagging %d bytes", n.LagBytes)
		}
		out = append(out, m)
	}
	return out
}

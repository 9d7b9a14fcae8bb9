package proxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/test/lab"
)

// LISTEN through a transaction-mode pooler with a pool of 4 server
// connections: 100 clients listen, none keeps a server connection, and
// each receives every notification two senders send, in each sender's
// order; after a failover (n1 stopped, n2 promoted) they receive new ones.
// Last before shutdown: it leaves n2 the primary.
func testListenNotify(t *testing.T, pl *proxyLab) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if pl.cfg.Session || pl.cfg.PoolSize != 4 {
		t.Fatalf("needs transaction mode with a pool of 4 (session %v, pool %d)", pl.cfg.Session, pl.cfg.PoolSize)
	}
	const listeners, senders, each = 100, 2, 50
	clients := make([]*pgx.Conn, listeners)
	for i := range clients {
		clients[i] = pl.connect(t, ctx, "")
		if _, err := clients[i].Exec(ctx, "LISTEN events", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("client %d: LISTEN: %v", i, err)
		}
	}
	// Nobody holds a server connection: the pool of 4 serves the senders.
	st := pl.p.Stats()
	if st.ServerConns[0] > 4 {
		t.Errorf("%d server connections to n1 with %d clients listening, want at most the pool's 4 (and the listening one is not pooled)", st.ServerConns[0], listeners)
	}
	// Each client waits for everything the senders send.
	type received struct {
		payloads []string
		err      error
	}
	got := make([]received, listeners)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(got[i].payloads) < senders*each {
				n, err := c.WaitForNotification(ctx)
				if err != nil {
					got[i].err = err
					return
				}
				if n.Channel == "events" {
					got[i].payloads = append(got[i].payloads, n.Payload)
				}
			}
		}()
	}
	var swg sync.WaitGroup
	for k := range senders {
		sender := pl.connect(t, ctx, "")
		swg.Add(1)
		go func() {
			defer swg.Done()
			for seq := range each {
				if _, err := sender.Exec(ctx, "SELECT pg_notify('events', $1)", fmt.Sprintf("s%d-%d", k, seq)); err != nil {
					t.Errorf("sender %d: %v", k, err)
					return
				}
			}
		}()
	}
	swg.Wait()
	wg.Wait()
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("client %d: %v after %d notifications", i, r.err, len(r.payloads))
		}
		next := make([]int, senders)
		for _, p := range r.payloads {
			var k, seq int
			if _, err := fmt.Sscanf(p, "s%d-%d", &k, &seq); err != nil || k >= senders || seq != next[k] {
				t.Fatalf("client %d: got %q after %v: out of order or unknown", i, p, next)
			}
			next[k]++
		}
	}
	t.Logf("%d clients listening through a pool of 4: each received all %d notifications, in each sender's order", listeners, senders*each)

	// UNLISTEN: a client that stops listening gets nothing more.
	if _, err := clients[0].Exec(ctx, "UNLISTEN events", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}

	// A failover: n1 stops, n2 is promoted; the pooler listens on n2.
	if err := pl.l.StopPostgres(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.l.Psql(ctx, "n2", "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	sender := pl.connect(t, ctx, "")
	after := make([]chan string, listeners)
	for i, c := range clients[1:] {
		ch := make(chan string, 1)
		after[i+1] = ch
		go func() {
			for {
				n, err := c.WaitForNotification(ctx)
				if err != nil {
					ch <- "error: " + err.Error()
					return
				}
				if strings.HasPrefix(n.Payload, "after-") {
					ch <- n.Payload
					return
				}
			}
		}()
	}
	// Notifications sent before the pooler listens on n2 are missed (as by
	// any client that reconnects): send until every client has one.
	seq := 0
	pending := map[int]bool{}
	for i := 1; i < listeners; i++ {
		pending[i] = true
	}
	err := lab.WaitFor(ctx, "every listening client receives a notification sent after the failover", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		seq++
		// Through the pooler: it waits for the new primary (primary_wait).
		if _, err := sender.Exec(ctx, "SELECT pg_notify('events', $1)", "after-"+strconv.Itoa(seq)); err != nil {
			return false, "send: " + err.Error(), nil
		}
		for i := range pending {
			select {
			case p := <-after[i]:
				if strings.HasPrefix(p, "error") {
					return false, "", fmt.Errorf("client %d: %s", i, p)
				}
				delete(pending, i)
			default:
			}
		}
		return len(pending) == 0, fmt.Sprintf("%d clients still waiting", len(pending)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the failover all %d clients still listening received new notifications (%d sent until they had)", listeners-1, seq)
	// The one that ran UNLISTEN got none of them: the others have theirs,
	// so its would have come with them.
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if n, err := clients[0].WaitForNotification(wctx); err == nil {
		t.Errorf("a client that ran UNLISTEN received %q", n.Payload)
	}
}

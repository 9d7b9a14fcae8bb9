package proxy

import (
	"net"
	"testing"
	"time"
)

func TestCloseStale(t *testing.T) {
	now := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	p := New(Config{Nodes: []Node{{Name: "n1", Addr: "192.0.2.1:5432"}}, ServerIdleTimeout: time.Minute, Now: func() time.Time { return now }})
	k := poolKey{node: 0, database: "lab", user: "app"}
	pl := p.poolFor(k)
	var peers []net.Conn
	for _, idle := range []time.Duration{2 * time.Minute, 30 * time.Second} {
		a, b := net.Pipe()
		peers = append(peers, b)
		pl.idle = append(pl.idle, &serverConn{key: k, conn: a, idleAt: now.Add(-idle)})
	}
	p.closeStale()
	if len(pl.idle) != 1 || pl.idle[0].idleAt != now.Add(-30*time.Second) {
		t.Fatalf("idle after closeStale: %d connections", len(pl.idle))
	}
	// The stale one is closed: its peer reads EOF at once.
	peers[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := peers[0].Read(make([]byte, 1)); err == nil {
		t.Error("the connection idle for 2 minutes is still open")
	}
}

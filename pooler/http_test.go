package pooler

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/pooler/proxy"
)

// Before any health check nothing is known: /health says 503, /metrics
// shows every node down.
func TestHTTPHandler(t *testing.T) {
	p := proxy.New(proxy.Config{Nodes: []proxy.Node{{Name: "db1", Addr: "192.0.2.1:5432", Weight: 1}}})
	srv := httptest.NewServer(HTTPHandler(p, nil))
	defer srv.Close()
	get := func(path string) (int, string) {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/health"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"name":"db1"`) {
		t.Errorf("/health with no primary: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{`rampart_pooler_node_up{node="db1",role="unknown"} 0`, `rampart_pooler_node_attached{node="db1"} 1`, "rampart_pooler_clients 0"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, no %q in\n%s", code, want, body)
		}
	}
}

// A client that sends half a request and then nothing is cut off after the
// header deadline (issue 18: the HTTP server had no timeouts), while the
// server goes on answering others.
func TestHTTPServerDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }), 200*time.Millisecond)
	go hs.Serve(ln)
	defer hs.Close()
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		t.Fatalf("another client while one stalls: %v", err)
	}
	resp.Body.Close()
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(slow)
	if err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("the stalled client: read %q, %v after %s; want the server to close it after 200ms", b, err, time.Since(start))
	}
}

package pooler

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

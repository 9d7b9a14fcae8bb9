package pooler

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/route"
	"github.com/rampart-ha/rampart/pooler/watchdog"
	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

// HTTPHandler serves /metrics (Prometheus) and /health: 200 while a
// primary is known and the pooler is not shutting down, 503 otherwise,
// with the nodes as JSON (for load balancers and the pair's checks).
func HTTPHandler(p *proxy.Proxy, dog *watchdog.Watchdog) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{p})
	if dog != nil {
		reg.MustRegister(pairCollector{dog})
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		st := p.Stats()
		type node struct {
			Name     string `json:"name"`
			Role     string `json:"role"`
			Up       bool   `json:"up"`
			LagBytes int64  `json:"lag_bytes"`
			Drained  bool   `json:"drained"`
		}
		// The pair, when this pooler is a member: rampart status reads it.
		type pair struct {
			Self     string `json:"self"`
			Leader   bool   `json:"leader"`    // leads with a lease: holds the address
			LeaderID string `json:"leader_id"` // who leads, as this member knows ("" none)
			Term     uint64 `json:"term"`
			Quorum   bool   `json:"quorum"`
		}
		body := struct {
			Primary string `json:"primary"`
			Nodes   []node `json:"nodes"`
			Pair    *pair  `json:"pair,omitempty"`
		}{}
		if dog != nil {
			st := dog.Status()
			body.Pair = &pair{Self: st.Self, Leader: st.HoldVIP, LeaderID: st.Leader, Term: st.Term, Quorum: st.Quorum}
		}
		for _, b := range st.Backends {
			body.Nodes = append(body.Nodes, node{b.Name, b.Role.String(), b.Up, b.LagBytes, b.Drained})
			if b.Up && b.Role == route.RolePrimary {
				body.Primary = b.Name
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if body.Primary == "" || st.Closing {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	return mux
}

var (
	nodeUp      = prometheus.NewDesc("rampart_pooler_node_up", "1 when the node answered its last health check.", []string{"node", "role"}, nil)
	nodeLag     = prometheus.NewDesc("rampart_pooler_node_lag_bytes", "How far the standby's replay trails the primary.", []string{"node"}, nil)
	nodeAttach  = prometheus.NewDesc("rampart_pooler_node_attached", "1 unless the node is drained or detached.", []string{"node"}, nil)
	nodeBusy    = prometheus.NewDesc("rampart_pooler_node_transactions", "Transactions running on the node through this pooler.", []string{"node"}, nil)
	nodeConns   = prometheus.NewDesc("rampart_pooler_server_connections", "Open server connections to the node.", []string{"node"}, nil)
	clients     = prometheus.NewDesc("rampart_pooler_clients", "Connected clients.", nil, nil)
	cacheLookup = prometheus.NewDesc("rampart_pooler_route_cache_lookups_total", "Statement classifications, by cache result.", []string{"result"}, nil)
)

type collector struct{ p *proxy.Proxy }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeUp, nodeLag, nodeAttach, nodeBusy, nodeConns, clients, cacheLookup} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	for i, b := range st.Backends {
		ch <- prometheus.MustNewConstMetric(nodeUp, prometheus.GaugeValue, b2f(b.Up), b.Name, b.Role.String())
		ch <- prometheus.MustNewConstMetric(nodeLag, prometheus.GaugeValue, float64(b.LagBytes), b.Name)
		ch <- prometheus.MustNewConstMetric(nodeAttach, prometheus.GaugeValue, b2f(!b.Drained && !st.Detached[i]), b.Name)
		ch <- prometheus.MustNewConstMetric(nodeBusy, prometheus.GaugeValue, float64(b.Outstanding), b.Name)
		ch <- prometheus.MustNewConstMetric(nodeConns, prometheus.GaugeValue, float64(st.ServerConns[i]), b.Name)
	}
	ch <- prometheus.MustNewConstMetric(clients, prometheus.GaugeValue, float64(st.Clients))
	ch <- prometheus.MustNewConstMetric(cacheLookup, prometheus.CounterValue, float64(st.CacheHits), "hit")
	ch <- prometheus.MustNewConstMetric(cacheLookup, prometheus.CounterValue, float64(st.CacheMisses), "miss")
}

var (
	pairLeader  = prometheus.NewDesc("rampart_pair_leader", "1 while this pooler leads the pair (with a lease).", nil, nil)
	pairHolding = prometheus.NewDesc("rampart_pair_vip_held", "1 while the pair's address is held (or being taken) here.", nil, nil)
	pairTerm    = prometheus.NewDesc("rampart_pair_term", "The election's term as this member knows it.", nil, nil)
	pairQuorum  = prometheus.NewDesc("rampart_pair_quorum", "1 when a majority of the members was heard within a lease.", nil, nil)
	pairHeard   = prometheus.NewDesc("rampart_pair_last_heard_seconds", "Seconds since the member was last heard from.", []string{"member"}, nil)
	pairDropped = prometheus.NewDesc("rampart_pair_packets_dropped_total", "Heartbeat packets refused, by reason.", []string{"reason"}, nil)
)

type pairCollector struct{ w *watchdog.Watchdog }

func (pairCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pairLeader, pairHolding, pairTerm, pairQuorum, pairHeard, pairDropped} {
		ch <- d
	}
}

func (c pairCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Status()
	ch <- prometheus.MustNewConstMetric(pairLeader, prometheus.GaugeValue, b2f(st.Role == election.Leader && st.HoldVIP))
	ch <- prometheus.MustNewConstMetric(pairHolding, prometheus.GaugeValue, b2f(st.Holding))
	ch <- prometheus.MustNewConstMetric(pairTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(pairQuorum, prometheus.GaugeValue, b2f(st.Quorum))
	for id, at := range st.Heard {
		ch <- prometheus.MustNewConstMetric(pairHeard, prometheus.GaugeValue, time.Since(at).Seconds(), id)
	}
	for _, reason := range []string{"forged", "replayed", "stale", "malformed"} {
		ch <- prometheus.MustNewConstMetric(pairDropped, prometheus.CounterValue, float64(st.Dropped[reason]), reason)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

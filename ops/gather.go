package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pgsql"
)

// Gather reads what `rampart status` shows: Pacemaker's view (crm_mon,
// the resources' parameters, the agent's node attributes, which hold each
// node's state and last reported position) and each pooler's /health. A
// source that fails is left out of the view; Assemble says so.
func Gather(ctx context.Context, run pacemaker.Runner, client *http.Client, poolers []string, resource string, now func() time.Time) Observed {
	o := Observed{Resource: resource, Attrs: map[string]map[string]string{}}
	var errs []string
	if c, err := pacemaker.CrmMon(ctx, run); err != nil {
		o.PacemakerError = err.Error()
	} else {
		o.Cluster = &c
		if o.Resource == "" {
			for _, r := range c.Resources {
				if r.Agent == "ocf:rampart:pgsql" {
					o.Resource = r.ID
					break
				}
			}
		}
		if o.Params, err = pacemaker.ResourceParams(ctx, run); err != nil {
			errs = append(errs, err.Error())
		}
		if o.Options, err = pacemaker.ClusterOptions(ctx, run); err != nil {
			errs = append(errs, err.Error())
		}
		for _, name := range []string{pgsql.StateAttr(o.Resource), pgsql.PositionAttr(o.Resource), pgsql.SeenAttr(o.Resource)} {
			values, err := pacemaker.QueryTransient(ctx, run, name)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			o.Attrs[name] = values
		}
	}
	for _, url := range poolers {
		o.Poolers = append(o.Poolers, PoolerHealth(ctx, client, url))
	}
	o.Now, o.Errors = now(), errs
	return o
}

// PoolerHealth asks one pooler's /health at base (http://HOST:PORT); a 503
// still has a body (no primary). Errors are in the view.
func PoolerHealth(ctx context.Context, client *http.Client, base string) PoolerView {
	pv := PoolerView{URL: base}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	resp, err := client.Do(req)
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	var h struct {
		Primary string       `json:"primary"`
		Nodes   []PoolerNode `json:"nodes"`
		Pair    *struct {
			Self     string `json:"self"`
			Leader   bool   `json:"leader"`
			LeaderID string `json:"leader_id"`
			Term     uint64 `json:"term"`
		} `json:"pair"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		pv.Error = fmt.Sprintf("/health: HTTP %d, not the pooler's JSON: %v", resp.StatusCode, err)
		return pv
	}
	pv.Primary, pv.Nodes = h.Primary, h.Nodes
	if h.Pair != nil {
		pv.Member, pv.Leader, pv.LeaderID, pv.Term = h.Pair.Self, h.Pair.Leader, h.Pair.LeaderID, h.Pair.Term
	}
	return pv
}

package pgsql

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// actions holds the agent's seams: Pacemaker's tools and the clock.
type actions struct {
	run pacemaker.Runner
	now func() time.Time
	// systemdDir is where enabled services are linked (/etc/systemd/system).
	systemdDir string
}

// call is one action's context: who we are and what we were told.
type call struct {
	*actions
	r    *ocf.Request
	cfg  config
	rsc  string
	node string
	log  *slog.Logger
}

func (a *actions) begin(ctx context.Context, r *ocf.Request) (*call, error) {
	c := &call{actions: a, r: r, cfg: newConfig(r.Values), rsc: r.Env.Resource, node: r.Env.OnNode, log: r.Log}
	if c.rsc == "" {
		return nil, ocf.Errorf(ocf.ErrConfigured, "OCF_RESOURCE_INSTANCE is not set: run the agent through Pacemaker (or ocf-tester)")
	}
	if c.node == "" {
		// Never uname -n: the node's name in the cluster is Pacemaker's.
		n, err := pacemaker.LocalNode(ctx, a.run)
		if err != nil {
			return nil, err
		}
		c.node = n
	}
	c.log = c.log.With("node", c.node)
	return c, nil
}

// StateAttr is the node attribute in which the primary's agent says what
// each node is (primary, sync, async, …; crm_mon -A shows it).
func StateAttr(rsc string) string { return "rampart-" + rsc + "-state" }

// StateStopped is StateAttr's value on a node whose instance is stopped.
const StateStopped = "stopped"

// PositionAttr is the private node attribute in which each node's agent
// reports its timeline and WAL position (see Position).
func PositionAttr(rsc string) string { return "rampart-" + rsc + "-position" }
func memoAttr(rsc string) string     { return "rampart-" + rsc + "-memo" }

// SeenAttr is the private node attribute in which each node's monitor
// reports its timeline and WAL position every time it runs (a Position),
// for `rampart status`.
func SeenAttr(rsc string) string { return "rampart-" + rsc + "-seen" }

func (a *actions) validate(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	cfg := newConfig(r.Values)
	for _, tool := range []string{"pg_ctl", "pg_controldata", "postgres"} {
		if _, err := os.Stat(cfg.inst.BinDir + "/" + tool); err != nil {
			return 0, ocf.Errorf(ocf.ErrInstalled, "parameter bindir=%q: %s not found: install PostgreSQL or set bindir", cfg.inst.BinDir, tool)
		}
	}
	if r.Env.CheckLevel >= 10 {
		if _, err := os.Stat(cfg.inst.DataDir + "/PG_VERSION"); err != nil {
			return 0, ocf.Errorf(ocf.ErrConfigured, "parameter pgdata=%q: no PostgreSQL data directory there", cfg.inst.DataDir)
		}
	}
	if units := EnabledPostgresUnits(a.systemdDir); len(units) > 0 {
		r.Log.Warn("the distribution's PostgreSQL service is enabled: at boot it starts PostgreSQL before Pacemaker, as a primary if it was one; "+
			"disable it (systemctl disable "+strings.Join(units, " ")+"): Pacemaker starts PostgreSQL here", "units", units)
	}
	return ocf.Success, nil
}

// EnabledPostgresUnits lists the PostgreSQL services systemd starts at
// boot (links in dir/*.wants: /etc/systemd/system), "postgresql.service"
// and "postgresql@15-main.service" alike.
func EnabledPostgresUnits(dir string) []string {
	links, _ := filepath.Glob(filepath.Join(dir, "*.wants", "postgresql*.service"))
	var units []string
	for _, l := range links {
		if u := filepath.Base(l); !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	slices.Sort(units)
	return units
}

func (a *actions) reload(ctx context.Context, r *ocf.Request) (ocf.Status, error) {
	return a.validate(ctx, r)
}

// connect opens a connection to the local instance as the system user.
func (c *call) connect(ctx context.Context) (*pgx.Conn, error) {
	return c.cfg.inst.Connect(ctx, c.cfg.user)
}

func (c *call) cluster(ctx context.Context) (pacemaker.ClusterStatus, error) {
	return pacemaker.CrmMon(ctx, c.run)
}

// otherPrimary returns the node Pacemaker runs this resource promoted on,
// other than this one ("" if none).
func (c *call) otherPrimary(ctx context.Context) (string, error) {
	s, err := c.cluster(ctx)
	if err != nil {
		return "", err
	}
	return c.otherPromoted(s), nil
}

// otherPromoted is the node s shows this resource promoted on, other than
// this one ("" if none).
func (c *call) otherPromoted(s pacemaker.ClusterStatus) string {
	for _, n := range s.Promoted(c.rsc) {
		if n != c.node {
			return n
		}
	}
	return ""
}

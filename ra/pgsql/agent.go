package pgsql

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Version is the agent's own version in meta-data.
const Version = "0.1"

var osUserPattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

func absPath(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("use an absolute path")
	}
	return nil
}

// Params is the agent's parameter table: meta-data and validation both come
// from it.
var Params = []ocf.Param{
	{Name: "pgdata", Type: ocf.String, Required: true, Unique: true, Check: absPath,
		Short: "PostgreSQL data directory",
		Long:  "The data directory (PGDATA) of the instance, the same path on every node."},
	{Name: "bindir", Type: ocf.String, Default: "/usr/lib/postgresql/15/bin", Check: absPath,
		Short: "folder of pg_ctl and the other server binaries",
		Long:  "The folder that holds pg_ctl, pg_controldata and postgres (Debian: /usr/lib/postgresql/VERSION/bin)."},
	{Name: "pgport", Type: ocf.Integer, Default: "5432", Min: 1, Max: 65535,
		Short: "port", Long: "The port PostgreSQL listens on."},
	{Name: "socketdir", Type: ocf.String, Default: "/run/postgresql", Check: absPath,
		Short: "Unix socket folder", Long: "The folder of PostgreSQL's Unix socket (unix_socket_directories); the agent connects through it."},
	{Name: "system_user", Type: ocf.String, Default: "postgres",
		Check: func(s string) error {
			if !osUserPattern.MatchString(s) {
				return fmt.Errorf("not an OS user name")
			}
			return nil
		},
		Short: "OS user that owns the data directory",
		Long:  "The agent runs PostgreSQL and connects to it as this user (peer authentication as the database role of the same name)."},
	{Name: "logfile", Type: ocf.String, Default: "", Short: "postmaster start-up log",
		Long: "Where pg_ctl sends the postmaster's output before PostgreSQL's own logging starts. Default: PGDATA.startup.log beside the data directory (not inside it: pg_rewind and pg_basebackup would copy it)."},
	{Name: "repuser", Type: ocf.String, Default: "repl", Short: "replication role",
		Long: "The role standbys connect with (REPLICATION LOGIN). Its password comes from the system user's ~/.pgpass, never from the CIB."},
	{Name: "node_hosts", Type: ocf.String, Default: "", Check: checkNodeHosts,
		Short: "address of each node for replication",
		Long:  "Space-separated node=host pairs saying where a standby reaches the primary on each node, e.g. \"n1=10.0.0.11 n2=10.0.0.12\". A node not listed is reached by its name."},
	{Name: "conninfo_opts", Type: ocf.String, Default: "", Check: checkConninfoOpts,
		Short: "extra primary_conninfo settings",
		Long: "Extra keyword=value settings for the standbys' primary_conninfo and the rejoin's pg_rewind and pg_basebackup " +
			"(e.g. sslmode=verify-full sslrootcert=/etc/ssl/certs/rampart-ca.pem). Refused: password and sslpassword, which would show " +
			"in ps and in postgresql.auto.conf (the replication role's password belongs in the system user's ~/.pgpass, or in a file " +
			"named with passfile=); host, hostaddr, port, user and application_name, which the agent sets itself (node_hosts, pgport, repuser, the node's name)."},
	{Name: "auto_rejoin", Type: ocf.Boolean, Default: "false",
		Short: "rejoin an old primary by itself",
		Long: "When an instance that was a primary starts while another node is primary, it may have diverged. " +
			"false (default): start is refused with what to do. true: the agent rewinds it with pg_rewind (as rewind_user) " +
			"and, if that fails, re-clones it with pg_basebackup (as repuser, the old data directory kept as PGDATA.rampart-old-TIME), then starts it as a standby."},
	{Name: "rewind_user", Type: ocf.String, Default: "",
		Short: "role pg_rewind connects as",
		Long:  "A login role on the primary with EXECUTE on pg_ls_dir, pg_stat_file and pg_read_binary_file (see the pg_rewind documentation) and membership in pg_checkpoint (the agent asks a freshly promoted primary for a checkpoint first); password from ~/.pgpass. Empty: no rewind, re-clone only."},
	{Name: "sync_count", Type: ocf.Integer, Default: "1", Min: 0, Max: 16,
		Short: "number of synchronous standbys",
		Long:  "How many standbys must confirm each commit. 0 is asynchronous replication: no durability promise, the most advanced standby is promoted."},
	{Name: "sync_method", Type: ocf.String, Default: "first", Choices: []string{"first", "any"},
		Short: "FIRST (priority) or ANY (quorum)",
		Long:  "How synchronous_standby_names counts: first = the chosen standbys in order, any = any sync_count of the named standbys."},
	{Name: "max_lag", Type: ocf.Integer, Default: "16777216", Min: 0, Max: 1 << 50,
		Short: "lag limit in bytes for a synchronous standby",
		Long:  "A standby qualifies as synchronous only while its flushed WAL trails the primary by at most this many bytes. 0: no limit."},
	{Name: "sync_policy", Type: ocf.String, Default: "durability", Choices: []string{"durability", "availability"},
		Short: "what to do when too few standbys qualify",
		Long:  "durability: keep synchronous_standby_names and let commits wait (reported as writes blocked); availability: after async_grace, lower the requirement (asynchronous if none qualifies) and say so."},
	{Name: "async_grace", Type: ocf.Time, Default: "10s",
		Short: "how long availability waits", Long: "With sync_policy=availability, how long commits wait for a synchronous standby before the primary goes asynchronous."},
	{Name: "stream_timeout", Type: ocf.Time, Default: "30s",
		Short: "how long a standby may go without streaming",
		Long: "A standby whose walreceiver does not stream from the running primary for this long fails its monitor, so that Pacemaker restarts it " +
			"(its start compares it with the primary's timeline history and repairs what cannot follow). A standby that holds WAL past the " +
			"primary's fork point fails at once. 0: never for the time alone."},
	{Name: "unsafe_promote_without_fencing", Type: ocf.Boolean, Default: "false",
		Short: "promote even where stonith is disabled (loses data)",
		Long: "The agent refuses to promote while the cluster has stonith-enabled=false: without fencing, a primary host that hangs " +
			"and comes back takes writes beside the new primary, and acknowledged commits are lost. true overrides this for test " +
			"labs; never in production."},
	{Name: "replication_slots", Type: ocf.Boolean, Default: "true",
		Short: "a replication slot for each standby",
		Long: "true (default): every node keeps a physical replication slot rampart_NODE for each other node, and standbys stream through theirs (primary_slot_name), " +
			"so a standby that lags or is down finds the WAL it needs. The primary drops the slot of a node that leaves the cluster. " +
			"A slot of a long-stopped standby holds WAL without limit: bound it with max_slot_wal_keep_size. Slots not named rampart_* are never touched. " +
			"false: no slots (standbys rely on wal_keep_size or a WAL archive)."},
}

// checkConninfoOpts refuses secrets in conninfo_opts, and the keys the
// agent sets: a standby must connect where the agent points it.
func checkConninfoOpts(s string) error {
	c, err := pg.ParseConninfo(s)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(c)) {
		// libpq's keywords are lower case; a secret in capitals is refused all the same.
		switch key := strings.ToLower(k); key {
		case "password":
			return errors.New("password: a password here shows in ps (pg_rewind, pg_basebackup) and in postgresql.auto.conf; " +
				"put the replication role's password in the system user's ~/.pgpass (for postgres on Debian /var/lib/postgresql/.pgpass, " +
				"mode 0600, a line *:*:*:REPUSER:PASSWORD), or name another file with passfile=")
		case "sslpassword":
			return errors.New("sslpassword: a passphrase here shows in ps and in postgresql.auto.conf; give the system user a client key without one (mode 0600)")
		case "host", "hostaddr":
			return fmt.Errorf("%s: the agent points standbys at the primary itself; set node_hosts for the address of each node", k)
		case "port":
			return errors.New("port: the agent sets it; set pgport")
		case "user":
			return errors.New("user: the agent sets it; set repuser (rewind_user for pg_rewind)")
		case "application_name":
			return errors.New("application_name: the agent sets it to the node's name, which synchronous_standby_names lists")
		}
	}
	return nil
}

func checkNodeHosts(s string) error {
	_, err := ParseNodeHosts(s)
	return err
}

// ParseNodeHosts parses node_hosts ("n1=10.0.0.11 n2=10.0.0.12") into
// node → host.
func ParseNodeHosts(s string) (map[string]string, error) {
	hosts := map[string]string{}
	for _, pair := range strings.Fields(s) {
		node, host, ok := strings.Cut(pair, "=")
		if !ok || node == "" || host == "" || strings.ContainsAny(host, "'\\") {
			return nil, fmt.Errorf("%q: want node=host", pair)
		}
		hosts[node] = host
	}
	return hosts, nil
}

// Ops are the actions meta-data advertises. The two monitors need distinct
// intervals.
var Ops = []ocf.Op{
	{Name: "start", Timeout: 60 * time.Second},
	{Name: "stop", Timeout: 60 * time.Second},
	{Name: "monitor", Timeout: 15 * time.Second, Interval: 4 * time.Second},
	{Name: "monitor", Timeout: 15 * time.Second, Interval: 3 * time.Second, Role: ocf.Promoted},
	{Name: "promote", Timeout: 60 * time.Second},
	{Name: "demote", Timeout: 60 * time.Second},
	{Name: "notify", Timeout: 30 * time.Second},
	{Name: "reload", Timeout: 20 * time.Second},
}

// config is the validated parameters in the form the actions use.
type config struct {
	inst      pg.Instance
	user      string
	repuser   string
	nodeHosts map[string]string
	extraConn pg.Conninfo
	policy    SyncPolicy
	// auto_rejoin and the role pg_rewind uses ("" for re-clone only)
	autoRejoin bool
	rewindUser string
	slots      bool
	unfenced   bool // unsafe_promote_without_fencing
	// streamTimeout: how long a standby may not stream before its monitor fails
	streamTimeout time.Duration
}

func newConfig(v ocf.Values) config {
	logfile := v.String("logfile")
	if logfile == "" {
		logfile = filepath.Clean(v.String("pgdata")) + ".startup.log"
	}
	hosts, _ := ParseNodeHosts(v.String("node_hosts"))
	extra, _ := pg.ParseConninfo(v.String("conninfo_opts"))
	return config{
		inst: pg.Instance{BinDir: v.String("bindir"), DataDir: v.String("pgdata"), SocketDir: v.String("socketdir"),
			Port: int(v.Int("pgport")), LogFile: logfile},
		user: v.String("system_user"), repuser: v.String("repuser"), nodeHosts: hosts, extraConn: extra,
		autoRejoin: v.Bool("auto_rejoin"), rewindUser: v.String("rewind_user"), slots: v.Bool("replication_slots"), unfenced: v.Bool("unsafe_promote_without_fencing"),
		streamTimeout: v.Duration("stream_timeout"),
		policy: SyncPolicy{
			Count: int(v.Int("sync_count")), Method: pg.Method(strings.ToUpper(v.String("sync_method"))),
			MaxLag: uint64(v.Int("max_lag")), Mode: Mode(v.String("sync_policy")), Grace: v.Duration("async_grace"),
		},
	}
}

// PrimaryConninfo is what a standby of primary node streams with: the
// agent's keys over the user's extras (conninfo_opts refuses them there),
// with timeouts so that a standby is never stuck on a frozen peer that
// still answers TCP.
func PrimaryConninfo(self, primary string, port int, repuser string, hosts map[string]string, extra pg.Conninfo) pg.Conninfo {
	c := pg.Conninfo{
		"connect_timeout": "2", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "1",
		"keepalives_count": "3", "tcp_user_timeout": "5000",
	}
	for k, v := range extra {
		c[k] = v
	}
	host := primary
	if h, ok := hosts[primary]; ok {
		host = h
	}
	c["host"], c["port"], c["user"], c["application_name"] = host, fmt.Sprint(port), repuser, self
	return c
}

// New returns the agent. run runs Pacemaker's tools; now is the clock.
func New(run pacemaker.Runner, now func() time.Time) *ocf.Agent {
	a := &actions{run: run, now: now, systemdDir: "/etc/systemd/system"}
	return &ocf.Agent{
		Name: "pgsql", Version: Version,
		Short: "PostgreSQL primary and streaming standbys, with automatic synchronous standbys",
		Long: "Manages a PostgreSQL instance as a promotable clone: one primary (promoted) and streaming standbys. " +
			"It starts every instance as a standby, promotes only a standby that has every acknowledged commit, " +
			"demotes a primary to a running standby, re-points standbys to a new primary without restart, and " +
			"keeps synchronous_standby_names in step with the standbys that stream and keep up. " +
			"Node attributes rampart-<resource>-state show each node's replication state in crm_mon -A. " +
			"The agent edits no configuration file but PGDATA/postgresql.auto.conf, where it sets primary_conninfo, " +
			"primary_slot_name, recovery_target_timeline, wal_retrieve_retry_interval (100ms, so a promotion is noticed at once) and " +
			"synchronous_standby_names, and PGDATA/standby.signal; beside the data directory it keeps PGDATA.rampart-lock (a start and rampart rejoin " +
			"never overlap) and, for a standby that must be rewound, PGDATA.rampart-forked. The cluster property rampart-<resource>-synced " +
			"(property set rampart) records which nodes hold every acknowledged commit: while no primary runs, only they may be promoted.",
		Params: Params, Ops: Ops,
		Actions: map[string]ocf.Action{
			"start": a.start, "stop": a.stop, "monitor": a.monitor, "promote": a.promote,
			"demote": a.demote, "notify": a.notify, "reload": a.reload, "validate-all": a.validate,
			// Not Pacemaker's: `rampart rejoin` runs it (meta-data leaves it out).
			RejoinAction: a.rejoinNow,
		},
	}
}

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PostgreSQL on a database host, as seen from inside the host.
const (
	PGData = "/var/lib/postgresql/lab/data"
	// NodeConf is what differs between hosts (cluster_name, the first
	// primary_conninfo), outside PGData: pg_basebackup and pg_rewind copy a
	// data directory's files from another node, and a name that came with
	// them would make that node answer as the other (the chaos campaign's
	// history names the server by it).
	NodeConf  = "/var/lib/postgresql/lab/node.conf"
	pgLog     = "/var/lib/postgresql/lab/postgresql.log"
	pgPort    = "5432"
	pgSockets = "/run/postgresql"
)

// Lab roles and database. Passwords are made per lab and kept in its state
// file and in .pgpass files (postgres's on each host, the client's in the lab
// folder).
const (
	ReplicationUser = "repl"
	AppUser         = "app"
	AppDatabase     = "lab"
	// RewindUser may run pg_rewind against a primary (the grants the
	// pg_rewind documentation lists), for rejoining an old primary.
	RewindUser = "rewind"
)

// pgSettings are appended to the primary's postgresql.conf before its first
// start; standbys copy them with the base backup.
const pgSettings = `
# rampart lab settings
listen_addresses = '*'
port = 5432
unix_socket_directories = '/run/postgresql'
max_connections = 50
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 512MB
wal_log_hints = on			# pg_rewind needs it (or checksums)
hot_standby = on
hot_standby_feedback = on
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
wal_receiver_status_interval = 1s
synchronous_commit = on			# synchronous_standby_names is left to the agent
restart_after_crash = off		# the cluster, not the postmaster, recovers crashes
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
include_if_exists = '/var/lib/postgresql/lab/node.conf'	# NodeConf: cluster_name and primary_conninfo of this host
`

func (c Config) pgHBA() string {
	return fmt.Sprintf(`# rampart lab: TYPE DATABASE USER ADDRESS METHOD
local	all		all				peer
local	replication	all				peer
host	replication	%s		%s		scram-sha-256
host	all		all		%s		scram-sha-256
host	all		all		127.0.0.1/32		scram-sha-256
`, ReplicationUser, c.Subnet, c.Subnet)
}

// nodeConf is NodeConf's text: what differs between hosts; a standby
// names the address of its primary.
func nodeConf(h HostSpec, primary string) string {
	s := fmt.Sprintf("cluster_name = '%s'\n", h.Name)
	if primary != "" {
		s += fmt.Sprintf("primary_conninfo = 'host=%s port=%s user=%s application_name=%s connect_timeout=2 keepalives_idle=5 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=5000'\n",
			primary, pgPort, ReplicationUser, h.Name)
	}
	return s
}

func newPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// pgpass renders a .pgpass file for the lab roles.
func pgpass(passwords map[string]string) string {
	var b strings.Builder
	for _, role := range []string{ReplicationUser, AppUser, RewindUser} {
		fmt.Fprintf(&b, "*:*:*:%s:%s\n", role, passwords[role])
	}
	return b.String()
}

func (l *Lab) pgHostPath(host, inside string) string {
	return filepath.Join(l.cfg.hostDir(host), "var-lib-postgresql", strings.TrimPrefix(inside, "/var/lib/postgresql/"))
}

func (l *Lab) pgctl(ctx context.Context, host string, args ...string) error {
	argv := append([]string{filepath.Join(l.cfg.PGBin, "pg_ctl"), "-D", PGData}, args...)
	if _, err := l.runIn(ctx, host, "postgres", argv...); err != nil {
		return fmt.Errorf("pg_ctl %s on %s: %w (log: %s)", args[0], host, err, l.pgHostPath(host, pgLog))
	}
	return nil
}

// StartPostgres starts the host's PostgreSQL and waits until it accepts
// connections.
func (l *Lab) StartPostgres(ctx context.Context, host string) error {
	return l.pgctl(ctx, host, "start", "-w", "-t", "60", "-l", pgLog)
}

// StopPostgres stops the host's PostgreSQL (fast mode).
func (l *Lab) StopPostgres(ctx context.Context, host string) error {
	return l.pgctl(ctx, host, "stop", "-w", "-t", "60", "-m", "fast")
}

// Psql runs one SQL command on host's PostgreSQL as postgres through the
// local socket and returns the unaligned, tuples-only output.
func (l *Lab) Psql(ctx context.Context, host, sql string) (string, error) {
	return l.PsqlDB(ctx, host, "postgres", sql)
}

// PsqlDB is Psql in database db.
func (l *Lab) PsqlDB(ctx context.Context, host, db, sql string) (string, error) {
	out, err := l.runIn(ctx, host, "postgres", filepath.Join(l.cfg.PGBin, "psql"),
		"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", pgSockets, "-p", pgPort, "-d", db, "-c", sql)
	if err != nil {
		return "", fmt.Errorf("psql on %s: %w", host, err)
	}
	return strings.TrimSpace(out), nil
}

func (l *Lab) writePG(host, inside, content string, mode os.FileMode) error {
	path := l.pgHostPath(host, inside)
	if err := writeOwned(path, []byte(content), "postgres", "postgres", mode); err != nil {
		return fmt.Errorf("write %s on %s: %w", inside, host, err)
	}
	return nil
}

// initPostgres makes host the primary: initdb, lab settings, roles, database.
func (l *Lab) initPostgres(ctx context.Context, host string) error {
	if err := mkdirOwned(l.pgHostPath(host, "/var/lib/postgresql/lab"), "postgres", "postgres", 0o700); err != nil {
		return err
	}
	if _, err := l.runIn(ctx, host, "postgres", filepath.Join(l.cfg.PGBin, "initdb"),
		"-D", PGData, "--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8", "--username=postgres",
		"--auth-local=peer", "--auth-host=scram-sha-256"); err != nil {
		return fmt.Errorf("initdb on %s: %w", host, err)
	}
	conf, err := os.ReadFile(l.pgHostPath(host, PGData+"/postgresql.conf"))
	if err != nil {
		return err
	}
	settings := pgSettings
	if l.cfg.EarlyAck {
		settings += "synchronous_commit = local\t\t# EarlyAck: a broken cluster, for testing a checker\n"
	}
	if err := l.writePG(host, PGData+"/postgresql.conf", string(conf)+settings, 0o600); err != nil {
		return err
	}
	if err := l.writePG(host, PGData+"/pg_hba.conf", l.cfg.pgHBA(), 0o600); err != nil {
		return err
	}
	h, _ := l.host(host)
	if err := l.writePG(host, NodeConf, nodeConf(h.HostSpec, ""), 0o600); err != nil {
		return err
	}
	if err := l.StartPostgres(ctx, host); err != nil {
		return err
	}
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s REPLICATION LOGIN PASSWORD '%s'", ReplicationUser, l.state.Passwords[ReplicationUser]),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", AppUser, l.state.Passwords[AppUser]),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", AppDatabase, AppUser),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", RewindUser, l.state.Passwords[RewindUser]),
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO " + RewindUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO " + RewindUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO " + RewindUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO " + RewindUser,
		"GRANT pg_checkpoint TO " + RewindUser,
	} {
		if _, err := l.Psql(ctx, host, sql); err != nil {
			return fmt.Errorf("create lab roles: %w", err)
		}
	}
	return nil
}

// cloneStandby makes host a standby of primary with pg_basebackup.
func (l *Lab) cloneStandby(ctx context.Context, host, primary string) error {
	if err := mkdirOwned(l.pgHostPath(host, "/var/lib/postgresql/lab"), "postgres", "postgres", 0o700); err != nil {
		return err
	}
	p, _ := l.host(primary)
	if _, err := l.runIn(ctx, host, "postgres", filepath.Join(l.cfg.PGBin, "pg_basebackup"),
		"--pgdata="+PGData, "--host="+p.Addr.String(), "--port="+pgPort, "--username="+ReplicationUser,
		"--wal-method=stream", "--checkpoint=fast", "--no-password"); err != nil {
		return fmt.Errorf("pg_basebackup on %s from %s: %w", host, primary, err)
	}
	h, _ := l.host(host)
	if err := l.writePG(host, NodeConf, nodeConf(h.HostSpec, p.Addr.String()), 0o600); err != nil {
		return err
	}
	if err := l.writePG(host, PGData+"/standby.signal", "", 0o600); err != nil {
		return err
	}
	return l.StartPostgres(ctx, host)
}

// PGState is what one host's PostgreSQL says about itself.
type PGState struct {
	Up          bool      `json:"-"`
	Error       string    `json:"-"`
	InRecovery  bool      `json:"recovery"`
	SyncNames   string    `json:"sync_names"` // synchronous_standby_names in force
	LSN         string    `json:"lsn"`
	Timeline    int       `json:"timeline"`
	Receiver    *Receiver `json:"receiver"`
	Replication []Replica `json:"replication"`
}

// Role is "primary" or "standby" ("" when down).
func (s PGState) Role() string {
	switch {
	case !s.Up:
		return ""
	case s.InRecovery:
		return "standby"
	default:
		return "primary"
	}
}

// Receiver is a standby's walreceiver (pg_stat_wal_receiver).
type Receiver struct {
	Status string `json:"status"`
	Sender string `json:"sender"`
}

// Replica is one row of the primary's pg_stat_replication.
type Replica struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	State     string `json:"state"`
	SyncState string `json:"sync"`
	ReplayLSN string `json:"replay_lsn"`
}

const pgStateSQL = `SELECT json_build_object(
 'recovery', pg_is_in_recovery(),
 'sync_names', current_setting('synchronous_standby_names'),
 'lsn', CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
 'timeline', (SELECT timeline_id FROM pg_control_checkpoint()),
 'receiver', (SELECT json_build_object('status', status, 'sender', sender_host) FROM pg_stat_wal_receiver),
 'replication', (SELECT coalesce(json_agg(json_build_object('name', application_name, 'addr', host(client_addr),
     'state', state, 'sync', sync_state, 'replay_lsn', replay_lsn) ORDER BY application_name), '[]') FROM pg_stat_replication))`

// Postgres observes host's PostgreSQL. A host that does not answer is
// reported as down with the reason, not as an error.
func (l *Lab) Postgres(ctx context.Context, host string) PGState {
	out, err := l.Psql(ctx, host, pgStateSQL)
	if err != nil {
		return PGState{Error: err.Error()}
	}
	var s PGState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return PGState{Error: fmt.Sprintf("parse state of %s: %v", host, err)}
	}
	s.Up = true
	return s
}

// ClientPsql runs psql on the client host against addr as the app user and
// returns its output; connectTimeout bounds the connection attempt.
func (l *Lab) ClientPsql(ctx context.Context, addr, sql string, connectTimeout int) (string, error) {
	conninfo := fmt.Sprintf("host=%s port=%s user=%s dbname=%s connect_timeout=%d", addr, pgPort, AppUser, AppDatabase, connectTimeout)
	out, err := l.runInEnv(ctx, "client", []string{"PGPASSFILE=" + l.clientPgpass()},
		filepath.Join(l.cfg.PGBin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql)
	return strings.TrimSpace(out), err
}

func (l *Lab) clientPgpass() string { return filepath.Join(l.cfg.Dir(), "client.pgpass") }

// RequireTLS makes host's PostgreSQL accept TLS connections only (but for
// replication, which keeps its rules): the certificate and key (PEM) go into
// its data directory, ssl is turned on and pg_hba.conf rejects any other
// connection over TCP; a reload applies both. AllowPlain undoes it.
func (l *Lab) RequireTLS(ctx context.Context, host string, certPEM, keyPEM []byte) error {
	if err := l.writePG(host, PGData+"/server.crt", string(certPEM), 0o600); err != nil {
		return err
	}
	if err := l.writePG(host, PGData+"/server.key", string(keyPEM), 0o600); err != nil {
		return err
	}
	hba := "hostnossl\tall\t\tall\t\tall\t\t\treject\n" + l.cfg.pgHBA()
	return l.setTLS(ctx, host, "on", hba)
}

// AllowPlain undoes RequireTLS: ssl off, the lab's pg_hba.conf.
func (l *Lab) AllowPlain(ctx context.Context, host string) error {
	return l.setTLS(ctx, host, "off", l.cfg.pgHBA())
}

func (l *Lab) setTLS(ctx context.Context, host, ssl, hba string) error {
	if err := l.writePG(host, PGData+"/pg_hba.conf", hba, 0o600); err != nil {
		return err
	}
	if _, err := l.Psql(ctx, host, "ALTER SYSTEM SET ssl = "+ssl); err != nil {
		return err
	}
	if _, err := l.Psql(ctx, host, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	return nil
}

package pooler

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/pooler/proxy"
	"github.com/rampart-ha/rampart/pooler/watchdog"
	"github.com/rampart-ha/rampart/ra/pg"
)

// Config is the pooler's configuration file, parsed and validated.
type Config struct {
	ListenAddr string // address to listen on ("*" for all)
	ListenPort int
	AuthFile   string // "user" "SCRAM-SHA-256$…" lines, as PgBouncer's auth_file
	PoolMode   string // transaction or session
	// DefaultPoolSize is the number of server connections per (database,
	// user) and node; MaxClientConn bounds client connections.
	DefaultPoolSize int
	MaxClientConn   int
	// ServerIdleTimeout closes server connections idle this long.
	ServerIdleTimeout time.Duration
	// ServerResetQuery runs when a server connection returns to its pool
	// after a session (session mode; transaction mode needs none).
	ServerResetQuery string
	// MaxPacketSize bounds one client message; a bigger one gets an
	// ErrorResponse and the connection closes.
	MaxPacketSize int
	// Routing.
	MaxLagBytes    int64
	MaxLagTime     time.Duration
	ReadYourWrites time.Duration
	// ReadYourWritesLSN: read_your_writes = lsn (causal reads by WAL
	// position); ReadYourWritesWait bounds a read's wait for a standby.
	ReadYourWritesLSN  bool
	ReadYourWritesWait time.Duration
	WriteFunctions     []string
	// HealthCheckPeriod is how often every node is asked its role and lag.
	HealthCheckPeriod time.Duration
	// HealthCheckUser logs in (with its auth_file password) to
	// HealthCheckDBName to check nodes and read the function catalogue.
	HealthCheckUser, HealthCheckDBName string
	// TLS, with PgBouncer's keys: client_tls_sslmode (disable, allow,
	// prefer, require) with client_tls_cert_file and client_tls_key_file;
	// server_tls_sslmode is libpq's sslmode towards the nodes, and
	// server_tls_ca_file the CA their certificates are checked against
	// (libpq's sslrootcert; the system's CAs when unset).
	ClientTLSMode, ClientTLSCertFile, ClientTLSKeyFile string
	ServerTLSMode, ServerTLSCAFile                     string
	// AdminUsers may use the console (database rampart or pgbouncer).
	AdminUsers []string
	// HTTPListen is where /metrics and /health are served ("" = nowhere).
	HTTPListen string
	// PrimaryReads lets the primary take reads too (by its weight).
	PrimaryReads bool
	// PrimaryWait is how long a write waits for a primary during a
	// failover before the client gets an error.
	PrimaryWait time.Duration
	// DurableReads withholds what transactions on the primary answer until
	// it is on the synchronous standbys; DurableReadTimeout bounds the wait.
	DurableReads       bool
	DurableReadTimeout time.Duration
	// QueryWaitTimeout is how long a client waits for a free server
	// connection of its pool (PgBouncer's query_wait_timeout).
	QueryWaitTimeout time.Duration
	// Nodes are the PostgreSQL servers, in file order.
	Nodes []Node
}

// Node is one PostgreSQL server of [nodes].
type Node struct {
	Name   string
	Host   string
	Port   int
	Weight int // share of reads; 0 takes none
}

// DefaultConfig holds the defaults of keys a file leaves out.
func DefaultConfig() Config {
	return Config{
		ListenAddr: "127.0.0.1", ListenPort: 6432, PoolMode: "transaction",
		DefaultPoolSize: 20, MaxClientConn: 100, ServerIdleTimeout: 10 * time.Minute,
		ServerResetQuery: "DISCARD ALL", MaxPacketSize: proxy.DefaultMaxPacketSize,
		MaxLagBytes: 16 << 20, MaxLagTime: 10 * time.Second, ReadYourWrites: 2 * time.Second,
		HealthCheckPeriod: time.Second, HealthCheckDBName: "postgres", PrimaryWait: 10 * time.Second,
		DurableReadTimeout: 10 * time.Second,
		QueryWaitTimeout:   2 * time.Minute,
		ClientTLSMode:      "disable", ServerTLSMode: "prefer",
	}
}

// ConfigError is a problem of one line of the file (the pair's sections
// report theirs the same way).
type ConfigError = watchdog.ConfigError

func configError(file string, line int, key, msg string) *ConfigError {
	return &ConfigError{File: file, Line: line, Key: key, Msg: msg}
}

// LoadConfig reads and validates the file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("pooler config: %w", err)
	}
	defer f.Close()
	return ParseConfig(path, f)
}

// boolean reads PostgreSQL's spellings of a boolean.
func boolean(b *bool, v string) error {
	switch strings.ToLower(v) {
	case "1", "on", "true", "yes":
		*b = true
	case "0", "off", "false", "no":
		*b = false
	default:
		return fmt.Errorf("%q: use on or off", v)
	}
	return nil
}

// A key of [pooler]: how to set it from its text.
type setting func(c *Config, v string) error

var poolerKeys = map[string]setting{
	"listen_addr": func(c *Config, v string) error {
		if v != "*" && net.ParseIP(v) == nil {
			return fmt.Errorf("%q is not an IP address or *", v)
		}
		c.ListenAddr = v
		return nil
	},
	"listen_port": func(c *Config, v string) error { return intIn(&c.ListenPort, v, 1, 65535) },
	"auth_file":   func(c *Config, v string) error { c.AuthFile = v; return nonEmpty(v) },
	"pool_mode": func(c *Config, v string) error {
		if v != "transaction" && v != "session" {
			return fmt.Errorf("%q: use transaction or session", v)
		}
		c.PoolMode = v
		return nil
	},
	"default_pool_size":   func(c *Config, v string) error { return intIn(&c.DefaultPoolSize, v, 1, 10000) },
	"max_client_conn":     func(c *Config, v string) error { return intIn(&c.MaxClientConn, v, 1, 1000000) },
	"server_idle_timeout": func(c *Config, v string) error { return duration(&c.ServerIdleTimeout, v, 0) },
	"server_reset_query":  func(c *Config, v string) error { c.ServerResetQuery = v; return nil },
	"max_packet_size": func(c *Config, v string) error {
		n, err := size(v)
		if err != nil {
			return err
		}
		if n < 1024 || n > 1<<30 {
			return fmt.Errorf("%q: use 1kB to 1GB", v)
		}
		c.MaxPacketSize = int(n)
		return nil
	},
	"max_lag_bytes": func(c *Config, v string) error {
		n, err := size(v)
		c.MaxLagBytes = n
		return err
	},
	"max_lag_time": func(c *Config, v string) error { return duration(&c.MaxLagTime, v, 0) },
	"read_your_writes": func(c *Config, v string) error {
		if c.ReadYourWritesLSN = strings.EqualFold(v, "lsn"); c.ReadYourWritesLSN {
			c.ReadYourWrites = 0
			return nil
		}
		if err := duration(&c.ReadYourWrites, v, 0); err != nil {
			return fmt.Errorf("%w, or lsn", err)
		}
		return nil
	},
	"read_your_writes_wait": func(c *Config, v string) error { return duration(&c.ReadYourWritesWait, v, 0) },
	"health_check_period":   func(c *Config, v string) error { return duration(&c.HealthCheckPeriod, v, 100*time.Millisecond) },
	"health_check_user":     func(c *Config, v string) error { c.HealthCheckUser = v; return nonEmpty(v) },
	"health_check_dbname":   func(c *Config, v string) error { c.HealthCheckDBName = v; return nonEmpty(v) },
	"primary_wait":          func(c *Config, v string) error { return duration(&c.PrimaryWait, v, 0) },
	"query_wait_timeout":    func(c *Config, v string) error { return duration(&c.QueryWaitTimeout, v, time.Second) },
	"primary_reads":         func(c *Config, v string) error { return boolean(&c.PrimaryReads, v) },
	"durable_reads":         func(c *Config, v string) error { return boolean(&c.DurableReads, v) },
	"durable_read_timeout":  func(c *Config, v string) error { return duration(&c.DurableReadTimeout, v, 100*time.Millisecond) },
	"client_tls_sslmode": func(c *Config, v string) error {
		if !slices.Contains([]string{"disable", "allow", "prefer", "require"}, v) {
			return fmt.Errorf("%q: use disable, allow, prefer or require", v)
		}
		c.ClientTLSMode = v
		return nil
	},
	"client_tls_cert_file": func(c *Config, v string) error { c.ClientTLSCertFile = v; return nonEmpty(v) },
	"client_tls_key_file":  func(c *Config, v string) error { c.ClientTLSKeyFile = v; return nonEmpty(v) },
	"server_tls_sslmode": func(c *Config, v string) error {
		if !slices.Contains([]string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}, v) {
			return fmt.Errorf("%q: use one of libpq's sslmodes (disable, allow, prefer, require, verify-ca, verify-full)", v)
		}
		c.ServerTLSMode = v
		return nil
	},
	"server_tls_ca_file": func(c *Config, v string) error { c.ServerTLSCAFile = v; return nonEmpty(v) },
	"http_listen": func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q: use host:port, e.g. 127.0.0.1:9187", v)
		}
		c.HTTPListen = v
		return nil
	},
	"admin_users": func(c *Config, v string) error {
		c.AdminUsers = nil
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.AdminUsers = append(c.AdminUsers, u)
			}
		}
		return nil
	},
	"write_functions": func(c *Config, v string) error {
		c.WriteFunctions = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
				c.WriteFunctions = append(c.WriteFunctions, f)
			}
		}
		return nil
	},
}

// ParseConfig parses a configuration file's text; name is for messages.
// Sections: [pooler] (keys above) and [nodes] (NAME = host=… port=…
// weight=…). Lines starting with ; or # are comments; a value runs to the
// end of its line (it may hold ; or #, as a reset query may).
func ParseConfig(name string, r io.Reader) (Config, error) {
	c := DefaultConfig()
	section := ""
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '#' {
			continue
		}
		if text[0] == '[' {
			if !strings.HasSuffix(text, "]") {
				return c, configError(name, line, "", fmt.Sprintf("section header %q has no closing ]", text))
			}
			section = strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			if !slices.Contains([]string{"pooler", "nodes", "watchdog", "members"}, section) {
				return c, configError(name, line, "", fmt.Sprintf("unknown section [%s]: use [pooler], [nodes], and for a pair [watchdog] and [members]", section))
			}
			continue
		}
		if section == "watchdog" || section == "members" {
			continue // the pair's sections: package watchdog reads them
		}
		key, value, ok := strings.Cut(text, "=")
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		if !ok || key == "" {
			return c, configError(name, line, "", fmt.Sprintf("%q: want key = value", text))
		}
		if section == "" {
			return c, configError(name, line, key, "outside any section: start with [pooler]")
		}
		if prev, dup := seen[section+"."+key]; dup {
			return c, configError(name, line, key, fmt.Sprintf("set twice (first on line %d)", prev))
		}
		seen[section+"."+key] = line
		var err error
		if section == "nodes" {
			err = addNode(&c, key, value)
		} else if set, known := poolerKeys[key]; known {
			err = set(&c, value)
		} else {
			err = fmt.Errorf("unknown key (known: %s)", strings.Join(knownKeys(), ", "))
		}
		if err != nil {
			return c, configError(name, line, key, err.Error())
		}
	}
	if err := sc.Err(); err != nil {
		return c, configError(name, line+1, "", err.Error())
	}
	if c.ClientTLSMode != "disable" && (c.ClientTLSCertFile == "" || c.ClientTLSKeyFile == "") {
		return c, configError(name, max(line, 1), "client_tls_sslmode", c.ClientTLSMode+" needs client_tls_cert_file and client_tls_key_file")
	}
	for _, k := range []string{"auth_file", "health_check_user"} {
		if _, ok := seen["pooler."+k]; !ok {
			return c, configError(name, max(line, 1), k, "missing from [pooler]")
		}
	}
	if len(c.Nodes) == 0 {
		return c, configError(name, max(line, 1), "", "no [nodes]: name at least one PostgreSQL server")
	}
	return c, nil
}

func knownKeys() []string {
	var keys []string
	for k := range poolerKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// addNode parses "host=… port=… weight=…" (libpq's key=value syntax).
func addNode(c *Config, name, value string) error {
	for _, n := range c.Nodes {
		if n.Name == name {
			return fmt.Errorf("node defined twice")
		}
	}
	kv, err := pg.ParseConninfo(value)
	if err != nil {
		return err
	}
	n := Node{Name: name, Port: 5432, Weight: 1}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first bad one reported is the same every time
	for _, k := range keys {
		v := kv[k]
		switch k {
		case "host":
			n.Host = v
		case "port":
			if err := intIn(&n.Port, v, 1, 65535); err != nil {
				return fmt.Errorf("port: %w", err)
			}
		case "weight":
			if err := intIn(&n.Weight, v, 0, 1000); err != nil {
				return fmt.Errorf("weight: %w", err)
			}
		default:
			return fmt.Errorf("unknown node setting %q: use host, port, weight", k)
		}
	}
	if n.Host == "" {
		return fmt.Errorf("no host=")
	}
	c.Nodes = append(c.Nodes, n)
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return fmt.Errorf("empty")
	}
	return nil
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%q: use a whole number from %d to %d", v, lo, hi)
	}
	*dst = n
	return nil
}

// duration accepts Go durations ("500ms", "2s"), PostgreSQL's "min",
// and, as PgBouncer, plain seconds ("600").
func duration(dst *time.Duration, v string, least time.Duration) error {
	d, err := time.ParseDuration(strings.Replace(v, "min", "m", 1))
	if err != nil {
		n, nerr := strconv.ParseFloat(v, 64)
		if nerr != nil || n < 0 || n > 1e9 {
			return fmt.Errorf("%q: use a duration such as 500ms, 2s, 10min, or seconds", v)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < least {
		return fmt.Errorf("%q: at least %s", v, least)
	}
	*dst = d
	return nil
}

// size accepts bytes with PostgreSQL's units (kB, MB, GB).
func size(v string) (int64, error) {
	num, unit := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}} {
		if strings.HasSuffix(v, u.suffix) {
			num, unit = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("%q: use bytes, or a number with kB, MB, GB or TB", v)
	}
	return n * unit, nil
}

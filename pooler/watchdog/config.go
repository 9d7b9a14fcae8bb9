package watchdog

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

// Member is one line of [members]: id = ADDRESS:PORT [priority=N] [witness].
type Member struct {
	ID       string
	Addr     netip.AddrPort
	Priority int
	Witness  bool
}

// Config is the [watchdog] and [members] sections of a pooler's (or a
// witness's) configuration file.
type Config struct {
	Self      string
	KeyFile   string
	Heartbeat time.Duration
	// VIP is the address the leader holds ("" in a witness's file);
	// VIPInterface is its interface ("" = the one whose subnet holds it).
	VIP          netip.Addr
	VIPInterface string
	Members      []Member
	// Present: the file has a [watchdog] section (a pooler without one
	// runs alone, holding no address).
	Present bool
}

// Election is the election's configuration: timings follow the
// heartbeat (lease 2×, promise 2.5×, election 3×).
func (c Config) Election() election.Config {
	var ms []election.Member
	for _, m := range c.Members {
		ms = append(ms, election.Member{ID: m.ID, Priority: m.Priority, Witness: m.Witness})
	}
	hb := c.Heartbeat
	return election.Config{Self: c.Self, Members: ms, Heartbeat: hb, Lease: 2 * hb, Promise: 5 * hb / 2, Election: 3 * hb}
}

// Me returns this member's entry.
func (c Config) Me() Member {
	for _, m := range c.Members {
		if m.ID == c.Self {
			return m
		}
	}
	return Member{}
}

// ConfigError names the file, line and key at fault (the pooler's own
// sections use it too).
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// LoadConfig reads the watchdog sections of the file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	return ParseConfig(path, f)
}

// ParseConfig reads [watchdog] and [members] and skips other sections
// (the pooler's own). Lines starting with ; or # are comments.
func ParseConfig(name string, r io.Reader) (Config, error) {
	c := Config{Heartbeat: 500 * time.Millisecond}
	section, line := "", 0
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '#' {
			continue
		}
		if text[0] == '[' && strings.HasSuffix(text, "]") {
			section = strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			c.Present = c.Present || section == "watchdog"
			continue
		}
		if section != "watchdog" && section != "members" {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return c, &ConfigError{name, line, "", fmt.Sprintf("%q: want key = value", text)}
		}
		if prev, dup := seen[section+"."+key]; dup {
			return c, &ConfigError{name, line, key, fmt.Sprintf("set twice (first on line %d)", prev)}
		}
		seen[section+"."+key] = line
		var err error
		if section == "members" {
			err = c.addMember(key, value)
		} else {
			err = c.set(strings.ToLower(key), value)
		}
		if err != nil {
			return c, &ConfigError{name, line, key, err.Error()}
		}
	}
	if err := sc.Err(); err != nil {
		return c, &ConfigError{name, line + 1, "", err.Error()}
	}
	if !c.Present {
		return c, nil
	}
	last := max(line, 1)
	switch {
	case c.Self == "":
		return c, &ConfigError{name, last, "self", "missing from [watchdog]: this member's id in [members]"}
	case c.KeyFile == "":
		return c, &ConfigError{name, last, "key_file", "missing from [watchdog]: a file with the shared key (at least 16 bytes)"}
	case !slices.ContainsFunc(c.Members, func(m Member) bool { return m.ID == c.Self }):
		return c, &ConfigError{name, seen["watchdog.self"], "self", fmt.Sprintf("%q is not in [members]", c.Self)}
	}
	if err := c.Election().Validate(); err != nil {
		return c, &ConfigError{name, last, "", err.Error()}
	}
	return c, nil
}

func (c *Config) set(key, value string) error {
	switch key {
	case "self":
		c.Self = value
	case "key_file":
		c.KeyFile = value
	case "heartbeat":
		d, err := time.ParseDuration(value)
		if err != nil || d < 100*time.Millisecond || d > 10*time.Second {
			return fmt.Errorf("%q: want a duration from 100ms to 10s (e.g. 500ms)", value)
		}
		c.Heartbeat = d
	case "vip":
		a, err := netip.ParseAddr(value)
		if err != nil {
			return fmt.Errorf("%q: want an IP address", value)
		}
		c.VIP = a
	case "vip_interface":
		c.VIPInterface = value
	default:
		return fmt.Errorf("unknown key (known: heartbeat, key_file, self, vip, vip_interface)")
	}
	return nil
}

func (c *Config) addMember(id, value string) error {
	if len(id) > maxID {
		return fmt.Errorf("id longer than %d bytes", maxID)
	}
	fields := strings.Fields(value)
	if len(fields) == 0 {
		return fmt.Errorf("want ADDRESS:PORT [priority=N] [witness]")
	}
	ap, err := netip.ParseAddrPort(fields[0])
	if err != nil {
		return fmt.Errorf("%q: want ADDRESS:PORT", fields[0])
	}
	m := Member{ID: id, Addr: ap}
	for _, f := range fields[1:] {
		switch {
		case f == "witness":
			m.Witness = true
		case strings.HasPrefix(f, "priority="):
			if m.Priority, err = strconv.Atoi(f[len("priority="):]); err != nil || m.Priority < 0 || m.Priority > 255 {
				return fmt.Errorf("%q: want priority=0…255", f)
			}
		default:
			return fmt.Errorf("%q: want priority=N or witness", f)
		}
	}
	for _, o := range c.Members {
		if o.ID == id || o.Addr == ap {
			return fmt.Errorf("member %s (%s) listed twice", id, ap)
		}
	}
	c.Members = append(c.Members, m)
	return nil
}

// ReadKey reads the shared key file, which others must not read.
func ReadKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key_file %s: mode %o lets others read it: chmod 600 %s", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("key_file %s: %d bytes; want at least %d (e.g. head -c 32 /dev/urandom | base64 > %s)", path, len(key), MinKeySize, path)
	}
	return key, nil
}

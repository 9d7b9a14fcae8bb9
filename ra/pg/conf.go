package pg

import (
	"fmt"
	"sort"
	"strings"
)

// Conninfo is a libpq connection string as keyword/value pairs.
type Conninfo map[string]string

// String formats c with libpq's quoting (single quotes, backslash escapes),
// keys sorted so that the result is stable.
func (c Conninfo) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+quoteConnValue(c[k]))
	}
	return strings.Join(parts, " ")
}

func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// ParseConninfo parses a keyword/value connection string.
func ParseConninfo(s string) (Conninfo, error) {
	c := Conninfo{}
	r := []byte(s) // libpq reads bytes, not runes
	i := 0
	skip := func() {
		for i < len(r) && (r[i] == ' ' || r[i] == '\t' || r[i] == '\n' || r[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i >= len(r) {
			return c, nil
		}
		start := i
		for i < len(r) && r[i] != '=' && r[i] != ' ' && r[i] != '\t' {
			i++
		}
		key := string(r[start:i])
		skip()
		if i >= len(r) || r[i] != '=' || key == "" {
			return nil, fmt.Errorf("conninfo %q: want keyword=value", s)
		}
		i++
		skip()
		var v strings.Builder
		if i < len(r) && r[i] == '\'' {
			i++
			for {
				if i >= len(r) {
					return nil, fmt.Errorf("conninfo %q: unterminated quoted value", s)
				}
				if r[i] == '\\' && i+1 < len(r) {
					v.WriteByte(r[i+1])
					i += 2
					continue
				}
				if r[i] == '\'' {
					i++
					break
				}
				v.WriteByte(r[i])
				i++
			}
		} else {
			for i < len(r) && r[i] != ' ' && r[i] != '\t' && r[i] != '\n' && r[i] != '\r' {
				if r[i] == '\\' && i+1 < len(r) {
					i++
				}
				v.WriteByte(r[i])
				i++
			}
		}
		c[key] = v.String()
	}
}

// QuoteConfValue quotes a value for postgresql.conf: single quotes, a
// quote doubled.
func QuoteConfValue(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// SetAutoConf returns the text of postgresql.auto.conf with the given
// settings changed: a key with value nil is removed, others are set (added
// at the end if absent). Lines it does not touch are kept as they are, so an
// operator's ALTER SYSTEM settings survive. It is pure: the caller writes the
// file atomically and reloads.
func SetAutoConf(text string, set map[string]*string) string {
	done := map[string]bool{}
	var out []string
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if text == "" {
		lines = nil
	}
	for _, line := range lines {
		key := confKey(line)
		v, ours := set[key]
		if key == "" || !ours {
			out = append(out, line)
			continue
		}
		if v == nil || done[key] {
			continue // removed, or a duplicate of a line already rewritten
		}
		out = append(out, key+" = "+QuoteConfValue(*v))
		done[key] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := set[k]; v != nil && !done[k] {
			out = append(out, k+" = "+QuoteConfValue(*v))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// ReadAutoConf returns the value of key in a postgresql.conf-format text,
// the last one winning, and whether it is set.
func ReadAutoConf(text, key string) (string, bool) {
	value, found := "", false
	for _, line := range strings.Split(text, "\n") {
		if confKey(line) != key {
			continue
		}
		_, rest, _ := strings.Cut(line, "=")
		value, found = unquoteConfValue(strings.TrimSpace(rest)), true
	}
	return value, found
}

func unquoteConfValue(v string) string {
	if len(v) >= 2 && v[0] == '\'' {
		if end := strings.LastIndexByte(v, '\''); end > 0 {
			return strings.ReplaceAll(v[1:end], "''", "'")
		}
	}
	if i := strings.IndexByte(v, '#'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// confKey returns the setting a postgresql.conf line sets, lower-cased, or "".
func confKey(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return ""
	}
	end := strings.IndexAny(line, " \t=")
	if end <= 0 {
		return ""
	}
	return strings.ToLower(line[:end])
}

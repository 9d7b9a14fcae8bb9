package pg

import (
	"bytes"
	"errors"
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

// ErrConfNUL says a value holds a NUL byte. PostgreSQL keeps settings as
// C strings: no spelling in a configuration file yields one (an octal \000
// ends the value there), so such a value is refused rather than cut short.
var ErrConfNUL = errors.New("a NUL byte cannot be written in a postgresql.conf value")

// QuoteConfValue quotes v for a postgresql.conf line so that PostgreSQL's
// parser (guc-file.l, GUC_scanstr) reads back exactly v: a quote doubled,
// a backslash escaped, control characters as \n, \r, \t, \b, \f or three
// octal digits (three, so that a digit after one is not read into it).
// The result holds no line break: one setting, one line. Bytes from 0x80
// are kept as they are, as PostgreSQL reads them. A NUL byte is refused
// with ErrConfNUL.
func QuoteConfValue(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", ErrConfNUL
	}
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// SetAutoConf returns the text of postgresql.auto.conf with the given
// settings changed: a key with value nil is removed, others are set (added
// at the end if absent). Lines it does not touch are kept as they are, so an
// operator's ALTER SYSTEM settings survive. It is pure: the caller writes the
// file atomically and reloads. A value that cannot be written (ErrConfNUL)
// is an error, and no text is returned.
func SetAutoConf(text string, set map[string]*string) (string, error) {
	quoted := map[string]string{}
	for k, v := range set {
		if v == nil {
			continue
		}
		q, err := QuoteConfValue(*v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		quoted[k] = q
	}
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
		out = append(out, key+" = "+quoted[key])
		done[key] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := set[k]; v != nil && !done[k] {
			out = append(out, k+" = "+quoted[k])
		}
	}
	if len(out) == 0 {
		return "", nil
	}
	return strings.Join(out, "\n") + "\n", nil
}

// ReadAutoConf returns the value of key in a postgresql.conf-format text,
// the last one winning, and whether it is set. It reads as PostgreSQL does
// (guc-file.l and GUC_scanstr): names without regard to ASCII case, an
// optional =, quoted values with their escapes, unquoted ones as they are,
// comments. Like PostgreSQL, it refuses the whole text when a line is not
// name = value; include directives are not followed.
func ReadAutoConf(text, key string) (value string, found bool, err error) {
	key = asciiLower(key)
	for i, line := range strings.Split(text, "\n") {
		name, v, err := parseConfLine(line)
		if err != nil {
			return "", false, fmt.Errorf("line %d: %w", i+1, err)
		}
		if name != "" && asciiLower(name) == key {
			value, found = v, true
		}
	}
	return value, found, nil
}

// parseConfLine reads one line as guc-file.l's lexer and ParseConfigFp
// do; an empty or comment line has name "".
func parseConfLine(line string) (name, value string, err error) {
	i := skipConfSpace(line, 0)
	if i == len(line) || line[i] == '#' {
		return "", "", nil
	}
	end := confWord(line, i)
	name = line[i:end]
	if !isConfName(name) {
		return "", "", fmt.Errorf("syntax error: %q is not a setting name", name)
	}
	i = skipConfSpace(line, end)
	if i < len(line) && line[i] == '=' {
		i = skipConfSpace(line, i+1)
	}
	switch {
	case i == len(line) || line[i] == '#':
		return "", "", fmt.Errorf("syntax error: %s has no value", name)
	case line[i] == '\'':
		value, end, err = unquoteConfValue(line, i)
		if err != nil {
			return "", "", fmt.Errorf("syntax error in the value of %s: %w", name, err)
		}
	default:
		end = i
		for end < len(line) && !strings.ContainsRune(" \t\r#", rune(line[end])) {
			end++
		}
		value = line[i:end]
		if !isUnquotedConfValue(value) {
			return "", "", fmt.Errorf("syntax error: the value %q of %s needs quotes", value, name)
		}
	}
	if i = skipConfSpace(line, end); i < len(line) && line[i] != '#' {
		return "", "", fmt.Errorf("syntax error: %q after the value of %s", line[i:], name)
	}
	return name, value, nil
}

// unquoteConfValue decodes the quoted value starting at line[start] as
// GUC_scanstr does, and returns where it ends.
func unquoteConfValue(line string, start int) (string, int, error) {
	var b []byte
	for i := start + 1; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' && i+1 < len(line) && line[i+1] == '\'':
			b = append(b, '\'')
			i++
		case c == '\'':
			// A C string: an escaped NUL ends the value.
			if n := bytes.IndexByte(b, 0); n >= 0 {
				b = b[:n]
			}
			return string(b), i + 1, nil
		case c == 0:
			// guc-file.l would read the token only up to here, then lose
			// a byte: nothing to imitate.
			return "", 0, errors.New("a NUL byte in a quoted value")
		case c == '\\' && i+1 < len(line):
			i++
			switch e := line[i]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				// Up to three octal digits; the low byte of their value.
				n := 0
				for k := 0; k < 3 && i < len(line) && line[i] >= '0' && line[i] <= '7'; k++ {
					n = n<<3 + int(line[i]-'0')
					i++
				}
				i--
				b = append(b, byte(n))
			default:
				b = append(b, e)
			}
		case c == '\\':
			return "", 0, errors.New("a backslash at the end of the line")
		default:
			b = append(b, c)
		}
	}
	return "", 0, errors.New("no closing quote on the line")
}

// confLetter is guc-file.l's LETTER: ASCII letters, underscore and every
// byte from 0x80.
func confLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func confDigit(c byte) bool { return c >= '0' && c <= '9' }

// confWord returns the end of the longest run from i that guc-file.l's
// UNQUOTED_STRING could match (the longest of its name tokens).
func confWord(line string, i int) int {
	if i >= len(line) || !confLetter(line[i]) {
		return i
	}
	for i++; i < len(line); i++ {
		if c := line[i]; !confLetter(c) && !confDigit(c) && !strings.ContainsRune("-._:/", rune(c)) {
			break
		}
	}
	return i
}

// isConfID says whether s is guc-file.l's ID.
func isConfID(s string) bool {
	if s == "" || !confLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !confLetter(s[i]) && !confDigit(s[i]) {
			return false
		}
	}
	return true
}

// isConfName says whether s is an ID or a QUALIFIED_ID (ID.ID).
func isConfName(s string) bool {
	a, b, qualified := strings.Cut(s, ".")
	return isConfID(a) && (!qualified || isConfID(b))
}

// isUnquotedConfValue says whether s is one of guc-file.l's unquoted value
// tokens: an ID or UNQUOTED_STRING (not an ID.ID), an INTEGER (decimal or
// 0x hex, with unit letters) or a REAL.
func isUnquotedConfValue(s string) bool {
	if s == "" {
		return false
	}
	if confLetter(s[0]) {
		// ID.ID is a QUALIFIED_ID, which the lexer prefers and the
		// parser refuses as a value.
		a, b, qualified := strings.Cut(s, ".")
		return confWord(s, 0) == len(s) && !(qualified && isConfID(a) && isConfID(b))
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && confDigit(s[i]) {
			i++
		}
		return i - j
	}
	start := i
	// INTEGER
	if strings.HasPrefix(s[i:], "0x") && len(s) > i+2 && isHex(s[i+2]) {
		i += 2
		for i < len(s) && isHex(s[i]) {
			i++
		}
		return unitLetters(s[i:])
	}
	if digits() > 0 && unitLetters(s[i:]) {
		return true
	}
	// REAL: digits, a point, digits, an exponent.
	i = start
	digits()
	if i == len(s) || s[i] != '.' {
		return false
	}
	i++
	digits()
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func isHex(c byte) bool {
	return confDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unitLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func skipConfSpace(line string, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
		i++
	}
	return i
}

// asciiLower folds ASCII letters only, as PostgreSQL compares setting
// names (guc_name_compare).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// confKey returns the setting a postgresql.conf line sets, lower-cased, or
// "". It reads the name only, so that SetAutoConf also replaces a line of
// its own whose value PostgreSQL cannot read.
func confKey(line string) string {
	i := skipConfSpace(line, 0)
	name := line[i:confWord(line, i)]
	if !isConfName(name) {
		return ""
	}
	return asciiLower(name)
}

package pg

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Method is how synchronous_standby_names counts confirmations.
type Method string

// Methods of synchronous_standby_names.
const (
	First Method = "FIRST" // priority: the first Num streaming standbys of the list
	Any   Method = "ANY"   // quorum: any Num of the list
)

// SyncNames is a parsed synchronous_standby_names. The zero value (no
// names) means asynchronous replication.
type SyncNames struct {
	Method Method
	Num    int
	Names  []string // application_names, in priority order for First; "*" matches any
}

// Empty reports whether no standby is synchronous.
func (s SyncNames) Empty() bool { return len(s.Names) == 0 || s.Num == 0 }

// String formats s the way PostgreSQL parses it, quoting names that need it
// ("" for none).
func (s SyncNames) String() string {
	if s.Empty() {
		return ""
	}
	quoted := make([]string, len(s.Names))
	for i, n := range s.Names {
		quoted[i] = QuoteStandbyName(n)
	}
	m := s.Method
	if m == "" {
		m = First
	}
	return fmt.Sprintf("%s %d (%s)", m, s.Num, strings.Join(quoted, ", "))
}

// Equal reports whether s and o name the same standbys the same way.
func (s SyncNames) Equal(o SyncNames) bool {
	if s.Empty() || o.Empty() {
		return s.Empty() == o.Empty()
	}
	if s.Num != o.Num || s.method() != o.method() || len(s.Names) != len(o.Names) {
		return false
	}
	for i := range s.Names {
		if s.Names[i] != o.Names[i] {
			return false
		}
	}
	return true
}

func (s SyncNames) method() Method {
	if s.Method == "" {
		return First
	}
	return s.Method
}

// QuoteStandbyName quotes an application name for synchronous_standby_names
// unless it is a plain lower-case identifier (PostgreSQL folds unquoted names
// to lower case) or "*".
func QuoteStandbyName(name string) string {
	if name == "*" || isPlainIdentifier(name) && !isSyncKeyword(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func isPlainIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9' || r == '$') && i > 0:
		default:
			return false
		}
	}
	return true
}

func isSyncKeyword(s string) bool { return s == "first" || s == "any" }

// ParseSyncNames parses synchronous_standby_names: "FIRST n (a, b)",
// "ANY n (a, b)", "n (a, b)" (= FIRST) and the old "a, b" (= FIRST 1).
// Unquoted names are folded to lower case, as PostgreSQL does.
func ParseSyncNames(s string) (SyncNames, error) {
	toks, err := lexSync(s)
	if err != nil {
		return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: %w", s, err)
	}
	if len(toks) == 0 {
		return SyncNames{}, nil
	}
	p := &syncParser{toks: toks}
	sn, err := p.parse()
	if err != nil {
		return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: %w", s, err)
	}
	return sn, nil
}

type token struct {
	kind  byte // 'i' identifier, 'n' number, '(' ')' ','
	text  string
	ident bool // quoted identifier: never a keyword
}

func lexSync(s string) ([]token, error) {
	var toks []token
	r := []rune(s)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, token{kind: byte(c)})
			i++
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(r) {
					return nil, fmt.Errorf("unterminated quoted name")
				}
				if r[i] == '"' {
					if i+1 < len(r) && r[i+1] == '"' {
						b.WriteRune('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteRune(r[i])
				i++
			}
			if b.Len() == 0 {
				return nil, fmt.Errorf("empty quoted name")
			}
			toks = append(toks, token{kind: 'i', text: b.String(), ident: true})
		case c >= '0' && c <= '9':
			j := i
			for j < len(r) && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			if j < len(r) && (unicode.IsLetter(r[j]) || r[j] == '_') {
				return nil, fmt.Errorf("name starts with a digit")
			}
			toks = append(toks, token{kind: 'n', text: string(r[i:j])})
			i = j
		case c == '*':
			toks = append(toks, token{kind: 'i', text: "*"})
			i++
		case unicode.IsLetter(c) || c == '_' || c > 127:
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_' || r[j] == '$' || r[j] > 127) {
				j++
			}
			toks = append(toks, token{kind: 'i', text: strings.ToLower(string(r[i:j]))})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return toks, nil
}

type syncParser struct {
	toks []token
	pos  int
}

func (p *syncParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *syncParser) parse() (SyncNames, error) {
	t, _ := p.peek()
	method := First
	if t.kind == 'i' && !t.ident && (t.text == "first" || t.text == "any") {
		// A keyword only when a number follows; else it is a standby's name.
		if p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == 'n' {
			method = Method(strings.ToUpper(t.text))
			p.pos++
			t, _ = p.peek()
		}
	}
	if t.kind == 'n' {
		num, err := strconv.Atoi(t.text)
		if err != nil || num < 1 {
			return SyncNames{}, fmt.Errorf("number of synchronous standbys must be at least 1")
		}
		p.pos++
		if t, ok := p.peek(); !ok || t.kind != '(' {
			return SyncNames{}, fmt.Errorf("want ( after the number")
		}
		p.pos++
		names, err := p.names(')')
		if err != nil {
			return SyncNames{}, err
		}
		return SyncNames{Method: method, Num: num, Names: names}, nil
	}
	if method == Any {
		return SyncNames{}, fmt.Errorf("ANY needs a number")
	}
	names, err := p.names(0)
	if err != nil {
		return SyncNames{}, err
	}
	return SyncNames{Method: First, Num: 1, Names: names}, nil
}

// names reads "a, b, c" up to end (')' or 0 for the end of input).
func (p *syncParser) names(end byte) ([]string, error) {
	var names []string
	for {
		t, ok := p.peek()
		if !ok || t.kind != 'i' {
			return nil, fmt.Errorf("want a standby name")
		}
		names = append(names, t.text)
		p.pos++
		t, ok = p.peek()
		switch {
		case !ok && end == 0:
			return names, nil
		case ok && t.kind == ',':
			p.pos++
		case ok && t.kind == end && end != 0:
			p.pos++
			if _, more := p.peek(); more {
				return nil, fmt.Errorf("unexpected text after )")
			}
			return names, nil
		default:
			return nil, fmt.Errorf("want , or %s", map[byte]string{0: "the end", ')': ")"}[end])
		}
	}
}

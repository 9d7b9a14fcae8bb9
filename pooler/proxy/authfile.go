package proxy

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// User is one line of the auth file: a role and either its password (so
// the pooler can also log in to servers as it) or its SCRAM verifier.
type User struct {
	Name     string
	Password string // "" when only a verifier is known
	Verifier Verifier
}

// NewUser is a user known by its password: the pooler can log in to
// servers as it, and checks clients against a verifier derived from it.
func NewUser(name, password string) (User, error) {
	v, err := NewVerifier(password)
	return User{Name: name, Password: password, Verifier: v}, err
}

// ParseAuthFile reads PgBouncer's auth_file format: one `"user" "secret"`
// per line, the secret a SCRAM-SHA-256 verifier or a plain password;
// lines starting with ; or # are comments.
func ParseAuthFile(name string, r io.Reader) (map[string]User, error) {
	users := map[string]User{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '#' {
			continue
		}
		fields, err := quotedFields(text)
		if err != nil || len(fields) != 2 || fields[0] == "" {
			return nil, fmt.Errorf("%s:%d: want \"user\" \"password or SCRAM verifier\"", name, line)
		}
		u := User{Name: fields[0]}
		if strings.HasPrefix(fields[1], "SCRAM-SHA-256$") {
			if u.Verifier, err = ParseVerifier(fields[1]); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", name, line, u.Name, err)
			}
		} else {
			if strings.HasPrefix(fields[1], "md5") && len(fields[1]) == 35 {
				return nil, fmt.Errorf("%s:%d: %s: md5 hashes are not supported: give the password or its SCRAM-SHA-256 verifier", name, line, u.Name)
			}
			if u, err = NewUser(u.Name, fields[1]); err != nil {
				return nil, err
			}
		}
		if _, dup := users[u.Name]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", name, line, u.Name)
		}
		users[u.Name] = u
	}
	return users, sc.Err()
}

// quotedFields splits `"a" "b ""c"""` into a and b "c" (a doubled quote is
// a quote, as in PgBouncer).
func quotedFields(s string) ([]string, error) {
	var fields []string
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] != '"' {
			return nil, fmt.Errorf("unquoted field")
		}
		i++
		var b strings.Builder
		closed := false
		for i < len(s) {
			if s[i] == '"' {
				if i+1 < len(s) && s[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				i++
				closed = true
				break
			}
			b.WriteByte(s[i])
			i++
		}
		if !closed {
			return nil, fmt.Errorf("unterminated quote")
		}
		fields = append(fields, b.String())
	}
	return fields, nil
}

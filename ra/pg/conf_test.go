package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Values the agent writes must come back from PostgreSQL's parser exactly:
// a backslash in a conninfo once made a syntax error of
// postgresql.auto.conf, a newline split the setting over two lines.
func TestQuoteConfValue(t *testing.T) {
	tests := []struct {
		name, value, line string
	}{
		{"plain", "host=n1 user=repl", `primary_conninfo = 'host=n1 user=repl'`},
		{"quote doubled", "it's", `primary_conninfo = 'it''s'`},
		{"backslash escaped", `sslrootcert='C:\\ca.crt'`, `primary_conninfo = 'sslrootcert=''C:\\\\ca.crt'''`},
		{"newline escaped", "a\nb", `primary_conninfo = 'a\nb'`},
		{"carriage return escaped", "a\r\nb", `primary_conninfo = 'a\r\nb'`},
		{"tab, backspace, form feed escaped", "\t\b\f", `primary_conninfo = '\t\b\f'`},
		{"other controls in three octal digits", "\x01" + "7\x1f\x7f", `primary_conninfo = '\0017\037\177'`},
		{"UTF-8 as is", "naïve", `primary_conninfo = 'naïve'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := SetAutoConf("", map[string]*string{"primary_conninfo": &tt.value})
			if err != nil || text != tt.line+"\n" {
				t.Errorf("SetAutoConf wrote\n%s\nwant\n%s (%v)", text, tt.line, err)
			}
			if got, ok, err := ReadAutoConf(text, "primary_conninfo"); !ok || got != tt.value || err != nil {
				t.Errorf("ReadAutoConf(%q) = %q, %v, %v; want %q", text, got, ok, err, tt.value)
			}
		})
	}
}

// No spelling gives PostgreSQL a NUL byte: such a value is refused, not
// cut short.
func TestQuoteConfValueRefusesNUL(t *testing.T) {
	if q, err := QuoteConfValue("a\x00b"); !errors.Is(err, ErrConfNUL) {
		t.Errorf("QuoteConfValue with a NUL = %q, %v; want ErrConfNUL", q, err)
	}
	v := "host=n1\x00"
	text, err := SetAutoConf("work_mem = '64MB'\n", map[string]*string{"primary_conninfo": &v})
	if !errors.Is(err, ErrConfNUL) || !strings.Contains(err.Error(), "primary_conninfo") || text != "" {
		t.Errorf("SetAutoConf with a NUL = %q, %v; want ErrConfNUL naming primary_conninfo", text, err)
	}
}

// ReadAutoConf reads a value as PostgreSQL's guc-file.l and GUC_scanstr
// do (checked against postgres -C of PostgreSQL 15 in
// TestConfValuePostgres).
func TestReadAutoConfDecodes(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"octal", `k = 'a\101b'`, "aAb"},
		{"octal of one or two digits", `k = '\12\0123'`, "\n\n3"},
		{"octal over 255 keeps the low byte", `k = '\777'`, "\xff"},
		{"octal zero ends the value", `k = 'a\400b'`, "a"},
		{"letter escapes", `k = '\b\f\n\r\t'`, "\b\f\n\r\t"},
		{"any other escaped byte is itself", `k = '\x\y\\\''`, `xy\'`},
		{"doubled quote", `k = 'a''b'`, "a'b"},
		{"no equals sign", `k 'x'`, "x"},
		{"name case and comment", "K='y'#c", "y"},
		{"unquoted number with unit", "k = 64MB # c", "64MB"},
		{"unquoted string", "k = abc/def", "abc/def"},
		{"raw tab and CR inside quotes", "k = 'a\tb\rc'\r", "a\tb\rc"},
		{"last one wins", "k = 'x'\nk = 'y'\n", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ReadAutoConf(tt.text, "k")
			if !ok || got != tt.want || err != nil {
				t.Errorf("ReadAutoConf(%q) = %q, %v, %v; want %q", tt.text, got, ok, err, tt.want)
			}
		})
	}
}

// refusedConf are lines PostgreSQL refuses (it then refuses the whole
// file).
var refusedConf = []string{
	`primary_conninfo = '\'`,    // the quote is escaped: no closing quote
	`primary_conninfo = 'a`,     // no closing quote
	"primary_conninfo = 'a\nb'", // a line break inside quotes
	`primary_conninfo = 'a''`,   // a doubled quote, then no closing one
	"primary_conninfo = /x",     // an unquoted value must start with a letter or digit
	"primary_conninfo = a b",    // two values
	"primary_conninfo = a.b",    // a qualified name is no value
	"primary_conninfo = 1.5e",   // an exponent without digits
	"primary_conninfo = 1e5",    // an exponent without a point
	"primary_conninfo =",        // no value
	"primary_conninfo = # none", // no value
	"5 = '1'",                   // no name
	"primary-conninfo = '1'",    // not a name
}

func TestReadAutoConfRefuses(t *testing.T) {
	// A raw NUL byte: PostgreSQL reads a garbled value, ReadAutoConf
	// refuses.
	for _, text := range append(refusedConf, "primary_conninfo = 'a\x00b'") {
		if got, ok, err := ReadAutoConf(text, "primary_conninfo"); err == nil {
			t.Errorf("ReadAutoConf(%q) = %q, %v; want a syntax error", text, got, ok)
		}
	}
}

// FuzzConfValueRoundTrip: whatever the values, SetAutoConf writes one line
// per setting, and ReadAutoConf reads each back unchanged; a value with a
// NUL byte is refused.
func FuzzConfValueRoundTrip(f *testing.F) {
	for _, v := range []string{"host=n1 user=repl", "it's", `a\b`, "a\nb", "\r\t\b\f\x01\x7f", "\x01" + "7", "naïve\xff", "#", "'", ""} {
		f.Add(v, "FIRST 1 (n2)")
	}
	f.Fuzz(func(t *testing.T, v, w string) {
		text, err := SetAutoConf("# kept\nwork_mem = 64MB\n", map[string]*string{"primary_conninfo": &v, "synchronous_standby_names": &w})
		if strings.ContainsRune(v+w, 0) {
			if !errors.Is(err, ErrConfNUL) {
				t.Fatalf("values %q, %q with a NUL: %v; want ErrConfNUL", v, w, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("SetAutoConf(%q, %q): %v", v, w, err)
		}
		if lines := strings.Count(text, "\n"); lines != 4 || !strings.HasSuffix(text, "\n") || strings.ContainsRune(text, '\r') {
			t.Fatalf("values %q, %q: want 4 lines ending in a line feed, no carriage return:\n%s", v, w, text)
		}
		for key, want := range map[string]string{"primary_conninfo": v, "synchronous_standby_names": w, "work_mem": "64MB"} {
			if got, ok, err := ReadAutoConf(text, key); !ok || got != want || err != nil {
				t.Errorf("%s: wrote %q, read back %q, %v, %v from\n%s", key, want, got, ok, err, text)
			}
		}
	})
}

// FuzzReadAutoConf: any text is read without a panic, and a value read
// from it survives being written back.
func FuzzReadAutoConf(f *testing.F) {
	for _, text := range []string{`k = 'a\101\777\''''` + "\n", "K 64MB # c", `k = '\0'`, "k = -.5e+3\r\n", "k = 'a"} {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		v, ok, err := ReadAutoConf(text, "k")
		if err != nil || !ok {
			return
		}
		again, err := SetAutoConf(text, map[string]*string{"k": &v})
		if err != nil {
			t.Fatalf("value %q read from %q: %v", v, text, err)
		}
		if got, _, err := ReadAutoConf(again, "k"); got != v || err != nil {
			t.Errorf("value %q read from %q, written back as\n%s\nread again as %q, %v", v, text, again, got, err)
		}
	})
}

// postgresC returns what PostgreSQL's own parser reads as
// primary_conninfo from autoConf: postgres -C, run as the postgres OS user
// on a folder with an empty postgresql.conf (no initdb needed: -C stops
// after reading the configuration). It skips unless the test runs as root
// where PostgreSQL 15 is installed.
func postgresC(t *testing.T) func(autoConf string) (string, error) {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin/postgres"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no PostgreSQL 15 server binary: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run postgres -C as the postgres user")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Not t.TempDir: its parent is root's alone, and postgres must reach it.
	dir, err := os.MkdirTemp("", "rampart-conf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	write := func(name, text string) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	write("postgresql.conf", "")
	return func(autoConf string) (string, error) {
		write("postgresql.auto.conf", autoConf)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-C", "primary_conninfo", "-D", dir)
		cmd.Env = []string{"LC_ALL=C"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("postgres -C: %w: %s", err, stderr.String())
		}
		return strings.TrimSuffix(string(out), "\n"), nil
	}
}

// PostgreSQL itself reads back what SetAutoConf writes, reads what
// ReadAutoConf reads, and refuses what it refuses.
func TestConfValuePostgres(t *testing.T) {
	read := postgresC(t)
	var every []byte
	for b := 1; b < 256; b++ {
		every = append(every, byte(b))
	}
	for _, v := range []string{
		"host=n1 user=repl", "it's", `sslrootcert='C:\\ca.crt'`, "a\nb", "a\r\nb", "\t\b\f",
		"\x01" + "7\x1f\x7f", "naïve", `\`, `'\''`, "#", "''", "", string(every),
	} {
		text, err := SetAutoConf("", map[string]*string{"primary_conninfo": &v})
		if err != nil {
			t.Fatal(err)
		}
		got, err := read(text)
		if err != nil || got != v {
			t.Errorf("PostgreSQL read %q from\n%s\nas %q, %v", v, text, got, err)
		}
	}
	for _, text := range []string{
		`primary_conninfo = 'a\101b'`, `primary_conninfo = '\12\0123'`, `primary_conninfo = '\777'`,
		`primary_conninfo = 'a\400b'`, `primary_conninfo = '\x\y\\\''`, `primary_conninfo 'x'`,
		"Primary_Conninfo='y'#c", "primary_conninfo = abc/def", "primary_conninfo = 'a\tb\rc'\r",
		"primary_conninfo = 64MB # c", "primary_conninfo = 0x1Fkb", "primary_conninfo = -.5e+3", "primary_conninfo = a.b.c",
	} {
		want, err := read(text)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, err := ReadAutoConf(text, "primary_conninfo"); !ok || got != want || err != nil {
			t.Errorf("ReadAutoConf(%q) = %q, %v, %v; PostgreSQL reads %q", text, got, ok, err, want)
		}
	}
	for _, text := range refusedConf {
		if got, err := read(text); err == nil || !strings.Contains(err.Error(), "syntax error") {
			t.Errorf("PostgreSQL reads %q from %q (%v); ReadAutoConf refuses it as a syntax error", got, text, err)
		}
	}
}

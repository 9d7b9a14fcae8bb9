package proxy

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// RFC 7677's example exchange: user "user", password "pencil".
func TestSCRAMRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := verifierFor("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s := &scramServer{v: v}
	if _, err := s.first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"); err != nil {
		t.Fatal(err)
	}
	// The RFC's server nonce instead of a random one.
	s.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	s.serverFirst = "r=" + s.nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	final, err := s.final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	if err != nil {
		t.Fatal(err)
	}
	if final != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server-final %q", final)
	}

	// A wrong proof is refused.
	s2 := &scramServer{v: v}
	s2.first("n,,n=user,r=abc")
	_, err = s2.final("c=biws,r=" + s2.nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if !errors.Is(err, errPasswordMismatch) {
		t.Errorf("wrong proof: %v", err)
	}
	for _, bad := range []string{"p=tls-server-end-point,,n=,r=x", "n,,n=user", "garbage"} {
		if _, err := (&scramServer{v: v}).first(bad); err == nil {
			t.Errorf("client-first %q accepted", bad)
		}
	}
}

func TestParseVerifier(t *testing.T) {
	v, err := NewVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	text := "SCRAM-SHA-256$4096:" + base64.StdEncoding.EncodeToString(v.Salt) + "$" +
		base64.StdEncoding.EncodeToString(v.StoredKey) + ":" + base64.StdEncoding.EncodeToString(v.ServerKey)
	got, err := ParseVerifier(text)
	if err != nil || got.Iterations != 4096 || string(got.StoredKey) != string(v.StoredKey) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"md5abc", "SCRAM-SHA-256$x:AAAA$AAAA:AAAA", "SCRAM-SHA-256$4096:AAAA$AAAA", "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA"} {
		if _, err := ParseVerifier(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseAuthFile(t *testing.T) {
	users, err := ParseAuthFile("userlist.txt", strings.NewReader(`; users
"app" "s3cret"
"odd ""name""" "pa ss"
`))
	if err != nil {
		t.Fatal(err)
	}
	if users["app"].Password != "s3cret" || users[`odd "name"`].Password != "pa ss" || len(users) != 2 {
		t.Errorf("users %+v", users)
	}
	for _, bad := range []string{`app s3cret`, `"app"`, `"app" "x" "y"`, `"app" "md5` + strings.Repeat("0", 32) + `"`, "\"a\" \"x\"\n\"a\" \"y\"", `"a" "unterminated`} {
		if _, err := ParseAuthFile("u.txt", strings.NewReader(bad)); err == nil || !strings.HasPrefix(err.Error(), "u.txt:") {
			t.Errorf("%q: %v, want an error naming the line", bad, err)
		}
	}
}

package proxy

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Verifier is a SCRAM-SHA-256 verifier, as pg_authid.rolpassword keeps
// it: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
type Verifier struct {
	Iterations           int
	Salt                 []byte
	StoredKey, ServerKey []byte
}

// ParseVerifier parses PostgreSQL's text form of a verifier.
func ParseVerifier(s string) (Verifier, error) {
	var v Verifier
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return v, errors.New("not a SCRAM-SHA-256 verifier")
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	iter, salt, ok2 := strings.Cut(iterSalt, ":")
	stored, server, ok3 := strings.Cut(keys, ":")
	if !ok || !ok2 || !ok3 {
		return v, errors.New("SCRAM verifier: want SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
	}
	var err error
	if v.Iterations, err = strconv.Atoi(iter); err != nil || v.Iterations < 1 {
		return v, fmt.Errorf("SCRAM verifier: iterations %q", iter)
	}
	for _, f := range []struct {
		dst  *[]byte
		text string
		n    int
	}{{&v.Salt, salt, 0}, {&v.StoredKey, stored, sha256.Size}, {&v.ServerKey, server, sha256.Size}} {
		b, err := base64.StdEncoding.DecodeString(f.text)
		if err != nil || len(b) == 0 || (f.n > 0 && len(b) != f.n) {
			return v, fmt.Errorf("SCRAM verifier: bad base64 field %q", f.text)
		}
		*f.dst = b
	}
	return v, nil
}

// NewVerifier derives a verifier from a password, as PostgreSQL does
// (4096 iterations, a random 16-byte salt).
func NewVerifier(password string) (Verifier, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, err
	}
	return verifierFor(password, salt, 4096)
}

func verifierFor(password string, salt []byte, iterations int) (Verifier, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return Verifier{}, err
	}
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: stored[:], ServerKey: hmacSum(salted, "Server Key")}, nil
}

func hmacSum(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramServer is one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), server
// side, without channel binding (the client says n,,).
type scramServer struct {
	v               Verifier
	clientFirstBare string
	serverFirst     string
	nonce           string
	clientKey       []byte // recovered from the proof once verified (for pass-through to servers)
}

// first takes the client-first-message and returns the server-first-message.
func (s *scramServer) first(clientFirst string) (string, error) {
	gs2, bare, ok := strings.Cut(clientFirst, ",,")
	if !ok || gs2 != "n" && gs2 != "y" {
		return "", errors.New("SCRAM: unsupported GS2 header (channel binding is not offered)")
	}
	var cnonce string
	for _, attr := range strings.Split(bare, ",") {
		if r, ok := strings.CutPrefix(attr, "r="); ok {
			cnonce = r
		}
	}
	if cnonce == "" || !printable(cnonce) {
		return "", errors.New("SCRAM: client-first-message has no nonce")
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s.clientFirstBare = bare
	s.nonce = cnonce + base64.StdEncoding.EncodeToString(b)
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.v.Salt), s.v.Iterations)
	return s.serverFirst, nil
}

// final takes the client-final-message, checks the proof, and returns the
// server-final-message.
func (s *scramServer) final(clientFinal string) (string, error) {
	withoutProof, proofText, ok := strings.Cut(clientFinal, ",p=")
	if !ok {
		return "", errors.New("SCRAM: client-final-message has no proof")
	}
	var nonce, binding string
	for _, attr := range strings.Split(withoutProof, ",") {
		if r, ok := strings.CutPrefix(attr, "r="); ok {
			nonce = r
		}
		if c, ok := strings.CutPrefix(attr, "c="); ok {
			binding = c
		}
	}
	if nonce != s.nonce {
		return "", errors.New("SCRAM: nonce mismatch")
	}
	if binding != "biws" && binding != "eSws" { // base64 of "n,," and "y,,"
		return "", errors.New("SCRAM: unexpected channel binding")
	}
	proof, err := base64.StdEncoding.DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return "", errors.New("SCRAM: malformed proof")
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	signature := hmacSum(s.v.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for i := range clientKey {
		clientKey[i] = proof[i] ^ signature[i]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], s.v.StoredKey) != 1 {
		return "", errPasswordMismatch
	}
	s.clientKey = clientKey
	return "v=" + base64.StdEncoding.EncodeToString(hmacSum(s.v.ServerKey, authMessage)), nil
}

var errPasswordMismatch = errors.New("password authentication failed")

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}

// mockVerifier is what an unknown user is checked against, so that the
// exchange looks the same as a known user's with a wrong password: the
// salt is the same at every attempt (an HMAC of the proxy's secret and the
// name, where a fresh random one would tell the user does not exist), the
// iteration count is the real verifiers' most common, and no key is
// derived at request time (a PBKDF2 run per attempt would cost the pooler
// and tell by its time). Its keys match no password.
func mockVerifier(secret []byte, user string, iterations int) Verifier {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("salt\x00" + user))
	salt := h.Sum(nil)[:16]
	h.Reset()
	h.Write([]byte("keys\x00" + user))
	keys := h.Sum(nil)
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: keys, ServerKey: hmacSum(keys, "Server Key")}
}

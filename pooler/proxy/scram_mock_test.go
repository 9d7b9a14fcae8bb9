package proxy

import (
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// scramAttempt runs a SCRAM exchange with a wrong proof as user and
// returns the salt and iteration count the server offered, and how long
// the server took to answer the start-up and client-first messages (first)
// and the client-final message (final).
func scramAttempt(t *testing.T, addr, user string) (salt string, first, final time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": user, "database": "app"}})
	start := time.Now()
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := fe.Receive(); err != nil || !isSASL(msg) {
		t.Fatalf("start-up: %T %v", msg, err)
	}
	startup := time.Since(start)
	nonce := "rOprNGfwEbeRWgbNEkqO"
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=" + nonce)})
	start = time.Now()
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	first = startup + time.Since(start)
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if err != nil || !ok {
		t.Fatalf("server-first: %T %v", msg, err)
	}
	var iter, serverNonce string
	for _, f := range strings.Split(string(cont.Data), ",") {
		switch {
		case strings.HasPrefix(f, "s="):
			salt = f[2:]
		case strings.HasPrefix(f, "i="):
			iter = f[2:]
		case strings.HasPrefix(f, "r="):
			serverNonce = f[2:]
		}
	}
	fe.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + serverNonce + ",p=dGhpcyBpcyBub3QgdGhlIHByb29mIHlvdSBhcmUgbG9va2luZyBmb3I=")})
	start = time.Now()
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err = fe.Receive()
	final = time.Since(start)
	if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "28P01" {
		t.Fatalf("wrong proof: %T %v, want 28P01", msg, err)
	}
	return salt + " i=" + iter, first, final
}

// An unknown user looks like a known one with a wrong password: the same
// salt at every attempt, the real verifiers' iteration count, and answers
// as fast (issue 18: a fresh salt and a PBKDF2 run per attempt told who
// exists).
func TestSCRAMUnknownUserLooksKnown(t *testing.T) {
	_, addr := testProxy(t, Config{})
	const n = 200
	var known, unknown []time.Duration
	salts := map[string]map[string]bool{"app": {}, "nobody": {}}
	for i := range 2 * n {
		user := []string{"app", "nobody"}[i%2]
		salt, first, final := scramAttempt(t, addr, user)
		salts[user][salt] = true
		if user == "app" {
			known = append(known, first+final)
		} else {
			unknown = append(unknown, first+final)
		}
	}
	for user, s := range salts {
		if len(s) != 1 {
			t.Errorf("%s was offered %d different salts over %d attempts", user, len(s), n)
		}
	}
	ks, us := slices.Sorted(maps.Keys(salts["app"])), slices.Sorted(maps.Keys(salts["nobody"]))
	if strings.Split(ks[0], " ")[1] != strings.Split(us[0], " ")[1] {
		t.Errorf("iteration counts differ: known %s, unknown %s", ks[0], us[0])
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median answer time over %d attempts: known %s, unknown %s", n, mk, mu)
	if ratio := float64(mu) / float64(mk); ratio > 2 || ratio < 0.5 {
		t.Errorf("an unknown user answers in %s, a known one in %s: the time tells them apart", mu, mk)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SCRAM pass-through. A user the auth file knows only by its verifier
// (copied from pg_authid) has no password the pooler could log in with.
// A client that passes the SCRAM exchange hands the pooler its ClientKey
// (the proof XOR the signature); with it and the verifier's ServerKey the
// pooler can run the same exchange with the servers, which keep the same
// verifier. This is what PgBouncer does; libpq-level drivers (pgconn) want
// a password, so this login is written out here.

// passKey is a user's ClientKey learnt from a client, kept with the
// StoredKey it was checked against (a reloaded auth file with another
// verifier makes it useless).
type passKey struct {
	clientKey, storedKey []byte
}

// learnKey records the ClientKey of a client that just authenticated.
func (p *Proxy) learnKey(user string, v Verifier, clientKey []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[user] = passKey{clientKey: clientKey, storedKey: v.StoredKey}
}

// keyFor returns the ClientKey for user's verifier, nil before a client
// of that user has logged in.
func (p *Proxy) keyFor(user string, v Verifier) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.keys[user]
	if !bytes.Equal(k.storedKey, v.StoredKey) {
		return nil
	}
	return k.clientKey
}

// loginWithKey logs in to a node with the client's ClientKey; cfg says
// where and with which sslmode (its TLSConfig and fallbacks, as pgconn
// parsed them).
func loginWithKey(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	cfg *pgconn.Config, v Verifier, clientKey []byte) (net.Conn, *hello, error) {
	tries := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	var last error
	for _, try := range tries {
		addr := net.JoinHostPort(try.Host, strconv.Itoa(int(try.Port)))
		conn, err := dial(ctx, "tcp", addr)
		if err != nil {
			last = err
			continue
		}
		conn = newFastConn(conn)
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		if try.TLSConfig != nil {
			if conn, err = startTLS(ctx, conn, try.TLSConfig); err != nil {
				last = err
				continue
			}
		}
		fe := pgproto3.NewFrontend(conn, conn)
		h, err := scramLogin(fe, cfg.User, cfg.Database, v, clientKey)
		if err != nil {
			conn.Close()
			var pe *pgErr
			if errors.As(err, &pe) && pe.code == "28P01" {
				return nil, nil, err // a wrong key is wrong on every path
			}
			last = err
			continue
		}
		conn.SetDeadline(time.Time{})
		return conn, h, nil
	}
	return nil, nil, last
}

// startTLS asks the server for TLS (SSLRequest) and wraps conn.
func startTLS(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		conn.Close()
		return nil, err
	}
	if answer[0] != sslAccepted {
		conn.Close()
		return nil, errors.New("the server does not accept TLS")
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// hello is what a server says after authentication.
type hello struct {
	pid    uint32
	secret []byte
	params map[string]string
}

// scramLogin sends the start-up message and answers SCRAM-SHA-256 with
// clientKey, checking the server's signature against the verifier.
func scramLogin(fe *pgproto3.Frontend, user, database string, v Verifier, clientKey []byte) (*hello, error) {
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": database}})
	if err := fe.Flush(); err != nil {
		return nil, err
	}
	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	clientFirstBare := "n=,r=" + base64.StdEncoding.EncodeToString(nonce)
	var authMessage string
	h := &hello{params: map[string]string{}}
	for {
		msg, err := fe.Receive()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			if !slices.Contains(m.AuthMechanisms, "SCRAM-SHA-256") {
				return nil, fmt.Errorf("the server offers %v, not SCRAM-SHA-256", m.AuthMechanisms)
			}
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,," + clientFirstBare)})
		case *pgproto3.AuthenticationSASLContinue:
			serverFirst := string(m.Data)
			final, am, err := scramClientFinal(clientFirstBare, serverFirst, v, clientKey)
			if err != nil {
				return nil, err
			}
			authMessage = am
			fe.Send(&pgproto3.SASLResponse{Data: []byte(final)})
		case *pgproto3.AuthenticationSASLFinal:
			want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(v.ServerKey, authMessage))
			if authMessage == "" || !hmac.Equal([]byte(want), bytes.TrimSpace(m.Data)) {
				return nil, errors.New("SCRAM: the server's signature does not match auth_file's verifier")
			}
			continue
		case *pgproto3.AuthenticationOk:
			continue
		case *pgproto3.AuthenticationMD5Password, *pgproto3.AuthenticationCleartextPassword:
			return nil, errors.New("the server asks for a password, not SCRAM: pass-through works only with SCRAM-SHA-256; put the password in auth_file")
		case *pgproto3.ParameterStatus:
			h.params[m.Name] = m.Value
			continue
		case *pgproto3.BackendKeyData:
			h.pid, h.secret = m.ProcessID, m.SecretKey
			continue
		case *pgproto3.ReadyForQuery:
			return h, nil
		case *pgproto3.ErrorResponse:
			return nil, &pgErr{m.Severity, m.Code, m.Message}
		default:
			continue
		}
		if err := fe.Flush(); err != nil {
			return nil, err
		}
	}
}

// scramClientFinal computes the client-final-message from the ClientKey;
// the salt and iteration count must be the verifier's (the same verifier
// on both sides is what makes pass-through possible).
func scramClientFinal(clientFirstBare, serverFirst string, v Verifier, clientKey []byte) (final, authMessage string, err error) {
	var nonce, salt, iter string
	for _, attr := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(attr, "r="):
			nonce = attr[2:]
		case strings.HasPrefix(attr, "s="):
			salt = attr[2:]
		case strings.HasPrefix(attr, "i="):
			iter = attr[2:]
		}
	}
	_, clientNonce, _ := strings.Cut(clientFirstBare, ",r=")
	if !strings.HasPrefix(nonce, clientNonce) || len(nonce) == len(clientNonce) {
		return "", "", errors.New("SCRAM: the server's nonce does not extend ours")
	}
	if salt != base64.StdEncoding.EncodeToString(v.Salt) || iter != strconv.Itoa(v.Iterations) {
		return "", "", errors.New("SCRAM: the server's verifier (salt, iterations) differs from auth_file's: copy it again from pg_authid")
	}
	withoutProof := "c=biws,r=" + nonce
	authMessage = clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := hmacSum(v.StoredKey, authMessage)
	proof := make([]byte, len(sig))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), authMessage, nil
}

package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// slowReader gives its data, then blocks like a client that announced a
// big message and sends nothing more: it ends with io.EOF here.
type slowReader struct{ data []byte }

func (r *slowReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.data)
	r.data = r.data[n:]
	return n, nil
}

// A message header announcing 1 GiB followed by a few bytes costs the
// reader what arrived, not what was announced (issue 18).
func TestMsgReaderGrowsWithWhatArrives(t *testing.T) {
	head := []byte{'Q', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(head[1:], 1<<30)
	rd := newMsgReader(&slowReader{data: append(head, bytes.Repeat([]byte("x"), 100_000)...)}, 1<<30)
	if _, _, err := rd.next(); err == nil {
		t.Fatal("a message cut short came back whole")
	}
	if len(rd.buf) > 1<<20 {
		t.Errorf("buffer of %d bytes after 100 kB of a message announced at 1 GiB", len(rd.buf))
	}
	// Whole messages of any size still come back whole.
	var stream []byte
	for _, size := range []int{0, 10, readerSize, 3*readerSize + 7, 1 << 20} {
		msg := append([]byte{'d', 0, 0, 0, 0}, bytes.Repeat([]byte{byte(size)}, size)...)
		binary.BigEndian.PutUint32(msg[1:], uint32(4+size))
		stream = append(stream, msg...)
	}
	rd = newMsgReader(&slowReader{data: stream}, 1<<30)
	for _, size := range []int{0, 10, readerSize, 3*readerSize + 7, 1 << 20} {
		typ, msg, err := rd.next()
		if err != nil || typ != 'd' || len(msg) != 5+size {
			t.Fatalf("message of %d: %q %d %v", size, typ, len(msg), err)
		}
	}
}

// Before it has logged in a client cannot make the pooler allocate more
// than a SASL message's worth: 100 connections that each announce a 1 GiB
// SASLResponse leave the heap where it was (issue 18: they took 19.5 GB).
func TestPreAuthenticationLengthBomb(t *testing.T) {
	u, err := NewUser("app", "secret")
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Users: map[string]User{"app": u}, MaxPacketSize: 1 << 30, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx, ln)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range 100 {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "app", "database": "app"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if msg, err := fe.Receive(); err != nil {
			t.Fatalf("start-up: %v", err)
		} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
			t.Fatalf("start-up answered %T", msg)
		}
		bomb := []byte{'p', 0, 0, 0, 0}
		binary.BigEndian.PutUint32(bomb[1:], 1<<30)
		if _, err := conn.Write(bomb); err != nil {
			t.Fatal(err)
		}
		// The pooler refuses at once and closes; the connection ends.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(conn); isTimeout(err) {
			t.Fatal("the pooler waits for the announced gigabyte instead of refusing it")
		}
		conn.Close()
	}
	if grew := int64(heap()) - int64(before); grew > 50<<20 {
		t.Errorf("the heap grew %d MB over 100 pre-authentication length bombs", grew>>20)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A big message streams through: what comes out is what went in, around
// it the messages read as usual, and the reader's buffer stays small.
func TestMsgReaderStreamsBigMessages(t *testing.T) {
	mk := func(typ byte, body []byte) []byte {
		msg := append([]byte{typ, 0, 0, 0, 0}, body...)
		binary.BigEndian.PutUint32(msg[1:], uint32(4+len(body)))
		return msg
	}
	body := make([]byte, 5<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	big := mk('D', body)
	in := append(append(mk('T', []byte("before")), big...), mk('C', []byte("after"))...)
	rd := newMsgReader(&slowReader{data: in}, 0)
	if typ, msg, err := rd.next(); err != nil || typ != 'T' || string(msg[5:]) != "before" {
		t.Fatalf("first: %q %q %v", typ, msg, err)
	}
	if typ, n, err := rd.peek(); err != nil || typ != 'D' || n != 4+len(body) || !rd.big() {
		t.Fatalf("peek: %q %d %v big=%v", typ, n, err, rd.big())
	}
	var out bytes.Buffer
	if err := rd.stream(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), big) {
		t.Errorf("streamed %d bytes, not the %d-byte message", out.Len(), len(big))
	}
	if len(rd.buf) > 64<<10 {
		t.Errorf("the reader's buffer grew to %d bytes for a streamed message", len(rd.buf))
	}
	if typ, msg, err := rd.next(); err != nil || typ != 'C' || string(msg[5:]) != "after" {
		t.Fatalf("after: %q %q %v", typ, msg, err)
	}
	// Cut short: an error, not a short message passed on as whole.
	rd = newMsgReader(&slowReader{data: big[:3<<20]}, 0)
	if err := rd.stream(io.Discard); err != io.ErrUnexpectedEOF {
		t.Errorf("a message cut short: %v, want unexpected EOF", err)
	}
}

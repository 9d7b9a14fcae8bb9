package proxy

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// msgReader reads whole protocol messages (type byte, length, body) into a
// buffer it reuses, so that the relay can pass a server's answers on as
// they came, without decoding and encoding each one again. A message is
// valid until the next call.
type msgReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int // largest body accepted; 0 = no limit
}

const readerSize = 16 << 10

func newMsgReader(r io.Reader, max int) *msgReader {
	return &msgReader{r: r, buf: make([]byte, readerSize), max: max}
}

// tooBigError is a message over the reader's limit.
type tooBigError struct{ size, max int }

func (e *tooBigError) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds max_packet_size %d", e.size, e.max)
}

// next returns the next message's type and the whole message.
func (m *msgReader) next() (byte, []byte, error) {
	_, n, err := m.peek()
	if err != nil {
		return 0, nil, err
	}
	if err := m.fill(1 + n); err != nil {
		return 0, nil, err
	}
	msg := m.buf[m.start : m.start+1+n]
	m.start += 1 + n
	return msg[0], msg, nil
}

// peek reads the next message's header: its type and length (the body's
// and the length field's, as on the wire).
func (m *msgReader) peek() (byte, int, error) {
	if err := m.fill(5); err != nil {
		return 0, 0, err
	}
	n := int(binary.BigEndian.Uint32(m.buf[m.start+1:]))
	if n < 4 || n > 1<<30 {
		return 0, 0, fmt.Errorf("invalid message length %d", n)
	}
	if m.max > 0 && n-4 > m.max {
		return 0, 0, &tooBigError{n - 4, m.max}
	}
	return m.buf[m.start], n, nil
}

// streamAbove is the size from which a message the proxy does not look
// into (a row, COPY data) is streamed through instead of buffered whole:
// a 500 MB value costs the pooler a copy buffer, not 500 MB.
const streamAbove = 1 << 20

// big says whether the next message, whose header is buffered, is one to
// stream (streamAbove and over).
func (m *msgReader) big() bool {
	return m.end-m.start >= 5 && int(binary.BigEndian.Uint32(m.buf[m.start+1:])) >= streamAbove
}

// stream copies the next message (peek has read its header) to w as it
// arrives, without holding it whole; w nil drops it.
func (m *msgReader) stream(w io.Writer) error {
	_, n, err := m.peek()
	if err != nil {
		return err
	}
	if w == nil {
		w = io.Discard
	}
	have := min(m.end-m.start, 1+n)
	if _, err := w.Write(m.buf[m.start : m.start+have]); err != nil {
		return err
	}
	m.start += have
	if rest := int64(1 + n - have); rest > 0 {
		if _, err := io.CopyN(w, m.r, rest); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// back puts msg, the message next just returned, back: the next call
// returns it again.
func (m *msgReader) back(msg []byte) { m.start -= len(msg) }

// ready says whether a whole message is buffered (next will not block).
func (m *msgReader) ready() bool {
	avail := m.end - m.start
	return avail >= 5 && avail >= 1+int(binary.BigEndian.Uint32(m.buf[m.start+1:]))
}

// buffered is how many bytes were read but not yet returned.
func (m *msgReader) buffered() int { return m.end - m.start }

// fill reads until want bytes are buffered. The buffer grows with what
// arrives (doubling when full), not with what a message's length
// announces: five bytes claiming a gigabyte cost nothing until the
// gigabyte comes.
func (m *msgReader) fill(want int) error {
	for m.end-m.start < want {
		if m.end == len(m.buf) || m.start+want > len(m.buf) && m.start > 0 {
			have := m.end - m.start
			size := len(m.buf)
			switch {
			case have == len(m.buf):
				size = min(2*size, max(want, readerSize))
			case have == 0 && size > 1<<20:
				size = readerSize // a huge message has gone: give the memory back
			}
			buf := m.buf
			if size != len(m.buf) {
				buf = make([]byte, size)
			}
			copy(buf, m.buf[m.start:m.end])
			m.buf, m.end, m.start = buf, have, 0
		}
		n, err := m.r.Read(m.buf[m.end:])
		m.end += n
		if err != nil && m.end-m.start < want {
			if err == io.EOF && m.end > m.start {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// receive reads the server's next message, decoded when the proxy looks
// inside it (ReadyForQuery, ParameterStatus, ErrorResponse, DataRow);
// any other comes back as nil.
func (sc *serverConn) receive() (pgproto3.BackendMessage, error) {
	typ, msg, err := sc.rd.next()
	if err != nil {
		return nil, err
	}
	var m interface {
		pgproto3.BackendMessage
		Decode([]byte) error
	}
	switch typ {
	case msgReadyForQuery:
		m = &pgproto3.ReadyForQuery{}
	case msgParameterStatus:
		m = &pgproto3.ParameterStatus{}
	case msgErrorResponse:
		m = &pgproto3.ErrorResponse{}
	case msgDataRow:
		m = &pgproto3.DataRow{}
	default:
		return nil, nil
	}
	if err := m.Decode(msg[5:]); err != nil {
		return nil, fmt.Errorf("server message %q: %w", typ, err)
	}
	return m, nil
}

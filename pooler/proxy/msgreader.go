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
	if err := m.fill(5); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(m.buf[m.start+1:]))
	if n < 4 || n > 1<<30 {
		return 0, nil, fmt.Errorf("invalid message length %d", n)
	}
	if m.max > 0 && n-4 > m.max {
		return 0, nil, &tooBigError{n - 4, m.max}
	}
	if err := m.fill(1 + n); err != nil {
		return 0, nil, err
	}
	msg := m.buf[m.start : m.start+1+n]
	m.start += 1 + n
	return msg[0], msg, nil
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
	case 'Z':
		m = &pgproto3.ReadyForQuery{}
	case 'S':
		m = &pgproto3.ParameterStatus{}
	case 'E':
		m = &pgproto3.ErrorResponse{}
	case 'D':
		m = &pgproto3.DataRow{}
	default:
		return nil, nil
	}
	if err := m.Decode(msg[5:]); err != nil {
		return nil, fmt.Errorf("server message %q: %w", typ, err)
	}
	return m, nil
}

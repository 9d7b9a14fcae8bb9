package watchdog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/pooler/watchdog/election"
)

// The heartbeat packet (one UDP datagram, big-endian):
//
//	"RPWD" | version 1 | sender | packet number (8) | sent at, Unix ns (8) |
//	kind (1) | term (8) | seq (8) | flags (1: granted, pre) | to | leader |
//	HMAC-SHA256 of all the above (32)
//
// where sender, to and leader are a length byte and that many bytes.
// The MAC is checked before anything else is read. Packet numbers rise
// across restarts (they start from the sender's clock), so a receiver
// drops any number it has seen from that sender or one below it; the
// timestamp bounds the replay of a packet recorded before the receiver
// (re)started.

const (
	magic      = "RPWD"
	version    = 1
	macSize    = sha256.Size
	maxPacket  = 512
	maxID      = 64
	headerSize = len(magic) + 1
)

// MinKeySize is the shortest shared key accepted.
const MinKeySize = 16

// Sealer signs one member's outgoing messages; safe for concurrent use.
type Sealer struct {
	key    []byte
	id     string
	mu     sync.Mutex
	number uint64
}

// NewSealer starts packet numbers at the clock, so they keep rising across
// restarts.
func NewSealer(key []byte, id string, now time.Time) (*Sealer, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("watchdog key: %d bytes; want at least %d", len(key), MinKeySize)
	}
	if id == "" || len(id) > maxID {
		return nil, fmt.Errorf("member id %q: want 1 to %d bytes", id, maxID)
	}
	return &Sealer{key: key, id: id, number: uint64(now.UnixNano())}, nil
}

// Seal encodes and signs m (From is the sealer's id).
func (s *Sealer) Seal(m election.Message, now time.Time) ([]byte, error) {
	if len(m.To) > maxID || len(m.Leader) > maxID {
		return nil, errors.New("member id too long")
	}
	s.mu.Lock()
	s.number++
	number := s.number
	s.mu.Unlock()
	b := make([]byte, 0, 128)
	b = append(b, magic...)
	b = append(b, version)
	b = appendString(b, s.id)
	b = binary.BigEndian.AppendUint64(b, number)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixNano()))
	b = append(b, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, m.Term)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	var flags byte
	if m.Granted {
		flags |= 1
	}
	if m.Pre {
		flags |= 2
	}
	b = append(b, flags)
	b = appendString(b, m.To)
	b = appendString(b, m.Leader)
	mac := hmac.New(sha256.New, s.key)
	mac.Write(b)
	return mac.Sum(b), nil
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// Opener checks and decodes incoming packets for one member.
type Opener struct {
	key     []byte
	maxSkew time.Duration
	members map[string]bool
	last    map[string]uint64 // newest packet number per sender
}

// NewOpener accepts packets from members signed with key, sent at most
// maxSkew away from the receiver's clock.
func NewOpener(key []byte, members []string, maxSkew time.Duration) (*Opener, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("watchdog key: %d bytes; want at least %d", len(key), MinKeySize)
	}
	o := &Opener{key: key, maxSkew: maxSkew, members: map[string]bool{}, last: map[string]uint64{}}
	for _, m := range members {
		o.members[m] = true
	}
	return o, nil
}

// Errors a packet can get; none changes anything.
var (
	ErrForged   = errors.New("bad MAC (wrong key or altered)")
	ErrReplayed = errors.New("packet number already seen")
	ErrStale    = errors.New("timestamp too far from this clock")
)

// Open authenticates pkt, then decodes it; a packet that fails changes
// nothing, not even the replay window.
func (o *Opener) Open(pkt []byte, now time.Time) (election.Message, error) {
	var m election.Message
	if len(pkt) < headerSize+macSize || len(pkt) > maxPacket {
		return m, fmt.Errorf("packet of %d bytes", len(pkt))
	}
	body, sum := pkt[:len(pkt)-macSize], pkt[len(pkt)-macSize:]
	mac := hmac.New(sha256.New, o.key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return m, ErrForged
	}
	r := reader{b: body}
	if string(r.bytes(len(magic))) != magic || r.byte() != version {
		return m, errors.New("not a rampart watchdog packet of version 1")
	}
	m.From = r.string()
	number, sent := r.uint64(), int64(r.uint64())
	m.Kind = election.Kind(r.byte())
	m.Term, m.Seq = r.uint64(), r.uint64()
	flags := r.byte()
	m.Granted, m.Pre = flags&1 != 0, flags&2 != 0
	m.To, m.Leader = r.string(), r.string()
	switch {
	case r.err != nil || len(r.b) != 0:
		return election.Message{}, errors.New("malformed packet")
	case !o.members[m.From]:
		return election.Message{}, fmt.Errorf("sender %q is not a member", m.From)
	case m.Kind < election.Heartbeat || m.Kind > election.Hello || flags&^3 != 0:
		return election.Message{}, fmt.Errorf("unknown kind %d or flags %#x", m.Kind, flags)
	case number <= o.last[m.From]:
		return election.Message{}, ErrReplayed
	}
	if skew := now.Sub(time.Unix(0, sent)); skew > o.maxSkew || -skew > o.maxSkew {
		return election.Message{}, fmt.Errorf("%w: %s", ErrStale, skew.Round(time.Millisecond))
	}
	o.last[m.From] = number
	return m, nil
}

// reader reads fields; the first short read sets err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errors.New("short packet")
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte     { return r.bytes(1)[0] }
func (r *reader) uint64() uint64 { return binary.BigEndian.Uint64(r.bytes(8)) }
func (r *reader) string() string { return string(r.bytes(int(r.byte()))) }

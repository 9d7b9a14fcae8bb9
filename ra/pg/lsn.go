package pg

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a write-ahead log position.
type LSN uint64

// ParseLSN parses PostgreSQL's text form "X/Y" (two hexadecimal halves).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("LSN %q: want X/Y in hexadecimal", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q: want X/Y in hexadecimal", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// Sub returns l - o in bytes, 0 when o is ahead.
func (l LSN) Sub(o LSN) uint64 {
	if o > l {
		return 0
	}
	return uint64(l - o)
}

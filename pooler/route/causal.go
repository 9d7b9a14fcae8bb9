package route

import (
	"bytes"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// The token of causal reads across connections (read_your_writes = lsn):
// a client that writes on one connection and must see its writes when it
// reads on another carries the position from the first
// (SHOW rampart.last_write_lsn) to the second
// (SET rampart.read_after = '<lsn>'). The pooler answers both itself.
const (
	LastWriteLSNParam = "rampart.last_write_lsn"
	ReadAfterParam    = "rampart.read_after"
)

// CausalToken is a SHOW or SET of the token, sent on its own.
type CausalToken struct {
	Show bool   // SHOW rampart.last_write_lsn
	Set  string // SET rampart.read_after = Set: the position, as written
}

// ParseCausalToken says whether sql is exactly one SHOW of
// LastWriteLSNParam or SET of ReadAfterParam, and which.
func ParseCausalToken(sql string) (CausalToken, bool) {
	if !MaybeCausalToken([]byte(sql)) {
		return CausalToken{}, false
	}
	switch s := onlyStatement(sql).(type) {
	case *pg_query.Node_VariableShowStmt:
		return CausalToken{Show: true}, strings.EqualFold(s.VariableShowStmt.Name, LastWriteLSNParam)
	case *pg_query.Node_VariableSetStmt:
		vs := s.VariableSetStmt
		if !strings.EqualFold(vs.Name, ReadAfterParam) || vs.Kind != pg_query.VariableSetKind_VAR_SET_VALUE || vs.IsLocal || len(vs.Args) != 1 {
			return CausalToken{}, false
		}
		c := vs.Args[0].GetAConst()
		if c == nil || c.GetSval() == nil {
			return CausalToken{}, false
		}
		return CausalToken{Set: c.GetSval().GetSval()}, true
	}
	return CausalToken{}, false
}

// MaybeCausalToken is ParseCausalToken's quick no, on a query's raw text
// and without a parse or a copy: false for anything but a SHOW or a SET
// (every simple query outside a transaction block is asked).
func MaybeCausalToken(q []byte) bool {
	q = bytes.TrimLeft(q, " \t\r\n")
	return hasPrefixFold(q, "show ") || hasPrefixFold(q, "set ")
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

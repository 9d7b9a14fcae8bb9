package route

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Target is where a statement may run.
type Target int

const (
	// AnyServer: provably read-only; a standby may run it.
	AnyServer Target = iota
	// Primary: writes, or might.
	Primary
)

func (t Target) String() string {
	if t == AnyServer {
		return "any"
	}
	return "primary"
}

// Txn is what a statement does to the client's transaction.
type Txn int

const (
	TxnNone          Txn = iota
	TxnBegin             // BEGIN, START TRANSACTION
	TxnBeginReadOnly     // BEGIN READ ONLY: the whole block may run on a standby
	TxnEnd               // COMMIT, ROLLBACK, PREPARE TRANSACTION, …
	TxnOther             // SAVEPOINT, RELEASE, ROLLBACK TO: inside a block
)

// Verdict is the class of one query string (all its statements).
type Verdict struct {
	Target Target
	// Pin: it leaves session state on the server that the proxy cannot
	// carry elsewhere (SET ROLE, RESET ALL, LISTEN, PREPARE, session
	// advisory locks, cursors WITH HOLD, temporary tables): the client
	// keeps that server connection until it ends or resets it.
	Pin bool
	Txn Txn
	// Reason says why the target is the primary or why the client is
	// pinned, for logs and SHOW; "" for a plain read.
	Reason string
	// Deallocates names the prepared statements it drops (DEALLOCATE name),
	// AllStatements for all of them (DEALLOCATE ALL, DISCARD ALL): whoever
	// tracks them must forget them too.
	Deallocates []string
	// Sets names the parameters it sets or resets for the session (SET,
	// RESET): instead of pinning the client, the proxy learns the values
	// and gives them to every server connection the client uses.
	Sets []string
	// Listen: LISTEN; the session's server sends notifications whenever
	// they come, also while the client is idle.
	Listen bool
	// Subscribe: LISTEN or UNLISTEN (ParseSubscription says which), which
	// a transaction-mode pooler may answer itself.
	Subscribe bool
}

// AllStatements in Verdict.Deallocates: every prepared statement.
const AllStatements = "\x00all"

// Volatility is PostgreSQL's pg_proc.provolatile of a function.
type Volatility byte

const (
	Unknown   Volatility = 0
	Immutable Volatility = 'i'
	Stable    Volatility = 's'
	Volatile  Volatility = 'v'
)

// Functions tells what the pooler learnt about functions from the
// primary's catalogue. Names come lower-case, schema-qualified when the
// statement qualifies them ("pg_catalog.now") and bare otherwise ("now").
type Functions interface {
	Volatility(name string) Volatility
}

// Rules are the parts of classification the configuration sets.
type Rules struct {
	Functions Functions
	// WriteFunctions are functions that write although the catalogue calls
	// them stable or immutable (mislabelled user functions).
	WriteFunctions map[string]bool
}

// Functions that write whatever their volatility says.
var writeFunctions = set(
	"nextval", "setval", "lastval", "currval", "pg_notify", "txid_current", "pg_current_xact_id",
	"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
	"pg_try_advisory_xact_lock_shared",
	"lo_create", "lo_creat", "lo_import", "lo_unlink", "lo_open", "lowrite", "lo_put", "lo_from_bytea",
	"lo_truncate", "lo_truncate64",
	"pg_logical_emit_message", "pg_create_restore_point", "pg_switch_wal", "pg_promote",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "dblink_exec", "dblink",
)

// Functions that leave state in the session (settings, session locks,
// connections): the client keeps its server.
var sessionFunctions = set(
	"set_config", "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
	"pg_try_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
	"pg_advisory_unlock_all", "dblink_connect",
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Volatile functions that only read: a standby runs them as well.
var readOnlyVolatile = set(
	"random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "pg_sleep",
	"pg_is_in_recovery", "pg_last_wal_replay_lsn", "pg_last_wal_receive_lsn",
	"pg_last_xact_replay_timestamp", "pg_backend_pid", "inet_server_addr", "inet_server_port",
)

// Classify classifies one query string, which may hold several statements
// (simple protocol). It never fails: what it cannot parse goes to the
// primary, and the primary reports the syntax error.
func Classify(sql string, rules Rules) Verdict {
	if strings.IndexByte(sql, 0) >= 0 {
		// The parser (C) would stop at it and judge only what precedes;
		// PostgreSQL rejects such a message.
		return Verdict{Target: Primary, Reason: "NUL byte in the query"}
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return Verdict{Target: Primary, Reason: "not parsed: " + err.Error()}
	}
	if len(tree.Stmts) == 0 {
		return Verdict{} // empty query
	}
	var v Verdict
	for _, raw := range tree.Stmts {
		v = merge(v, statement(raw.Stmt, rules), len(tree.Stmts) > 1)
	}
	return v
}

// Merge combines the verdicts of statements that run together on one
// server (an extended-protocol batch).
func Merge(a, b Verdict) Verdict { return merge(a, b, false) }

// merge combines the verdicts of the statements of one query string. A
// string that also controls the transaction goes to the primary whole.
func merge(a, b Verdict, multi bool) Verdict {
	out := a
	if len(b.Deallocates) > 0 {
		out.Deallocates = slices.Concat(a.Deallocates, b.Deallocates)
	}
	out.Listen = a.Listen || b.Listen
	out.Subscribe = a.Subscribe || b.Subscribe
	if len(b.Sets) > 0 {
		out.Sets = slices.Concat(a.Sets, b.Sets)
	}
	if b.Target == Primary && out.Target != Primary {
		out.Target, out.Reason = Primary, b.Reason
	}
	if b.Pin && !out.Pin {
		out.Pin = true
		if out.Reason == "" {
			out.Reason = b.Reason
		}
	}
	if b.Txn != TxnNone {
		out.Txn = b.Txn
		if multi && out.Target != Primary {
			out.Target, out.Reason = Primary, "transaction control among several statements"
		}
	}
	return out
}

func primary(format string, args ...any) Verdict {
	return Verdict{Target: Primary, Reason: fmt.Sprintf(format, args...)}
}

// statement classifies one parsed statement.
func statement(n *pg_query.Node, rules Rules) Verdict {
	switch s := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt, *pg_query.Node_VariableShowStmt:
		return reads(n, rules)
	case *pg_query.Node_ExplainStmt:
		return statement(s.ExplainStmt.Query, rules)
	case *pg_query.Node_CopyStmt:
		c := s.CopyStmt
		switch {
		case c.IsFrom:
			return primary("COPY FROM writes")
		case c.IsProgram:
			return primary("COPY TO PROGRAM")
		case c.Query != nil:
			return statement(c.Query, rules)
		}
		return Verdict{}
	case *pg_query.Node_TransactionStmt:
		return transaction(s.TransactionStmt)
	case *pg_query.Node_VariableSetStmt:
		vs := s.VariableSetStmt
		name := strings.ToLower(vs.Name)
		switch {
		case vs.Kind == pg_query.VariableSetKind_VAR_SET_MULTI && name == "transaction":
			// SET TRANSACTION …: applies to the block it is in, whose
			// server is chosen; READ WRITE needs the primary.
			if readWriteOption(vs.Args) {
				return Verdict{Target: Primary, Txn: TxnOther, Reason: "SET TRANSACTION READ WRITE"}
			}
			return Verdict{Txn: TxnOther}
		case vs.IsLocal:
			return Verdict{} // SET LOCAL: ends with the transaction
		case vs.Kind == pg_query.VariableSetKind_VAR_RESET_ALL, vs.Kind == pg_query.VariableSetKind_VAR_SET_MULTI,
			name == "role", name == "session_authorization":
			return Verdict{Target: Primary, Pin: true, Reason: "SET " + name + " stays with the session"}
		}
		// SET name = value, SET name TO DEFAULT, RESET name: a session
		// parameter the proxy carries from server to server.
		return Verdict{Sets: []string{name}}
	case *pg_query.Node_DiscardStmt:
		v := Verdict{Target: Primary, Reason: "DISCARD"}
		if s.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
			v.Deallocates = []string{AllStatements}
		}
		return v
	case *pg_query.Node_ListenStmt:
		return Verdict{Target: Primary, Pin: true, Listen: true, Subscribe: true, Reason: "LISTEN stays with the session"}
	case *pg_query.Node_UnlistenStmt:
		return Verdict{Target: Primary, Subscribe: true, Reason: "UNLISTEN"}
	case *pg_query.Node_PrepareStmt:
		v := statement(s.PrepareStmt.Query, rules)
		v.Pin, v.Reason = true, "PREPARE stays with the session"
		return v
	case *pg_query.Node_ExecuteStmt:
		return Verdict{Target: Primary, Pin: true, Reason: "prepared statements live in the session"}
	case *pg_query.Node_DeallocateStmt:
		name := s.DeallocateStmt.Name
		if s.DeallocateStmt.Isall || name == "" {
			name = AllStatements
		}
		return Verdict{Target: Primary, Pin: true, Reason: "prepared statements live in the session", Deallocates: []string{name}}
	case *pg_query.Node_DeclareCursorStmt:
		v := statement(s.DeclareCursorStmt.Query, rules)
		if s.DeclareCursorStmt.Options&0x0020 != 0 { // CURSOR_OPT_HOLD
			v.Pin, v.Reason = true, "cursor WITH HOLD outlives the transaction"
		}
		return v
	case *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt:
		return Verdict{} // on the cursor's server: the transaction is pinned already
	case *pg_query.Node_CreateStmt:
		if rel := s.CreateStmt.GetRelation(); rel != nil && rel.Relpersistence == "t" {
			return Verdict{Target: Primary, Pin: true, Reason: "temporary table lives in the session"}
		}
	}
	return primary("%s writes or changes the server", kind(n))
}

// reads checks a statement that reads at most: no data-modifying CTE, no
// SELECT INTO, no row locks, no function that writes.
func reads(n *pg_query.Node, rules Rules) Verdict {
	var v Verdict
	walk(n.ProtoReflect(), func(m protoreflect.Message) {
		if v.Target == Primary && v.Pin {
			return
		}
		switch x := m.Interface().(type) {
		case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
			v = merge(v, primary("data-modifying WITH"), false)
		case *pg_query.SelectStmt:
			if x.IntoClause != nil {
				v = merge(v, primary("SELECT INTO creates a table"), false)
			}
			if len(x.LockingClause) > 0 {
				v = merge(v, primary("FOR UPDATE/SHARE locks rows"), false)
			}
		case *pg_query.FuncCall:
			v = merge(v, function(funcName(x.Funcname), rules), false)
		}
	})
	return v
}

// function classifies a call of the named function.
func function(name string, rules Rules) Verdict {
	bare := name[strings.LastIndexByte(name, '.')+1:]
	if rules.WriteFunctions[name] || rules.WriteFunctions[bare] {
		return primary("%s() is listed as writing", name)
	}
	if sessionFunctions[bare] {
		return Verdict{Target: Primary, Pin: true, Reason: bare + "() leaves state in the session"}
	}
	if writeFunctions[bare] {
		return primary("%s() writes", bare)
	}
	if readOnlyVolatile[bare] {
		return Verdict{}
	}
	vol := Unknown
	if rules.Functions != nil {
		vol = rules.Functions.Volatility(name)
	}
	switch vol {
	case Immutable, Stable:
		return Verdict{}
	case Volatile:
		return primary("%s() is volatile", name)
	}
	return primary("%s() is not in the catalogue", name)
}

func funcName(parts []*pg_query.Node) string {
	var names []string
	for _, p := range parts {
		names = append(names, strings.ToLower(p.GetString_().GetSval()))
	}
	return strings.Join(names, ".")
}

func transaction(t *pg_query.TransactionStmt) Verdict {
	switch t.Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		if readOnlyOption(t.Options) {
			return Verdict{Txn: TxnBeginReadOnly}
		}
		return Verdict{Target: Primary, Txn: TxnBegin, Reason: "transaction block"}
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg_query.TransactionStmtKind_TRANS_STMT_RELEASE,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return Verdict{Txn: TxnOther}
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED, pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED,
		pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		return Verdict{Target: Primary, Txn: TxnEnd, Reason: "two-phase commit"}
	}
	return Verdict{Txn: TxnEnd}
}

// readOnlyOption reports whether transaction options say READ ONLY.
func readOnlyOption(opts []*pg_query.Node) bool {
	v, ok := readOnly(opts)
	return ok && v
}

// readWriteOption reports whether transaction options say READ WRITE.
func readWriteOption(opts []*pg_query.Node) bool {
	v, ok := readOnly(opts)
	return ok && !v
}

func readOnly(opts []*pg_query.Node) (value, set bool) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d != nil && d.Defname == "transaction_read_only" {
			return d.Arg.GetAConst().GetIval().GetIval() == 1, true
		}
	}
	return false, false
}

// kind names a statement node ("InsertStmt").
func kind(n *pg_query.Node) string {
	name := fmt.Sprintf("%T", n.GetNode())
	return strings.TrimPrefix(name, "*pg_query.Node_")
}

// walk calls visit for m and every message below it.
func walk(m protoreflect.Message, visit func(protoreflect.Message)) {
	visit(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), visit)
			}
		default:
			walk(v.Message(), visit)
		}
		return true
	})
}

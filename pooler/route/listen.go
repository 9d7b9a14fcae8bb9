package route

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Subscription is a LISTEN or UNLISTEN statement sent on its own, which a
// transaction-mode pooler answers itself: it listens on the primary for
// its clients and passes each notification on to those that listen.
type Subscription struct {
	Listen  bool   // LISTEN; else UNLISTEN
	Channel string // as PostgreSQL folds it; "" with UNLISTEN *: every channel
}

// ParseSubscription says whether sql is exactly one LISTEN or UNLISTEN
// statement, and which.
func ParseSubscription(sql string) (Subscription, bool) {
	switch s := onlyStatement(sql).(type) {
	case *pg_query.Node_ListenStmt:
		return Subscription{Listen: true, Channel: s.ListenStmt.Conditionname}, s.ListenStmt.Conditionname != ""
	case *pg_query.Node_UnlistenStmt:
		return Subscription{Channel: s.UnlistenStmt.Conditionname}, true
	}
	return Subscription{}, false
}

// onlyStatement is the parse tree's node of sql when sql is exactly one
// statement (nil otherwise, or with a NUL the parser would stop at).
func onlyStatement(sql string) any {
	if strings.IndexByte(sql, 0) >= 0 {
		return nil
	}
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return nil
	}
	return tree.Stmts[0].Stmt.Node
}

package chaos

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/test/chaos/history"
)

// Classify says what a client learnt from an operation's error: nothing
// wrong (ok), a definite no (failed: the statement never reached a server,
// or the server refused it), or maybe (unknown: the answer was lost after
// the statement was sent, so it may have committed).
func Classify(err error) history.Outcome {
	if err == nil {
		return history.OK
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:min(2, len(pe.Code))] {
		// Operator intervention (a backend terminated at shutdown or
		// failover, possibly while its commit waited for a standby:
		// committed locally), connection exceptions and system errors
		// say nothing of the commit.
		case "57", "08", "58", "XX":
			return history.Unknown
		}
		if pe.Code == "40003" { // statement completion unknown (durable_reads)
			return history.Unknown
		}
		return history.Failed // the server refused it: nothing happened
	}
	// pgx says so when nothing went out (a refused connection, a dial
	// timeout, a write that failed before the first byte).
	if pgconn.SafeToRetry(err) {
		return history.Failed
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return history.Failed
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return history.Unknown
	}
	return history.Unknown // a lost connection mid-statement
}

package proxy

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Answers, message for message. A server answers the messages it is sent
// in order: Parse with ParseComplete, Bind with BindComplete, Close with
// CloseComplete, Describe of a statement with ParameterDescription then
// RowDescription or NoData, Describe of a portal with RowDescription or
// NoData, Execute with rows and then CommandComplete, EmptyQueryResponse
// or PortalSuspended (or a COPY), Sync and Query with ReadyForQuery, Flush
// with nothing. After an ErrorResponse in the extended protocol it skips
// every message until the next Sync. NoticeResponse, NotificationResponse
// and ParameterStatus come at any time.
//
// The tracker keeps, for a server connection, the messages sent and not
// yet answered, so that the relay knows which answers are the proxy's own
// (the Parse and Close it adds to prepare a client's statement where it is
// missing), when a Flush has been answered, and which messages the server
// skipped after an error: their effects on prepared statements are undone.

// expect is one message sent to the server and not yet answered.
type expect struct {
	typ      byte // the client message's type: msgParse, msgBind, … (protocol.go)
	object   byte // Describe and Close: objStatement or objPortal
	injected bool // the proxy's own: its answer is not the client's
	name     string
	query    string          // Parse: the statement's text
	prev     *pgproto3.Parse // a client's Parse or Close of a statement: the client's statement before it
	started  bool            // Describe of a statement: ParameterDescription seen; Query: answering
}

// tracker is the unanswered messages of one server connection, oldest
// first.
type tracker struct {
	q []expect
	// skipping: the server met an error and skips every message until the
	// next Sync, which has not been sent yet.
	skipping bool
}

// outcome is what an answer means.
type outcome struct {
	forward bool     // pass it on to the client
	done    *expect  // the message this answer completed (nil: none yet)
	failed  *expect  // the message an ErrorResponse failed
	skipped []expect // messages the server will skip after that error
	ready   bool     // ReadyForQuery: a Sync or Query completed
}

// sent records a message as sent. One sent while the server skips (after
// an error, before the next Sync) will never be answered: it comes back
// as skipped.
func (t *tracker) sent(e expect) (skipped bool) {
	if e.typ == msgFlush {
		return false // Flush: no answer
	}
	if t.skipping && e.typ != msgSync {
		return true
	}
	if e.typ == msgSync {
		t.skipping = false
	}
	t.q = append(t.q, e)
	return false
}

// idle says whether every message sent has been answered.
func (t *tracker) idle() bool { return len(t.q) == 0 }

// answer takes the server's next message (its type) and says what it means.
func (t *tracker) answer(typ byte) (outcome, error) {
	switch typ {
	case msgNoticeResponse, msgNotificationResponse, msgParameterStatus: // any time
		return outcome{forward: true}, nil
	}
	if len(t.q) > 0 && t.q[0].typ == msgFunctionCall {
		t.q[0].typ = msgQuery // a FunctionCall is answered as a query is: up to ReadyForQuery
	}
	if len(t.q) == 0 {
		return outcome{}, fmt.Errorf("server message %q with nothing to answer", typ)
	}
	head := &t.q[0]
	pop := func() outcome {
		e := t.q[0]
		t.q = t.q[1:]
		return outcome{forward: !e.injected, done: &e}
	}
	if head.typ == msgQuery {
		// A simple query: anything up to ReadyForQuery belongs to it.
		head.started = true
		if typ == msgReadyForQuery {
			o := pop()
			o.ready, o.forward = true, true
			return o, nil
		}
		return outcome{forward: true}, nil
	}
	switch typ {
	case msgErrorResponse:
		e := t.q[0]
		t.q = t.q[1:]
		o := outcome{forward: true, failed: &e}
		if e.typ == msgSync {
			// An error at Sync (a commit that failed): ReadyForQuery follows.
			t.q = append([]expect{e}, t.q...)
			o.failed = nil
			return o, nil
		}
		for len(t.q) > 0 && t.q[0].typ != msgSync {
			o.skipped = append(o.skipped, t.q[0])
			t.q = t.q[1:]
		}
		if len(t.q) == 0 {
			t.skipping = true // the Sync is still to come
		}
		return o, nil
	case msgParseComplete:
		if head.typ == msgParse {
			return pop(), nil
		}
	case msgBindComplete:
		if head.typ == msgBind {
			return pop(), nil
		}
	case msgCloseComplete:
		if head.typ == msgClose {
			return pop(), nil
		}
	case msgParameterDescription:
		if head.typ == msgDescribe && head.object == objStatement && !head.started {
			head.started = true
			return outcome{forward: !head.injected}, nil
		}
	case msgRowDescription, msgNoData:
		if head.typ == msgDescribe && (head.object == objPortal || head.started) {
			return pop(), nil
		}
	case msgDataRow, msgCopyOutResponse, msgCopyData, msgCopyDone:
		// Rows, and COPY TO STDOUT's start, data and end, of an Execute.
		if head.typ == msgExecute {
			return outcome{forward: true}, nil
		}
	case msgCopyInResponse:
		if head.typ == msgExecute {
			// COPY FROM STDIN: the client sends the data now. The server
			// ignores a Sync it reads during the COPY: none is answered.
			rest := t.q[1:]
			for len(rest) > 0 && rest[0].typ == msgSync {
				rest = rest[1:]
			}
			t.q = append(t.q[:1], rest...)
			return outcome{forward: true}, nil
		}
	case msgCommandComplete, msgEmptyQueryResponse, msgPortalSuspended:
		if head.typ == msgExecute {
			return pop(), nil
		}
	case msgReadyForQuery:
		if head.typ == msgSync {
			o := pop()
			o.ready = true
			return o, nil
		}
	}
	return outcome{}, fmt.Errorf("server message %q does not answer %q", typ, head.typ)
}

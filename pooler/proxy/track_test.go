package proxy

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rampart-ha/rampart/pooler/route"
)

// answers feeds the tracker a server's answers and returns what was
// forwarded (the types), or the first error.
func answers(t *testing.T, tr *tracker, typs string) (forwarded string, outs []outcome) {
	t.Helper()
	for i := 0; i < len(typs); i++ {
		o, err := tr.answer(typs[i])
		if err != nil {
			t.Fatalf("answer %q (after %q): %v", typs[i], typs[:i], err)
		}
		if o.forward {
			forwarded += string(typs[i])
		}
		outs = append(outs, o)
	}
	return forwarded, outs
}

func send(tr *tracker, es ...expect) (skipped []expect) {
	for _, e := range es {
		if tr.sent(e) {
			skipped = append(skipped, e)
		}
	}
	return skipped
}

func TestTrackerSwallowsTheProxysOwnAnswers(t *testing.T) {
	var tr tracker
	// Close s1 (ours), Parse s1 (ours), Bind, Describe portal, Execute, Sync.
	send(&tr, expect{typ: 'C', object: 'S', name: "s1", injected: true}, expect{typ: 'P', name: "s1", injected: true},
		expect{typ: 'B'}, expect{typ: 'D', object: 'P'}, expect{typ: 'E'}, expect{typ: 'S'})
	got, _ := answers(t, &tr, "312TDDCZ")
	if got != "2TDDCZ" || !tr.idle() {
		t.Errorf("forwarded %q (idle %v), want the client's answers only: 2TDDCZ", got, tr.idle())
	}
}

// pgx's batches: several unnamed statements, each Parse, Describe, Bind,
// Execute, one Sync at the end.
func TestTrackerUnnamedStatementsInOneBatch(t *testing.T) {
	var tr tracker
	for range 3 {
		send(&tr, expect{typ: 'P'}, expect{typ: 'D', object: 'S'}, expect{typ: 'B'}, expect{typ: 'E'})
	}
	send(&tr, expect{typ: 'S'})
	got, _ := answers(t, &tr, "1tT2DC"+"1tn2C"+"1tT2DDsZ")
	if got != "1tT2DC1tn2C1tT2DDsZ" || !tr.idle() {
		t.Errorf("forwarded %q, want everything in order", got)
	}
}

// After an error the server skips everything up to Sync: those messages
// are never answered, and the tracker says which they were.
func TestTrackerErrorSkipsToSync(t *testing.T) {
	var tr tracker
	send(&tr, expect{typ: 'P', name: "a"}, expect{typ: 'B'}, expect{typ: 'E'}, expect{typ: 'P', name: "b", injected: true}, expect{typ: 'B'}, expect{typ: 'S'},
		expect{typ: 'P', name: "c"}, expect{typ: 'S'})
	got, outs := answers(t, &tr, "1E"+"Z"+"1Z")
	if got != "1EZ1Z" || !tr.idle() {
		t.Fatalf("forwarded %q", got)
	}
	e := outs[1]
	var names []string
	for _, s := range e.skipped {
		names = append(names, string(s.typ)+s.name)
	}
	if e.failed == nil || e.failed.typ != 'B' || strings.Join(names, " ") != "E Pb B" {
		t.Errorf("failed %+v, skipped %v; want the Bind failed and E, Pb, B skipped", e.failed, names)
	}
}

// A Flush is answered when everything sent has been; an error before the
// Sync is sent leaves the server skipping what follows.
func TestTrackerFlushThenError(t *testing.T) {
	var tr tracker
	send(&tr, expect{typ: 'P', name: "x"}, expect{typ: 'H'})
	if _, _ = answers(t, &tr, "E"); !tr.idle() || !tr.skipping {
		t.Fatalf("after the error: idle %v, skipping %v", tr.idle(), tr.skipping)
	}
	if skipped := send(&tr, expect{typ: 'B'}, expect{typ: 'E'}); len(skipped) != 2 {
		t.Errorf("messages sent while the server skips: %v, want both skipped", skipped)
	}
	send(&tr, expect{typ: 'S'})
	if got, _ := answers(t, &tr, "Z"); got != "Z" || !tr.idle() || tr.skipping {
		t.Errorf("the Sync: %q idle %v skipping %v", got, tr.idle(), tr.skipping)
	}
}

func TestTrackerSimpleQueryAndCopy(t *testing.T) {
	var tr tracker
	send(&tr, expect{typ: 'Q'})
	if got, _ := answers(t, &tr, "TDCNAGCEZ"); got != "TDCNAGCEZ" || !tr.idle() {
		t.Errorf("a query's answers: %q", got)
	}
	// COPY FROM STDIN through the extended protocol: a Sync sent before the
	// data is ignored by the server.
	send(&tr, expect{typ: 'B'}, expect{typ: 'E'}, expect{typ: 'S'})
	if got, _ := answers(t, &tr, "2GC"); got != "2GC" || !tr.idle() {
		t.Errorf("extended COPY: %q idle %v", got, tr.idle())
	}
	// An error at Sync (a deferred constraint at commit).
	send(&tr, expect{typ: 'E'}, expect{typ: 'S'})
	if got, _ := answers(t, &tr, "CEZ"); got != "CEZ" || !tr.idle() {
		t.Errorf("error at Sync: %q", got)
	}
}

func TestTrackerRefusesWhatAnswersNothing(t *testing.T) {
	var tr tracker
	if _, err := tr.answer('1'); err == nil {
		t.Error("ParseComplete with nothing sent: no error")
	}
	send(&tr, expect{typ: 'B'})
	if _, err := tr.answer('1'); err == nil {
		t.Error("ParseComplete for a Bind: no error")
	}
}

// The PIDs the proxy hands out cannot be a process's (Linux's PID_MAX_LIMIT
// is 2^22) and fit PostgreSQL's int32.
func TestCancelKeyPIDs(t *testing.T) {
	for range 10000 {
		k, err := newCancelKey()
		if err != nil {
			t.Fatal(err)
		}
		if k.pid <= 1<<22 || k.pid > 1<<31-1 {
			t.Fatalf("pid %d", k.pid)
		}
	}
}

// A DEALLOCATE of a statement the client prepared on another server
// connection finds it here: prepareMissing prepares it before the unit
// (pgx's TestDeallocateMissingPreparedStatementStillClearsFromPreparedStatementMap
// failed with 26000 in transaction mode); one this connection holds
// already, or one the client never prepared, is left alone.
func TestPrepareMissingBeforeDeallocate(t *testing.T) {
	ps := &pgproto3.Parse{Name: "ps", Query: "select $1::text"}
	s := &session{stmts: map[string]*pgproto3.Parse{"ps": ps}}
	q, _ := (&pgproto3.Query{String: "deallocate ps"}).Encode(nil)
	msgs := []unitMsg{{raw: q}}
	types := func(out []byte) string {
		var got []byte
		for len(out) >= 5 {
			got = append(got, out[0])
			out = out[1+int(binary.BigEndian.Uint32(out[1:5])):]
		}
		return string(got)
	}
	sc := &serverConn{prepared: map[string]string{}}
	if got := types(s.prepareMissing(sc, msgs, []string{"ps"})); got != "PQ" || sc.prepared["ps"] != ps.Query {
		t.Errorf("ps prepared elsewhere: sent %q (prepared %v), want Parse then the Query", got, sc.prepared)
	}
	sc = &serverConn{prepared: map[string]string{"ps": ps.Query}}
	if got := types(s.prepareMissing(sc, msgs, []string{"ps"})); got != "Q" {
		t.Errorf("ps prepared here: sent %q, want the Query alone", got)
	}
	sc = &serverConn{prepared: map[string]string{}}
	if got := types(s.prepareMissing(sc, msgs, []string{"other", route.AllStatements})); got != "Q" {
		t.Errorf("a name the client never prepared, and DISCARD ALL: sent %q, want the Query alone", got)
	}
}

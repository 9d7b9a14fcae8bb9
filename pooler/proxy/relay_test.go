package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The relay's rules, each against a scripted server (script_test.go).

// A statement the client prepared on a server connection that is gone is
// prepared again on the next one before its Bind; the client, which
// prepared it once, sees no second ParseComplete. The old connection, of
// a primary that went away, is closed rather than reused.
func TestRelayPreparesAgainOnANewServer(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	sc.play(then(steps(step{"PS", nil, []pgproto3.BackendMessage{parseComplete, idle}}), (*serverEnd).closed))
	c := sc.client()
	c.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{})
	c.expect("1Z")
	sc.restartPrimary()
	sc.play(steps(step{"PBES", func(msgs []pgproto3.FrontendMessage) error {
		if p := msgs[0].(*pgproto3.Parse); p.Name != "s1" || p.Query != "SELECT 1" {
			return fmt.Errorf("prepared %q as %q, want s1 as SELECT 1", p.Name, p.Query)
		}
		return nil
	}, []pgproto3.BackendMessage{parseComplete, bindComplete, row("1"), complete("SELECT 1"), idle}}))
	c.send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	c.expect("2DCZ")
	sc.done(2)
}

// A server connection that holds another statement under the client's
// name (the client closed and re-prepared it on another connection) gets
// a Close and the client's Parse first; the client sees neither answer.
func TestRelayReplacesAStaleStatement(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 2})
	// Connection A: client x's transaction, then client y's re-prepare,
	// then x's second transaction.
	sc.play(steps(
		step{"Q", nil, []pgproto3.BackendMessage{complete("BEGIN"), inTx}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("COMMIT"), idle}},
		step{"CPS", nil, []pgproto3.BackendMessage{closeComplete, parseComplete, idle}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("BEGIN"), inTx}},
	))
	// Connection B: y prepares s1 as SELECT 1, later binds the s1 it has
	// re-prepared as SELECT 2 meanwhile (on A).
	sc.play(steps(
		step{"PS", nil, []pgproto3.BackendMessage{parseComplete, idle}},
		step{"CPBES", func(msgs []pgproto3.FrontendMessage) error {
			if cl := msgs[0].(*pgproto3.Close); cl.ObjectType != 'S' || cl.Name != "s1" {
				return fmt.Errorf("closed %c %q first, want statement s1", cl.ObjectType, cl.Name)
			}
			if p := msgs[1].(*pgproto3.Parse); p.Name != "s1" || p.Query != "SELECT 2" {
				return fmt.Errorf("prepared %q as %q, want s1 as SELECT 2", p.Name, p.Query)
			}
			return nil
		}, []pgproto3.BackendMessage{closeComplete, parseComplete, bindComplete, row("2"), complete("SELECT 1"), idle}},
	))
	x, y := sc.client(), sc.client()
	x.send(&pgproto3.Query{String: "BEGIN"})
	x.expect("CZ") // x holds A
	y.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{})
	y.expect("1Z") // on B
	x.send(&pgproto3.Query{String: "COMMIT"})
	x.expect("CZ")
	sc.idleServers(2) // B, then A: A is taken next
	y.send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Parse{Name: "s1", Query: "SELECT 2"}, &pgproto3.Sync{})
	y.expect("31Z") // on A, the last one idle
	sc.idleServers(2)
	x.send(&pgproto3.Query{String: "BEGIN"})
	x.expect("CZ") // x holds A again
	y.send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := y.expect("2DCZ")
	if v := string(got[1].(*pgproto3.DataRow).Values[0]); v != "2" {
		t.Errorf("y's s1 answered %q, want 2 (its SELECT 2)", v)
	}
	sc.done(2)
}

// Flush: what the server answers so far reaches the client at once,
// without a Sync, and the transaction goes on on the same server.
func TestRelayFlush(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	desc := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
	sc.play(steps(
		step{"PDH", nil, []pgproto3.BackendMessage{parseComplete, &pgproto3.ParameterDescription{}, desc}},
		step{"BES", nil, []pgproto3.BackendMessage{bindComplete, row("1"), complete("SELECT 1"), idle}},
	))
	c := sc.client()
	c.send(&pgproto3.Parse{Query: "SELECT 1 AS x"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Flush{})
	c.expect("1tT")
	c.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	c.expect("2DCZ")
	sc.done(1)
}

// COPY FROM STDIN: the client's data goes to the server, the server's
// answers to the client.
func TestRelayCopyIn(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	sc.play(func(s *serverEnd) error {
		if _, err := s.expect("Q"); err != nil {
			return err
		}
		if err := s.reply(&pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: []uint16{0}}); err != nil {
			return err
		}
		var data strings.Builder // the backend reuses its messages: read one at a time
		for range 2 {
			msgs, err := s.expect("d")
			if err != nil {
				return err
			}
			data.Write(msgs[0].(*pgproto3.CopyData).Data)
		}
		if _, err := s.expect("c"); err != nil {
			return err
		}
		if data.String() != "1\n2\n" {
			return fmt.Errorf("COPY data %q, want the client's %q", data.String(), "1\n2\n")
		}
		return s.reply(complete("COPY 2"), idle)
	})
	c := sc.client()
	c.send(&pgproto3.Query{String: "COPY t FROM STDIN"})
	c.expect("G")
	c.send(&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyData{Data: []byte("2\n")}, &pgproto3.CopyDone{})
	got := c.expect("CZ")
	if tag := string(got[0].(*pgproto3.CommandComplete).CommandTag); tag != "COPY 2" {
		t.Errorf("COPY answered %q", tag)
	}
	sc.done(1)
}

// A server lost in the middle of a transaction: the client hears 08006
// (PostgreSQL's connection failure) and its session ends; the broken
// connection is not pooled again.
func TestRelayServerLostInATransaction(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	sc.play(then(steps(step{"Q", nil, []pgproto3.BackendMessage{complete("BEGIN"), inTx}}), func(s *serverEnd) error {
		if _, err := s.expect("Q"); err != nil {
			return err
		}
		return s.conn.Close() // the server dies before it answers
	}))
	c := sc.client()
	c.send(&pgproto3.Query{String: "BEGIN"})
	c.expect("CZ")
	c.send(&pgproto3.Query{String: "INSERT INTO t VALUES (1)"})
	got := c.expect("E")
	if e := got[0].(*pgproto3.ErrorResponse); e.Code != "08006" || e.Severity != "FATAL" {
		t.Errorf("client heard %s %s %q, want FATAL 08006", e.Severity, e.Code, e.Message)
	}
	sc.done(1)
	// A new client gets a new server connection, not the broken one.
	sc.play(steps(step{"Q", nil, []pgproto3.BackendMessage{complete("SELECT 1"), idle}}))
	d := sc.client()
	d.send(&pgproto3.Query{String: "SELECT 1"})
	d.expect("CZ")
	sc.done(1)
	if n := sc.server.dials.Load(); n != 2 {
		t.Errorf("%d server connections dialed, want 2", n)
	}
}

// SET inside a transaction block may still roll back: the values are
// read back once the block has ended (committed, or restored by a
// rollback) and follow the client to its next server connection; the
// client does not keep the server (it used to be pinned to it).
func TestRelaySetInABlockIsLearntWhenItEnds(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 2})
	readBack := func(name, value string) step {
		return step{"Q", func(msgs []pgproto3.FrontendMessage) error {
			if q := msgs[0].(*pgproto3.Query).String; !strings.Contains(q, "current_setting('"+name+"')") {
				return fmt.Errorf("read back %q, want %s's value", q, name)
			}
			return nil
		}, []pgproto3.BackendMessage{row(value), complete("SELECT 1"), idle}}
	}
	sc.play(steps(
		step{"Q", nil, []pgproto3.BackendMessage{complete("BEGIN"), inTx}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("SET"), inTx}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("COMMIT"), idle}},
		readBack("enable_seqscan", "off"),
		step{"Q", nil, []pgproto3.BackendMessage{complete("BEGIN"), inTx}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("SET"), inTx}},
		step{"Q", nil, []pgproto3.BackendMessage{complete("ROLLBACK"), idle}},
		readBack("work_mem", "4MB"),
	))
	c := sc.client()
	for _, q := range []string{"BEGIN", "SET enable_seqscan = off", "COMMIT", "BEGIN", "SET work_mem = '64MB'", "ROLLBACK"} {
		c.send(&pgproto3.Query{String: q})
		c.expect("CZ")
	}
	sc.idleServers(1) // not pinned: back in the pool
	sc.restartPrimary()
	sc.play(steps(
		step{"Q", func(msgs []pgproto3.FrontendMessage) error {
			q := msgs[0].(*pgproto3.Query).String
			for _, want := range []string{"set_config('enable_seqscan', 'off', false)", "set_config('work_mem', '4MB', false)"} {
				if !strings.Contains(q, want) {
					return fmt.Errorf("the session's parameters set with %q, want %s in it", q, want)
				}
			}
			return nil
		}, []pgproto3.BackendMessage{row("off"), complete("SELECT 1"), idle}},
		step{"Q", nil, []pgproto3.BackendMessage{row("off"), complete("SHOW"), idle}},
	))
	c.send(&pgproto3.Query{String: "SHOW enable_seqscan"})
	c.expect("DCZ")
	sc.done(2)
}

// The causal reads' token is the pooler's: SET rampart.read_after raises
// the client's position, SHOW rampart.last_write_lsn shows it, a value
// that is no position is refused with 22023, and no server sees any of it.
func TestRelayCausalToken(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	sc.play(steps()) // the login's connection, asked nothing after it
	c := sc.client()
	show := func() string {
		t.Helper()
		c.send(&pgproto3.Query{String: "SHOW rampart.last_write_lsn"})
		got := c.expect("TDCZ")
		return string(got[1].(*pgproto3.DataRow).Values[0])
	}
	if v := show(); v != "0/0" {
		t.Errorf("a client that never wrote: %s, want 0/0", v)
	}
	c.send(&pgproto3.Query{String: "SET rampart.read_after = '0/16B3748'"})
	c.expect("CZ")
	c.send(&pgproto3.Query{String: "SET rampart.read_after = '0/100'"}) // older: the position stays
	c.expect("CZ")
	if v := show(); v != "0/16B3748" {
		t.Errorf("after SET rampart.read_after: %s, want 0/16B3748", v)
	}
	c.send(&pgproto3.Query{String: "SET rampart.read_after = 'soon'"})
	got := c.expect("EZ")
	if e := got[0].(*pgproto3.ErrorResponse); e.Code != "22023" {
		t.Errorf("a value that is no position: %s %q, want 22023", e.Code, e.Message)
	}
	sc.done(1)
}

// Two clients that ask for different parameters share one server
// connection: each transaction runs with its own client's, set in one
// round trip only when the connection last ran another's, and set again
// when the server reports a change the pooler did not make.
func TestRelayParametersFollowTheirClient(t *testing.T) {
	sc := newScripted(t, Config{PoolSize: 1})
	setApp := func(name string) step {
		return step{"Q", func(msgs []pgproto3.FrontendMessage) error {
			if q := msgs[0].(*pgproto3.Query).String; !strings.Contains(q, "set_config('application_name', '"+name+"', false)") {
				return fmt.Errorf("%q, want application_name set to %s", q, name)
			}
			return nil
		}, []pgproto3.BackendMessage{&pgproto3.ParameterStatus{Name: "application_name", Value: name}, row(name), complete("SELECT 1"), idle}}
	}
	query := func(sql string, before ...pgproto3.BackendMessage) step {
		return step{"Q", func(msgs []pgproto3.FrontendMessage) error {
			if q := msgs[0].(*pgproto3.Query).String; q != sql {
				return fmt.Errorf("%q, want the client's %q and nothing before it", q, sql)
			}
			return nil
		}, append(before, row("1"), complete("SELECT 1"), idle)}
	}
	sc.play(steps(
		setApp("a"), // a's login
		setApp("b"), // b's login
		setApp("a"), query("SELECT 1"),
		query("SELECT 2"),
		query("SELECT 3", &pgproto3.ParameterStatus{Name: "application_name", Value: "z"}),
		setApp("a"), query("SELECT 4"),
		setApp("b"), query("SELECT 5"),
	))
	a := sc.clientWith("application_name=a")
	b := sc.clientWith("application_name=b")
	for _, q := range []string{"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4"} {
		a.send(&pgproto3.Query{String: q})
		if q == "SELECT 3" {
			a.expect("SDCZ")
		} else {
			a.expect("DCZ")
		}
	}
	b.send(&pgproto3.Query{String: "SELECT 5"})
	b.expect("DCZ")
	sc.done(1)
}

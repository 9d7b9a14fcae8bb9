package proxy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Session parameters. A client's start-up packet asks for settings
// (application_name, TimeZone, DateStyle, …) that must hold on whichever
// pooled server connection runs its queries, and must not leak to the
// next client of that connection. Before each transaction the proxy
// compares what the client asked for with what the server connection has,
// and sets or resets the difference in one round trip (none in the usual
// case, where a pool's clients ask for the same).

// mixedCase are the reported parameters (ParameterStatus) whose names the
// server spells with capitals.
var mixedCase = []string{"DateStyle", "IntervalStyle", "TimeZone"}

// serverOwned are reported parameters no client sets: facts about the
// server or the login. Every other reported parameter (application_name,
// client_encoding, DateStyle, default_transaction_read_only, …: the list
// grows with PostgreSQL's versions) is the client's, and a connection whose
// client did not ask for one gets the server's default back.
var serverOwned = []string{"server_version", "server_encoding", "integer_datetimes", "in_hot_standby", "is_superuser",
	"session_authorization", "scram_iterations"}

// canonicalParam spells a parameter name the way the server reports it
// (names are case-insensitive).
func canonicalParam(name string) string {
	for _, s := range mixedCase {
		if strings.EqualFold(s, name) {
			return s
		}
	}
	return strings.ToLower(name)
}

// clients says whether a reported parameter k of st is the client's to set.
func (st paramState) clients(k string) bool {
	_, reported := st.initial[k]
	return reported && !slices.Contains(serverOwned, k)
}

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,62}$`)

// startupParams picks the session parameters out of a start-up packet;
// an error says what the client must do instead.
func startupParams(in map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range in {
		switch {
		case k == "user" || k == "database" || strings.HasPrefix(k, "_pq_."):
		case k == "replication":
			return nil, fmt.Errorf("replication connections are not pooled: connect to the server itself")
		case k == "options":
			if strings.TrimSpace(v) != "" {
				return nil, fmt.Errorf("the pooler does not pass the start-up parameter options (%q): set those parameters with ALTER ROLE … SET, or with SET in a session-mode pool", v)
			}
		case !paramName.MatchString(k):
			return nil, fmt.Errorf("invalid start-up parameter name %q", k)
		default:
			out[canonicalParam(k)] = v
		}
	}
	return out, nil
}

// paramState is what one server connection has: the reported parameters
// now (current) and at its start (initial, the defaults), and the values
// of unreported parameters the proxy set on it (custom).
type paramState struct {
	current, initial, custom map[string]string
}

// paramSQL returns the statements that give st the parameters want asks
// for ("" when it has them): RESET to go back to the default for one the
// client did not ask for, set_config for a value asked for (it takes the
// value as the start-up packet does: a list such as search_path stays a
// list, where SET name TO 'a, b' would make it one name).
func paramSQL(want map[string]string, st paramState) string {
	if paramsMatch(want, st) {
		return ""
	}
	keys := make([]string, 0, len(st.initial)+len(want)+len(st.custom))
	for k := range st.initial {
		keys = append(keys, k)
	}
	for k := range want {
		keys = append(keys, k)
	}
	for k := range st.custom {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var resets strings.Builder
	var sets []string
	for _, k := range keys {
		_, reported := st.initial[k]
		have, had := st.custom[k]
		if reported {
			have, had = st.current[k], true
		}
		v, asked := want[k]
		switch {
		case asked && (!had || have != v):
			sets = append(sets, fmt.Sprintf("pg_catalog.set_config(%s, %s, false)", quoteLiteral(k), quoteLiteral(v)))
		case !asked && st.clients(k) && have != st.initial[k],
			!asked && !reported && had:
			fmt.Fprintf(&resets, "RESET %s;", quoteIdent(k))
		}
	}
	if len(sets) > 0 {
		return resets.String() + "SELECT " + strings.Join(sets, ", ") + ";"
	}
	return resets.String()
}

// paramsMatch is paramSQL's question without building anything: it runs
// before every transaction.
func paramsMatch(want map[string]string, st paramState) bool {
	for k, v := range want {
		have, ok := st.custom[k]
		if _, reported := st.initial[k]; reported {
			have, ok = st.current[k], true
		}
		if !ok || have != v {
			return false
		}
	}
	for k, def := range st.initial {
		if _, asked := want[k]; !asked && st.clients(k) && st.current[k] != def {
			return false
		}
	}
	for k := range st.custom {
		if _, asked := want[k]; !asked {
			return false
		}
	}
	return true
}

// quoteIdent quotes a parameter name as an identifier (the name came from
// a client: nothing in it may be taken for SQL).
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes s as a string constant whatever the server's
// standard_conforming_strings.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// applyParams gives sc the session's parameters; the error is the
// server's when it refuses a value.
func (s *session) applyParams(sc *serverConn) error {
	if !s.paramsKeyKnown {
		s.paramsKey, s.paramsKeyKnown = paramsKey(s.params), true
	}
	key := s.paramsKey
	if sc.holdsKnown && sc.holds == key {
		return nil // the usual case: this pool's last client asked for the same
	}
	if sql := paramSQL(s.params, sc.paramState()); sql != "" {
		if _, _, err := sc.exec(sql); err != nil {
			return err
		}
		sc.noteParams(s.params)
	}
	sc.holds, sc.holdsKnown = key, true
	return nil
}

// paramsKey is want as one string, equal for equal sets of parameters
// (neither names nor values can hold NUL): comparing it is cheaper than
// comparing the maps before every transaction.
func paramsKey(want map[string]string) string {
	keys := slices.Sorted(maps.Keys(want))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(want[k])
		b.WriteByte(0)
	}
	return b.String()
}

// reported notes a parameter the server reported (ParameterStatus): what
// sc holds is no longer known to be any session's set.
func (sc *serverConn) reported(name, value string) {
	sc.params[name] = value
	sc.holdsKnown = false
}

// learnParams reads back the values of the parameters a client's SET or
// RESET just changed on sc, so that they follow the client to other
// server connections.
func (s *session) learnParams(sc *serverConn, names []string) error {
	for _, n := range names {
		if !paramName.MatchString(n) {
			return fmt.Errorf("parameter name %q: not one the proxy carries to other connections", n)
		}
	}
	cols := make([]string, len(names))
	for i, n := range names {
		cols[i] = "pg_catalog.current_setting(" + quoteLiteral(n) + ")"
	}
	values, _, err := sc.exec("SELECT " + strings.Join(cols, ", "))
	if err != nil || len(values) != len(names) {
		return fmt.Errorf("read back %v: %v", names, err)
	}
	if s.params == nil {
		s.params = map[string]string{}
	}
	s.paramsKeyKnown = false
	for i, n := range names {
		k := canonicalParam(n)
		s.params[k] = values[i]
		if _, reported := sc.initial[k]; !reported {
			sc.custom[k] = values[i]
		}
	}
	sc.holdsKnown = false
	return nil
}

// exec runs the proxy's own simple query on sc and reads the answer here:
// the values of its rows, the transaction status after it, and the
// server's error (sc stays usable) or an I/O error (sc is broken).
// Parameter changes it reports are noted.
func (sc *serverConn) exec(sql string) (values []string, status byte, err error) {
	delete(sc.prepared, "") // a simple query ends the unnamed statement
	raw, _ := (&pgproto3.Query{String: sql}).Encode(nil)
	if _, err := sc.conn.Write(raw); err != nil {
		sc.broken = true
		return nil, 0, err
	}
	var refused error
	for {
		msg, err := sc.receive()
		if err != nil {
			sc.broken = true
			return nil, 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.ParameterStatus:
			sc.reported(m.Name, m.Value)
		case *pgproto3.DataRow:
			for _, v := range m.Values {
				values = append(values, string(v))
			}
		case *pgproto3.ErrorResponse:
			refused = &pgErr{m.Severity, m.Code, m.Message}
		case *pgproto3.ReadyForQuery:
			return values, m.TxStatus, refused
		}
	}
}

// noteParams records the unreported parameters just set to want (and
// reset: the ones want does not have).
func (sc *serverConn) noteParams(want map[string]string) {
	for k := range sc.custom {
		if _, ok := want[k]; !ok {
			delete(sc.custom, k)
		}
	}
	for k, v := range want {
		if _, reported := sc.initial[k]; !reported {
			sc.custom[k] = v
		}
	}
}

func (sc *serverConn) paramState() paramState {
	return paramState{current: sc.params, initial: sc.initial, custom: sc.custom}
}

// pgErr is a server's ErrorResponse, passed on to the client as it came.
type pgErr struct{ severity, code, message string }

func (e *pgErr) Error() string { return e.message }

// unknownValue stands for a value the proxy no longer knows; no client
// can ask for it (start-up parameters cannot hold NUL).
const unknownValue = "\x00unknown"

// forgetCustom marks the unreported parameters the proxy set as unknown, so
// that the next client gets its own set again (or reset).
func (sc *serverConn) forgetCustom() {
	sc.holdsKnown = false
	for k := range sc.custom {
		sc.custom[k] = unknownValue
	}
}

// Package route decides where the pooler sends a statement: its class
// (read-only, or for the primary, and whether it leaves session state
// behind) from PostgreSQL's own grammar (pganalyze/pg_query_go), and which
// backend takes it.
//
// Everything here is pure: SQL text and observations in, a verdict out; no
// sockets, no clock (callers pass the time), no catalogue queries (callers
// pass what they learnt about functions). The rule is the safe one:
// anything not provably read-only goes to the primary.
package route

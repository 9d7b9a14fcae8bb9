// Package pg controls and observes PostgreSQL for rampart's agent, pooler
// and CLI: LSNs, synchronous_standby_names (parse and format, with
// PostgreSQL's own quoting rules), connection strings, postgresql.auto.conf
// edits, pg_controldata output; and, through pgx and argument vectors, the
// instance itself (pg_ctl, promote, reload, role, timeline, LSNs,
// pg_stat_replication).
//
// It knows nothing of OCF, Pacemaker, the pooler or the VIP. Parsers and
// formatters are pure and fuzzed; they follow the PostgreSQL 13–17
// documentation (runtime-config-replication, libpq-connect, app-pgcontroldata).
package pg

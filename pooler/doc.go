// Package pooler wires rampart's PostgreSQL router and pool: its
// configuration (a pgbouncer.ini-like file, so DBAs find the keys they
// know), and, as the issues land, the proxy, the pools, the admin console
// and the watchdog pair.
//
// It must not act as a cluster agent: no ra/ocf, ra/pacemaker or
// ra/pgsql (test/deps checks).
package pooler

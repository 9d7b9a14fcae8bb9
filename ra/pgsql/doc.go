// Package pgsql is ocf:rampart:pgsql, the promotable-clone resource agent
// for a PostgreSQL primary and its streaming standbys. Each action observes
// (PostgreSQL through ra/pg, Pacemaker through ra/pacemaker), decides in a
// pure function of that observation (this package's decide*.go files: no
// I/O, no clock), then applies the decision.
//
// The decisions carry DESIGN.md's invariants: a standby may be promoted only
// when it has every acknowledged commit (invariant 2: the sync set and the
// promotion scores move together, scores first when a standby leaves the set
// and only after it caught up when one joins); an old primary never starts
// as primary (invariant 3); synchronous_standby_names follows reality and is
// never emptied under the durability policy (invariant 4).
//
// It must not import the pooler or the VIP.
package pgsql

// Package pgsql is ocf:rampart:pgsql, the promotable-clone resource agent
// for a PostgreSQL primary and its streaming standbys. Each action observes
// (PostgreSQL through ra/pg, Pacemaker through ra/pacemaker), decides in a
// pure function of that observation (this package's decide*.go files: no
// I/O, no clock), then applies the decision. The one sequence whose order
// carries an invariant, the primary's sync round, is RunSync in
// decide_sync.go: it does its I/O only through SyncEffects, which the agent
// implements against PostgreSQL, attrd and the CIB (sync.go) and the model
// test against a simulation.
//
// Files: actions.go (the seams shared by every action), start.go (start,
// stop, rejoin, the data-directory lock, the fork marker), monitor.go (the
// primary's and the standbys' monitors, the election), sync.go, promote.go
// (promote, demote), notify.go, watch.go (the postmaster watcher), memo.go
// (what the agent keeps in node attributes and the CIB).
//
// The decisions carry rampart's invariants: a standby may be promoted only
// when it has every acknowledged commit (invariant 2: the sync set, the
// promotion scores and the durable record of who holds every acknowledged
// commit move together, lowered before the set changes and raised only
// after a new member caught up; while no primary runs only the recorded
// nodes may volunteer); an old primary never starts as primary (invariant
// 3), and neither a standby past the new primary's fork point nor a primary
// Pacemaker never promoted is started without the same decision;
// synchronous_standby_names names only the clone's members, follows
// reality and is never emptied under the durability policy (invariant 4).
//
// It must not import the pooler or the VIP.
package pgsql

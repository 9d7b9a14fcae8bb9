// Package e2e holds scenario tests on the lab: real PostgreSQL, Corosync
// and Pacemaker running rampart's agents, real clients, real faults. Each
// test records every acknowledged commit and checks none is lost. The tests
// need root and the packages of `make deps`; they skip, saying so, without.
package e2e

// Package chaos runs issue 19's campaigns: a seeded sequence of faults on
// the seed's lab shape (four database hosts under Pacemaker with
// ocf:rampart:pgsql and auto_rejoin, fencing through BMCs, the database
// VIP, the pooler pair with its witness) while clients on the client host
// record every operation into a history.History, then checks the history
// with package history and writes a report.
//
// It owns the plan (pure: seed, count and kinds in, steps out, so a
// violation is replayed from its seed), the op-outcome classification
// (pure: a client error in, ok/failed/unknown out), the workload recorder
// and the runner that injects, heals and waits for convergence. It knows
// nothing of how faults are made beyond test/lab's fault methods, and
// judges nothing itself: history.Check does. Like the rest of test/ it
// must not import package testing outside its tests.
package chaos

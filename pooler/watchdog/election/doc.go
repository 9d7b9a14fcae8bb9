// Package election decides which pooler of a pair (or more) leads, and so
// holds the VIP, as a pure state machine: messages and the time come in
// (Step, Tick), messages to send and the decision come out (Ready,
// Status). It knows no sockets, clocks or addresses; pooler/watchdog
// carries its messages and acts on its decision.
//
// The members are the poolers and an optional witness, which votes but
// never leads; a quorum is a majority of all of them. The rules, and why
// they keep a single holder of the VIP:
//
//   - A leader leads only while it holds a lease: a quorum has
//     acknowledged a heartbeat it sent less than Lease ago (measured from
//     the sending, on its own clock).
//   - A member that acknowledges a leader, or grants a vote, promises for
//     Promise (> Lease, measured from the receipt) to grant no other vote.
//     Quorums intersect, so no other candidate can win while a lease
//     lasts; Promise − Lease is the margin for clocks that run at
//     different rates.
//   - A member that starts keeps that promise too (it may have made one
//     before a restart), and a member that has not heard its leader for
//     Election (≥ Promise) stands, the higher priority first.
//   - A leader that loses its lease steps down at once; so does one that
//     sees a higher term in an answer.
//
// The election does not probe the address: before taking the VIP the
// watchdog checks (RFC 5227) that nobody answers for it.
package election

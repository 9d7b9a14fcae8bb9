// Package fence is the fence-agents API, for rampart's fence agents and
// for running any fence agent from Go.
//
// An agent reads its options from stdin when it has no arguments (what
// Pacemaker's fencer does: one name=value per line, any order, # comments,
// the last value wins, unknown names warned about and ignored) or from
// getopt-style arguments (what people type); it runs one action (on, off,
// reboot, status, monitor, list, list-status, metadata, validate-all,
// manpage) and exits as fence-agents do: 0 success, 1 failure, and for
// status 0 on, 2 off, 1 unknown. off and reboot are confirmed by polling
// the status (power_wait, power_timeout). One parameter table gives the
// parsing, the validation and the metadata XML (fence-agents'
// metadata.rng). Call runs an agent, ours or fence-agents', through stdin
// with a deadline. It knows nothing of OCF, PostgreSQL or the pooler.
package fence

// Package ocf implements the agent side of the Open Cluster Framework
// resource-agent API, version 1.1, as Pacemaker 2.1 runs it: actions named
// by the first argument, parameters in OCF_RESKEY_* and meta attributes in
// OCF_RESKEY_CRM_meta_* environment variables, clone notifications, exit
// codes 0–9 (with 8 and 9 for promoted instances) and the exit reason line.
//
// One parameter table drives both validation and the meta-data XML, which
// follows resource-agents' ra-api-1.dtd. Run takes its arguments, environment
// and streams as values, and is the one place where an agent's errors become
// exit codes. The package knows nothing of PostgreSQL, Pacemaker's tools or
// the rest of rampart.
package ocf

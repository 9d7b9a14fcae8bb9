// Package pacemaker reads and changes Pacemaker state through Pacemaker's own
// command-line tools (crm_mon, crm_attribute, attrd_updater), called as
// argument vectors with a deadline, and returns typed results.
//
// Parsing is pure and separate from running the tools, so it is table-tested
// on captured output. The package knows nothing about PostgreSQL, OCF or the
// pooler. It follows the XML that `crm_mon --output-as=xml` prints
// (Pacemaker 2.1, api-version 2.x).
package pacemaker

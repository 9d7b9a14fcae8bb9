// Package ipmi is fence_rampart_ipmi: a fence agent for IPMI v2.0 BMCs
// over LAN (RMCP+, "lanplus"; IPMI 1.5 "lan" on request), with
// bougou/go-ipmi. Chassis power on, off and status; reboot as off then on
// (a power cycle cannot be confirmed, and a BMC refuses it on a node that
// is off). Its options are fence_ipmilan's where the meaning is the same,
// so a configuration can switch agents; it adds node (the cluster node
// this BMC powers: status for another plug answers 1, never "off") and
// password_file (no password on a command line).
package ipmi

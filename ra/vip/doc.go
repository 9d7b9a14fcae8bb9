// Package vip is ocf:rampart:vip, the OCF agent for a virtual IP address:
// it turns OCF parameters into a vip.Config and the actions into calls of
// package vip. Parameter names follow ocf:heartbeat:IPaddr2 where the
// meaning is the same (ip, cidr_netmask, nic, iflabel, arp_count,
// arp_interval, arp_count_refresh, run_arping, nodad), so a configuration
// can switch agents by changing its type.
package vip

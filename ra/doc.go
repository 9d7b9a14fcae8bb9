// Package ra names the OCF resource agents the rampart binary provides
// (provider "rampart"): the one list that the binary's dispatch, the lab
// and the packages follow.
package ra

// Agents are the agents' names: the binary runs agent NAME when it is
// called as /usr/lib/ocf/resource.d/rampart/NAME.
var Agents = []string{"pgsql", "vip"}

// Package lab builds a whole rampart test cluster on one Linux machine out of
// network, mount and UTS namespaces: database hosts running PostgreSQL 15 (one
// primary, the rest streaming standbys) and Corosync + Pacemaker, a client
// host, and a bridge that joins them inside a namespace of its own, so no lab
// packet can reach the machine's real network. It injects the faults rampart
// must survive (postmaster killed, host crashed, frozen, cut off, partitioned)
// and tears everything down again, leftovers of a crashed lab included.
//
// The lab is test infrastructure, also run by users through `rampart lab`. It
// drives the system's own tools (ip, nsenter, unshare, corosync, pacemakerd,
// initdb, pg_ctl, psql) as argument vectors, never through a shell, and it
// finds "every process of a host" by network namespace: the PID namespace is
// shared on purpose, so the lab can freeze or kill a host by PID.
//
// It also builds Debian release roots with debootstrap (Root), cached per
// package list, for hosts that boot with systemd and run newer releases than
// this machine (Pacemaker 3.0, PostgreSQL 17).
//
// It must not import package testing: test helpers built on it live in
// _test.go files or in a package of their own.
package lab

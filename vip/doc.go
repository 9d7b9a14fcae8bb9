// Package vip moves a virtual IP address: it adds and removes the address
// with netlink, announces it with gratuitous ARP (IPv4: a request with a
// zero target MAC and a reply with target MAC = sender MAC, as switches
// differ in which they honour) or unsolicited neighbour advertisements
// (IPv6, after duplicate address detection), optionally probes first that
// no other host answers for it (RFC 5227), and says whether this host holds
// it. It knows nothing of OCF, Pacemaker or the pooler: ra/vip and
// `rampart vip` build on it.
//
// Pure parts (choice of interface and prefix, frame layout, probe verdicts)
// are separate functions tested without a network; the rest runs in the
// lab's network namespaces.
package vip

// Package deploy runs docs/deploy.md, the deployment guide, as an operator
// would: on a site of hosts booted by systemd from a Debian release's root
// (lab.Site), it installs the packages `make packages` builds and runs
// the guide's shell blocks in order on the hosts each names. Then it
// breaks the cluster the guide built (a killed postmaster, a crashed and
// a frozen primary host, a killed synchronous standby, a crashed pooler)
// under a write load through the pooler pair, and counts what clients
// lost.
//
// It needs root, debootstrap, systemd-nspawn and ipmi_sim (make deps);
// RAMPART_DEPLOY_RELEASE picks the release (debian13 by default).
package deploy

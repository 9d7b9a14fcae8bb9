// Package packages tests the .deb and .rpm as an operator meets them:
// built with make packages' script, checked with lintian and rpmlint,
// installed on this machine with dpkg, seen by Pacemaker, its fencer and
// systemd, run by the lab (the e2e failover tests against the installed
// files), and removed again. It needs root and changes the machine while it
// runs; it skips when rampart is installed already.
package packages

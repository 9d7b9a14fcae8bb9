#!/bin/sh
# .deb prerm: on removal, not on upgrade, stop the services so nothing
# runs a deleted binary (their enablement stays, as Debian keeps it).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop rampart-pooler.service rampart-witness.service rampart-vip.service >/dev/null || true
fi
exit 0

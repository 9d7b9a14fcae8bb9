#!/bin/sh
# .rpm %preun: on erase ($1 = 0), not on upgrade, stop and disable the
# services so nothing runs a deleted binary (what %systemd_preun does).
set -e
case "$1" in
0)
	if [ -d /run/systemd/system ]; then
		systemctl --no-reload disable --now rampart-pooler.service rampart-witness.service rampart-vip.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0

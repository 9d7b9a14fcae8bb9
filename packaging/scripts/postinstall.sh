#!/bin/sh
# After install or upgrade (.deb postinst configure, .rpm %post).
set -e
# The daemons' system user, from /usr/lib/sysusers.d/rampart.conf.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers rampart.conf
elif ! getent passwd rampart >/dev/null 2>&1; then
	useradd --system --user-group --home-dir / --no-create-home --shell /usr/sbin/nologin \
		--comment "rampart pooler and witness" rampart
fi
# New or changed units. No service is enabled or restarted here: each needs
# its configuration first, and restarting a pooler or a VIP holder is the
# operator's call.
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
exit 0

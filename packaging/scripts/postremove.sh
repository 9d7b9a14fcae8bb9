#!/bin/sh
# After the package went (.deb postrm, .rpm %postun).
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
exit 0

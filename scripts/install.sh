#!/bin/sh
# make install: binaries, service files, /etc/petrel and /var/lib/petrel.
# Creates the unprivileged 'petrel' user when missing.  Never overwrites an
# existing configuration: run 'petrelctl setup' to create one.
set -eu
build=${1:-build}
prefix=${2:-/usr/local}
destdir=${DESTDIR:-}

install -d "$destdir$prefix/sbin" "$destdir$prefix/share/doc/petrel"
install -m 0755 "$build/petreld" "$build/petrelctl" "$destdir$prefix/sbin/"
install -m 0644 README.md "$destdir$prefix/share/doc/petrel/"
cp -r docs "$destdir$prefix/share/doc/petrel/"

if [ -d "$destdir/etc/systemd/system" ] || [ -d "$destdir/lib/systemd/system" ] || command -v systemctl >/dev/null 2>&1; then
	install -d "$destdir/etc/systemd/system"
	sed "s|/usr/local|$prefix|g" packaging/petrel.service >"$destdir/etc/systemd/system/petrel.service"
fi
install -d "$destdir/etc/init.d"
sed "s|/usr/local|$prefix|g" packaging/petrel.init >"$destdir/etc/init.d/petrel"
chmod 0755 "$destdir/etc/init.d/petrel"

if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && ! getent passwd petrel >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin petrel
	echo "created system user petrel"
fi
install -d -m 0750 "$destdir/etc/petrel" "$destdir/var/lib/petrel"
if [ -z "$destdir" ] && getent passwd petrel >/dev/null; then
	chown petrel:petrel /etc/petrel /var/lib/petrel
fi
if [ ! -f "$destdir/etc/petrel/mailserver.cfg" ]; then
	echo "Next: $prefix/sbin/petrelctl setup --config-dir /etc/petrel --store /var/lib/petrel"
fi

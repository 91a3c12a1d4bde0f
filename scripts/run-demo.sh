#!/bin/sh
# make run: creates a demo configuration in ./run when there is none, then
# starts petreld in the foreground.  The admin password is generated and
# printed once; it is stored only as a hash.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/run"
ctl="$top/$build/petrelctl"

if [ ! -f "$run/mailserver.cfg" ]; then
	domain=$(hostname -f 2>/dev/null || true)
	case "$domain" in
	*.*) ;;
	*) domain=localhost ;;
	esac
	if [ "$(id -u)" -eq 0 ]; then offset=0; else offset=10000; fi
	password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-16)
	mkdir -p "$run/store"
	# Run as root, the engine drops to the 'petrel' user: it must be able
	# to reach ./run, so the demo lives where that user can traverse.
	"$ctl" setup --config-dir "$run" --store "$run/store" --domain "$domain" \
		--hostname "$domain" --admin-password "$password" --port-offset "$offset"
	echo
	echo "  Demo administrator: admin@$domain"
	echo "  Password (shown only now): $password"
	echo
fi
exec "$top/$build/petreld" --config-dir "$run" --foreground

#!/bin/sh
# Installs the Debian packages that Petrel's build and tests need.
# Does nothing when they are all present, so `make run` and `make test`
# can call it every time.  Needs root (or sudo) only when something is missing.
set -eu

PACKAGES="
build-essential cmake pkg-config
libevent-dev libssl-dev openssl libsqlite3-dev sqlite3 libxml2-dev libxml2-utils
libc-ares-dev libgmime-3.0-dev libjansson-dev libhttp-parser-dev libcrypt-dev
libkrb5-dev libldap-dev libcmocka-dev libidn-dev
clang libclang-rt-14-dev
python3 python3-pytest python3-pytest-xdist
curl swaks fetchmail isync dnsmasq-base procps
zlib1g-dev
libnet-ssleay-perl libio-socket-ssl-perl
postfix
krb5-kdc krb5-admin-server krb5-user libsasl2-2 libsasl2-modules
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-deps: missing packages:$missing; run this script as root" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# postfix is here for its binaries only: the queue tests run private
# instances on loopback, and bench/queue compares against it.  "No
# configuration" installs it without a main.cf, so no system MTA is set up
# or started on port 25.
case " $missing " in
*" postfix "*)
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	;;
esac
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
case " $missing " in
*" postfix "*)
	# Belt and braces: never leave a system Postfix enabled or running.
	if command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable postfix.service >/dev/null 2>&1 || true
		if [ -d /run/systemd/system ]; then
			$SUDO systemctl stop postfix.service >/dev/null 2>&1 || true
		fi
	fi
	$SUDO postfix stop >/dev/null 2>&1 || true
	;;
esac

#!/bin/sh
# Store benchmark (issue 4): builds bench_store against an optimised build
# of the store, runs it, and delivers the same messages with Dovecot's
# dovecot-lda (Maildir, mail_fsync=always) for a side-by-side ratio when
# Dovecot is installed (apt-get install dovecot-core) and we are root.
#
#   bench/store/run.sh [DIR] [-n total] [-d durable] [-t threads] [-r rcpts]
#
# DIR (default /var/tmp/petrel-bench-store) must not exist: put it on the
# disk you want to measure; it is removed after the run.  (Removing a big
# tree just before a run skews it: on ext4 without a journal, every new
# inode then skips the ones deleted in the last minutes, which tripled the
# CPU per delivery here.)  -t defaults to 20, queue/max-deliveries'
# default.  Figures go to stdout as "key value unit".
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-/var/tmp/petrel-bench-store}
[ $# -gt 0 ] && shift
BUILD="$ROOT/build-bench"
DURABLE=1000
prev=""
for a in "$@"; do
	[ "$prev" = "-d" ] && DURABLE=$a
	prev=$a
done

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPETREL_TESTS=OFF >/dev/null
cmake --build "$BUILD" --target petrel_store petrel_mime petrel_core -j1 >/dev/null
# shellcheck disable=SC2046
cc -std=c11 -O2 -D_GNU_SOURCE -I"$ROOT/src" "$ROOT/bench/store/bench_store.c" -o "$BUILD/bench_store" \
	-L"$BUILD" -lpetrel_store -lpetrel_mime -lpetrel_core \
	$(pkg-config --cflags --libs gmime-3.0 sqlite3 libevent libevent_openssl libevent_pthreads openssl libxml-2.0 jansson libxcrypt) -lpthread

if [ -e "$DIR" ]; then
	echo "run.sh: $DIR exists; remove it (well before the run) or name another" >&2
	exit 2
fi
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
echo "# petrel store benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(df -T "$DIR" | awk 'NR==2 {print $2}') file system"
"$BUILD/bench_store" "$@" "$DIR/petrel" 2>"$DIR/petrel-stderr.log" | tee "$DIR/petrel.txt"

LDA=/usr/lib/dovecot/dovecot-lda
if [ ! -x "$LDA" ] || [ "$(id -u)" -ne 0 ]; then
	echo "# dovecot side-by-side skipped: needs dovecot-core and root"
	exit 0
fi
D="$DIR/dovecot"
mkdir -p "$D/home" "$D/msgs"
"$BUILD/bench_store" -w "$D/msgs" -d "$DURABLE"
cat > "$D/dovecot.conf" <<CONF
mail_location = maildir:$D/home/Maildir
mail_fsync = always
ssl = no
log_path = $D/dovecot.log
base_dir = $D/run
state_dir = $D/state
CONF
chown -R nobody:nogroup "$D"
start=$(date +%s.%N)
for m in "$D"/msgs/*.eml; do
	setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$D/home" USER=nobody \
		"$LDA" -c "$D/dovecot.conf" -f sender@example.org <"$m"
done
end=$(date +%s.%N)
rate=$(echo "$DURABLE $start $end" | awk '{printf "%.0f", $1 / ($3 - $2)}')
echo "dovecot_lda_durable_1process $rate msg/s"
ours=$(awk '$1 == "deliver_durable_1thread" {print $2}' "$DIR/petrel.txt")
echo "ratio_petrel_1thread_vs_dovecot_lda $(echo "$ours $rate" | awk '{printf "%.1f", $1 / $2}') x"

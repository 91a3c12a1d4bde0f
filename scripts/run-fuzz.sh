#!/bin/sh
# Runs every fuzz target in BUILD for SECONDS each, seeded from fuzz/corpus/NAME.
set -eu
build=$1
seconds=$2
status=0
for bin in "$build"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	seeds="fuzz/corpus/${name#fuzz_}"
	work="$build/corpus-$name"
	mkdir -p "$work"
	dict=""
	[ -f "fuzz/${name#fuzz_}.dict" ] && dict="-dict=fuzz/${name#fuzz_}.dict"
	echo "== $name for ${seconds}s"
	# shellcheck disable=SC2086
	if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 $dict "$work" $( [ -d "$seeds" ] && echo "$seeds" ) >"$build/$name.log" 2>&1; then
		echo "$name: FAILED, see $build/$name.log"
		tail -30 "$build/$name.log"
		status=1
	else
		grep -E '^Done|#[0-9]+.*DONE' "$build/$name.log" | tail -1 || true
	fi
done
exit $status

#!/bin/sh
# A/B helper for the cluster's write path (docs/BENCHMARKS.md): starts three
# kvd on 127.0.0.1:7711-7713, runs 10 s of writes-only QUORUM kvbench
# (32 threads, 4 connections, 10,000 keys) against them, prints kvbench's
# PUT line prefixed by LABEL, and stops the three kvd.
#
#   sh tools/kvbench/ab-writes.sh TOOLS_DIR LABEL [SYNC] [EXTRA_KVD_ARGS]
#
# TOOLS_DIR is a build's tools directory (build/tools); SYNC is always
# (default) or none; PERF=1 also records `perf record -a -g` for 8 s in the
# middle, into perf.data.
set -eu
tools=$1
label=$2
sync=${3:-always}
extra=${4:-}
dir=$(mktemp -d)
peers="127.0.0.1:7711,127.0.0.1:7712,127.0.0.1:7713"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
for i in 1 2 3; do
    # $extra is split into flags on purpose.
    # shellcheck disable=SC2086
    "$tools/kvd/kvd" --data "$dir/d$i" --listen "127.0.0.1:771$i" \
        --http "127.0.0.1:871$i" --node-id "n$i" --peers "$peers" \
        --sync "$sync" --log-level warn $extra 2>/dev/null &
    pids="$pids $!"
done
sleep 3
"$tools/kvbench/kvbench" binary --endpoints 127.0.0.1:7711 --threads 32 \
    --connections 4 --duration 10 --read-ratio 0 --consistency quorum \
    --keys 10000 --allow-errors 2>/dev/null | grep PUT > "$dir/put.txt" &
bench=$!
if [ "${PERF:-0}" = 1 ]; then
    sleep 2
    perf record -a -g -o perf.data -- sleep 8 >/dev/null 2>&1 || true
fi
wait "$bench"
echo "$label $(cat "$dir/put.txt")"

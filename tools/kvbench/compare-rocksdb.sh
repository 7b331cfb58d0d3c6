#!/usr/bin/env bash
# compare-rocksdb.sh - libkv's embedded handle (kvbench embedded) against raw
# RocksDB (db_bench), on the same workload, side by side in one run.
#
# Workload (both tools): fillrandom then readrandom on the same fresh DB, in
# one process each; NUM keys drawn uniformly from [0, NUM) with repeats;
# 20-byte keys in db_bench's format, 200-byte values with compression ratio
# 0.5; LZ4; 10-bit full bloom filter; 64 MiB LRU block cache; default write
# buffer; 1 thread; no fsync per write (db_bench --sync=0, kvbench --sync none;
# the WAL is written by both). Every operation is timed by both tools
# (db_bench --histogram=1).
#
# db_bench runs twice per run, on a fresh DB each time:
#   rdb      db_bench's default options (plus the workload flags above);
#   rdb-kv   the same, plus the options libkv's store sets on its data column
#            family (lib/storage/store.c): a memtable whole-key bloom filter
#            (memtable_prefix_bloom_size_ratio 0.02, whole-key filtering on);
#            see DB_BENCH_KV. This is the same-engine-settings comparison.
# Each db_bench process then runs updaterandom (NUM read-modify-writes: a Get
# then a Put of the same random key) on the DB left by its fillrandom and
# readrandom. kvbench's fillrandom is compared with it too, because every
# libkv put reads the key's version before writing ("versioned write vs
# RocksDB read-modify-write"). Note updaterandom starts on a DB that already
# holds ~63% of the keys, whereas kvbench's fillrandom starts empty.
#
# Usage: tools/kvbench/compare-rocksdb.sh [BUILD_DIR]
#   BUILD_DIR (default build) is where kvbench was built, configured with
#   -DKV_BUILD_TOOLS=ON; kvbench is BUILD_DIR/tools/kvbench/kvbench.
# Environment (all optional):
#   RUNS=1           repetitions; the order of the two tools alternates
#   NUM=1000000 KEY_SIZE=20 VALUE_SIZE=200 CACHE_MB=64 THREADS=1 SEED=1
#   KVBENCH=BUILD_DIR/tools/kvbench/kvbench   DB_BENCH=$(command -v db_bench)
#   TMPDIR=/tmp      where the temporary DBs go (removed on exit)
#   LOG_DIR=         if set, the raw output of every run is copied there
#   DB_BENCH_EXTRA=  extra db_bench flags for both db_bench columns, e.g.
#                    --cache_index_and_filter_blocks=1, for a variant
#   DB_BENCH_KV=     the flags that make rdb-kv match libkv's store; default
#                    "--memtablerep=skip_list --memtable_bloom_size_ratio=0.02
#                    --memtable_whole_key_filtering=1" (db_bench 7.8 names)
# No network is used. Exit status: 0 ok, 1 a tool failed, 2 bad setup.

# Written for bash; `sh compare-rocksdb.sh` (as make bench does) re-executes
# it under bash before any bash-only line is read.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

RUNS=${RUNS:-1}
NUM=${NUM:-1000000}
KEY_SIZE=${KEY_SIZE:-20}
VALUE_SIZE=${VALUE_SIZE:-200}
CACHE_MB=${CACHE_MB:-64}
THREADS=${THREADS:-1}
SEED=${SEED:-1}
if (($# > 1)); then echo "usage: $0 [BUILD_DIR]" >&2; exit 2; fi
build_dir=${1:-$repo/build}
KVBENCH=${KVBENCH:-$build_dir/tools/kvbench/kvbench}
DB_BENCH=${DB_BENCH:-$(command -v db_bench || command -v rocksdb_db_bench || true)}
LOG_DIR=${LOG_DIR:-}
DB_BENCH_EXTRA=${DB_BENCH_EXTRA:-}
read -r -a db_bench_extra <<<"$DB_BENCH_EXTRA"
# Keep in step with the options kvi_store_open sets (lib/storage/store.c).
DB_BENCH_KV=${DB_BENCH_KV:---memtablerep=skip_list --memtable_bloom_size_ratio=0.02 --memtable_whole_key_filtering=1}
read -r -a db_bench_kv <<<"$DB_BENCH_KV"

die() { echo "compare-rocksdb: $*" >&2; exit 2; }
[[ -x $KVBENCH ]] || die "kvbench not found at $KVBENCH (configure with -DKV_BUILD_TOOLS=ON and build, or set KVBENCH)"
[[ -n $DB_BENCH && -x $DB_BENCH ]] || die "db_bench not found (apt-get install rocksdb-tools, or set DB_BENCH)"
for v in RUNS NUM KEY_SIZE VALUE_SIZE CACHE_MB THREADS SEED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((RUNS >= 1)) || die "RUNS must be at least 1"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvcompare.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -n $LOG_DIR ]]; then mkdir -p "$LOG_DIR"; fi

run_kvbench() { # $1 = run number
    local out=$tmp/kvbench.$1
    "$KVBENCH" embedded --db "$tmp/kvdb.$1" --benchmarks fillrandom,readrandom \
        --num "$NUM" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" \
        --threads "$THREADS" --sync none --cache-mb "$CACHE_MB" --seed "$SEED" \
        --json >"$out.json" 2>"$out.log" || { cat "$out.log" >&2; echo "compare-rocksdb: kvbench failed" >&2; exit 1; }
    rm -rf -- "$tmp/kvdb.$1"
}

run_db_bench() { # $1 = run number, $2 = rdb (defaults) or rdb-kv (libkv's settings)
    local out=$tmp/$2.$1 settings=()
    if [[ $2 == rdb-kv ]]; then settings=("${db_bench_kv[@]}"); fi
    "$DB_BENCH" --db="$tmp/$2-db.$1" --benchmarks=fillrandom,readrandom,updaterandom \
        --num="$NUM" --key_size="$KEY_SIZE" --value_size="$VALUE_SIZE" \
        --compression_type=lz4 --compression_ratio=0.5 --bloom_bits=10 \
        --cache_size=$((CACHE_MB << 20)) --threads="$THREADS" --sync=0 \
        --histogram=1 --seed="$SEED" ${settings[@]+"${settings[@]}"} \
        ${db_bench_extra[@]+"${db_bench_extra[@]}"} >"$out.log" 2>"$out.err" || { cat "$out.log" "$out.err" >&2; echo "compare-rocksdb: db_bench ($2) failed" >&2; exit 1; }
    rm -rf -- "$tmp/$2-db.$1"
}

run_tool() { # $1 = kvbench, rdb or rdb-kv, $2 = run number
    if [[ $1 == kvbench ]]; then run_kvbench "$2"; else run_db_bench "$2" "$1"; fi
    sync
}

# jfield LINE NAME: a number field of kvbench's flat JSON object.
jfield() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"; }

# db_bench_fields LOG BENCH: "ops/s micros/op p50 p99" from db_bench's report
# line and the Percentiles line of the histogram printed after it.
db_bench_fields() {
    awk -v b="$2" '
        $1 == b && $2 == ":" { ops = $5; us = $3; cur = 1; next }
        cur && /^Percentiles:/ {
            for (i = 1; i <= NF; i++) {
                if ($i == "P50:") p50 = $(i + 1)
                if ($i == "P99:") p99 = $(i + 1)
            }
            cur = 0
        }
        END { if (ops == "") exit 1; print ops, us, p50, p99 }' "$1"
}

echo "kvbench:  $KVBENCH ($("$KVBENCH" embedded --help >/dev/null 2>&1 && echo ok))"
echo "db_bench: $DB_BENCH ($(dpkg-query -W -f='${Package} ${Version}' rocksdb-tools 2>/dev/null || echo 'version unknown'))"
echo "workload: num=$NUM key=$KEY_SIZE value=$VALUE_SIZE lz4 bloom=10 cache=${CACHE_MB}MiB threads=$THREADS sync=off"
echo "rdb-kv:   db_bench with $DB_BENCH_KV (libkv's store settings)"
if [[ -n $DB_BENCH_EXTRA ]]; then echo "db_bench extra flags (rdb and rdb-kv): $DB_BENCH_EXTRA"; fi
echo "machine:  $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo

ratios=()
# ratio A B: A / B to 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
for ((r = 1; r <= RUNS; r++)); do
    # Odd runs go kvbench, rdb, rdb-kv; even runs the reverse, so over two
    # runs every pair of tools has gone in both orders.
    if ((r % 2 == 1)); then order=(kvbench rdb rdb-kv); else order=(rdb-kv rdb kvbench); fi
    for t in "${order[@]}"; do run_tool "$t" "$r"; done
    if [[ -n $LOG_DIR ]]; then
        cp "$tmp/kvbench.$r.json" "$tmp/kvbench.$r.log" "$tmp/rdb.$r.log" "$tmp/rdb-kv.$r.log" "$LOG_DIR/"
    fi
    echo "run $r of $RUNS (order: ${order[*]})"
    printf '%-12s | %9s %7s %7s %7s | %9s %7s %7s | %9s %7s %7s | %6s %9s\n' \
        benchmark "kv ops/s" "p50 us" "p99 us" found "rdb ops/s" "p50" "p99" \
        "rdb-kv/s" "p50" "p99" "kv/rdb" "kv/rdb-kv"
    for b in fillrandom readrandom updaterandom; do
        if [[ $b == updaterandom ]]; then
            # kvbench has no updaterandom: its fillrandom is the
            # read-then-write to compare with.
            kb=fillrandom; label="fill/update"
        else
            kb=$b; label=$b
        fi
        line=$(grep "\"benchmark\":\"$kb\"" "$tmp/kvbench.$r.json") || die "no $kb result from kvbench"
        kops=$(jfield "$line" ops_per_sec)
        kp50=$(jfield "$line" p50_us)
        kp99=$(jfield "$line" p99_us)
        kfound=$(jfield "$line" found)
        read -r rops rus rp50 rp99 < <(db_bench_fields "$tmp/rdb.$r.log" "$b") ||
            die "no $b result from db_bench (rdb)"
        read -r sops sus sp50 sp99 < <(db_bench_fields "$tmp/rdb-kv.$r.log" "$b") ||
            die "no $b result from db_bench (rdb-kv)"
        r1=$(ratio "$kops" "$rops")
        r2=$(ratio "$kops" "$sops")
        ratios+=("$b:rdb:$r1" "$b:rdb-kv:$r2")
        printf '%-12s | %9.0f %7.2f %7.2f %7s | %9.0f %7s %7s | %9.0f %7s %7s | %6s %9s\n' \
            "$label" "$kops" "$kp50" "$kp99" "${kfound:--}" "$rops" "${rp50:--}" "${rp99:--}" \
            "$sops" "${sp50:--}" "${sp99:--}" "$r1" "$r2"
    done
    for t in rdb rdb-kv; do
        grep -h -e 'found)' -e 'found:' "$tmp/$t.$r.log" |
            sed -n "s/^\([a-z]*\) *:.*\(([^)]*)\)\$/  $t \1: \2/p" || true
    done
    echo
done

echo "kv/rdb = kvbench ops/s / db_bench (default options) ops/s"
echo "kv/rdb-kv = kvbench ops/s / db_bench with libkv's store settings (rdb-kv) ops/s"
echo "fill/update row: kvbench fillrandom (kv columns) vs db_bench updaterandom ="
echo "  versioned write vs RocksDB read-modify-write (goal for all: >= 0.90)"
for b in fillrandom readrandom updaterandom; do
    for t in rdb rdb-kv; do
        printf '%s\n' "${ratios[@]}" | awk -F: -v b="$b" -v t="$t" '
            $1 == b && $2 == t { s += $3; n++; if (n == 1 || $3 < lo) lo = $3; if (n == 1 || $3 > hi) hi = $3 }
            END {
                name = b == "updaterandom" ? "fill/update" : b
                printf "  %-11s vs %-6s mean %.3f  min %.3f  max %.3f  over %d run(s)\n", name, t, s / n, lo, hi, n
            }'
    done
done

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
# Usage: tools/kvbench/compare-rocksdb.sh [BUILD_DIR]
#   BUILD_DIR (default build) is where kvbench was built, configured with
#   -DKV_BUILD_TOOLS=ON; kvbench is BUILD_DIR/tools/kvbench/kvbench.
# Environment (all optional):
#   RUNS=1           repetitions; the order of the two tools alternates
#   NUM=1000000 KEY_SIZE=20 VALUE_SIZE=200 CACHE_MB=64 THREADS=1 SEED=1
#   KVBENCH=BUILD_DIR/tools/kvbench/kvbench   DB_BENCH=$(command -v db_bench)
#   TMPDIR=/tmp      where the temporary DBs go (removed on exit)
#   LOG_DIR=         if set, the raw output of every run is copied there
#   DB_BENCH_EXTRA=  extra db_bench flags, e.g. --cache_index_and_filter_blocks=1
#                    (what libkv's store sets) for a variant of the comparison
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

run_db_bench() { # $1 = run number
    local out=$tmp/db_bench.$1
    "$DB_BENCH" --db="$tmp/rdb.$1" --benchmarks=fillrandom,readrandom \
        --num="$NUM" --key_size="$KEY_SIZE" --value_size="$VALUE_SIZE" \
        --compression_type=lz4 --compression_ratio=0.5 --bloom_bits=10 \
        --cache_size=$((CACHE_MB << 20)) --threads="$THREADS" --sync=0 \
        --histogram=1 --seed="$SEED" ${db_bench_extra[@]+"${db_bench_extra[@]}"} >"$out.log" 2>"$out.err" || { cat "$out.log" "$out.err" >&2; echo "compare-rocksdb: db_bench failed" >&2; exit 1; }
    rm -rf -- "$tmp/rdb.$1"
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
if [[ -n $DB_BENCH_EXTRA ]]; then echo "db_bench extra flags: $DB_BENCH_EXTRA"; fi
echo "machine:  $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo

ratios=()
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2 == 1)); then
        order="kvbench first"; run_kvbench "$r"; sync; run_db_bench "$r"
    else
        order="db_bench first"; run_db_bench "$r"; sync; run_kvbench "$r"
    fi
    sync
    if [[ -n $LOG_DIR ]]; then
        cp "$tmp/kvbench.$r.json" "$tmp/kvbench.$r.log" "$tmp/db_bench.$r.log" "$LOG_DIR/"
    fi
    echo "run $r of $RUNS ($order)"
    printf '%-11s | %10s %8s %8s %9s | %10s %9s %8s %8s | %7s\n' \
        benchmark "kv ops/s" "p50 us" "p99 us" found "rdb ops/s" "us/op" "p50 us" "p99 us" "kv/rdb"
    for b in fillrandom readrandom; do
        line=$(grep "\"benchmark\":\"$b\"" "$tmp/kvbench.$r.json") || die "no $b result from kvbench"
        kops=$(jfield "$line" ops_per_sec)
        kp50=$(jfield "$line" p50_us)
        kp99=$(jfield "$line" p99_us)
        kfound=$(jfield "$line" found)
        read -r rops rus rp50 rp99 < <(db_bench_fields "$tmp/db_bench.$r.log" "$b") ||
            die "no $b result from db_bench"
        ratio=$(awk -v a="$kops" -v b="$rops" 'BEGIN { printf "%.3f", a / b }')
        ratios+=("$b:$ratio")
        printf '%-11s | %10.0f %8.2f %8.2f %9s | %10s %9s %8s %8s | %7s\n' \
            "$b" "$kops" "$kp50" "$kp99" "${kfound:--}" "$rops" "$rus" "${rp50:--}" "${rp99:--}" "$ratio"
    done
    grep -h 'found)' "$tmp/db_bench.$r.log" | sed 's/^/  db_bench: /' || true
    echo
done

echo "kv/rdb = kvbench ops/s divided by db_bench ops/s (goal: >= 0.90)"
for b in fillrandom readrandom; do
    printf '%s\n' "${ratios[@]}" | awk -F: -v b="$b" '
        $1 == b { s += $2; n++; if (n == 1 || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2 }
        END { printf "  %-11s mean %.3f  min %.3f  max %.3f  over %d run(s)\n", b, s / n, lo, hi, n }'
done

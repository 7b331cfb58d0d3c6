#!/usr/bin/env bash
# compare-redis.sh - one kvd node over the binary protocol (kvbench binary)
# and over HTTP (kvbench http), against redis-server driven by
# redis-benchmark, with the same connection count and value size, side by
# side in one run.
#
# Workload:
#   kvd      one node, a fresh data directory per run, --sync none (the WAL is
#            written, never fsynced per write). KEYS keys are written once
#            (a kvbench preload), then each measured kvbench run goes
#            --no-preload: DURATION seconds of GETs (READ_RATIO) and PUTs of
#            VALUE_SIZE-byte values, keys drawn uniformly from KEYS 16-byte
#            keys.
#     binary kvbench binary --connections CONNECTIONS --depth DEPTH: one
#            thread keeps DEPTH requests in flight on each of CONNECTIONS
#            connections through the asynchronous API (kv_*_async on a
#            manual_loop client), as redis-benchmark keeps one per
#            connection (-P DEPTH pipelines DEPTH). BLOCKING=1 runs the
#            blocking client instead: --threads CONNECTIONS threads, one
#            request each (DEPTH must be 1 then).
#     http   kvbench http --threads CONNECTIONS: one keep-alive connection per
#            thread, one request at a time.
#   redis    redis-server, a fresh process per run, with no snapshots
#            (--save ''); with KVD_SYNC=none it writes its append-only log
#            without fsync (--appendonly yes --appendfsync no), as kvd writes
#            its WAL without fsync; otherwise --appendfsync everysec (always
#            for KVD_SYNC=always). redis-benchmark -c CONNECTIONS -d
#            VALUE_SIZE -r KEYS -n REDIS_REQUESTS -t set,get -P DEPTH. Its keys are
#            "key:" + 12 digits, 16 bytes like kvbench's. redis-benchmark runs
#            all the SETs, then all the GETs, not a mix: both are reported,
#            and a READ_RATIO mix figure is derived from them as the weighted
#            harmonic mean 1 / (READ_RATIO / get_rps + (1 - READ_RATIO) /
#            set_rps), i.e. the rate if every operation took the mean time of
#            its kind, which is what a mixed stream on one connection would
#            see. The p50/p99 of the mix cannot be derived; see the SET and
#            GET rows.
# Latencies are not comparable across the tools: kvbench times a request from
# the call to its return, so its mean is the whole cycle (about CONNECTIONS /
# ops/s); redis-benchmark times from writing the request to reading the reply,
# leaving out the wait of a ready client for its own single-threaded event
# loop, and its mean is about half the cycle here. Compare throughput.
# Server CPU: the kvd or redis-server process's user+system CPU time over
# each measured tool (from /proc/PID/stat), as % of one core and as CPU
# microseconds per operation; the same for the load generator (kvbench or
# redis-benchmark). Both share the same cores.
#
# The order alternates: odd runs go binary, http, redis; even runs redis,
# http, binary.
#
# Usage: tools/kvbench/compare-redis.sh [BUILD_DIR]
#   BUILD_DIR (default build) is where kvd and kvbench were built, configured
#   with -DKV_BUILD_TOOLS=ON.
# Environment (all optional):
#   RUNS=2 DURATION=20 CONNECTIONS=50 DEPTH=1 BLOCKING=0 HTTP=1 (0: skip the
#   http tool) VALUE_SIZE=200 KEYS=100000
#   READ_RATIO=0.9 REDIS_REQUESTS=1000000 (per redis-benchmark test) SEED=1
#   KVD_SYNC=none (always|periodic|none)
#   KVD=BUILD_DIR/tools/kvd/kvd  KVBENCH=BUILD_DIR/tools/kvbench/kvbench
#   REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI (default: from PATH;
#   apt-get install redis-server redis-tools)
#   TMPDIR=/tmp   where the data directories go (removed on exit)
#   LOG_DIR=      if set, the raw output of every tool is copied there
# Everything listens on and connects to 127.0.0.1 only, on ports chosen at
# random among free ones. Only the processes this script starts are stopped,
# by pid. Exit status: 0 ok, 1 a tool failed, 2 bad setup.

# Written for bash; `sh compare-redis.sh` (as make bench-node does) re-executes
# it under bash before any bash-only line is read.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

RUNS=${RUNS:-2}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-50}
DEPTH=${DEPTH:-1}
BLOCKING=${BLOCKING:-0}
HTTP=${HTTP:-1}
VALUE_SIZE=${VALUE_SIZE:-200}
KEYS=${KEYS:-100000}
READ_RATIO=${READ_RATIO:-0.9}
REDIS_REQUESTS=${REDIS_REQUESTS:-1000000}
SEED=${SEED:-1}
KVD_SYNC=${KVD_SYNC:-none}
if (($# > 1)); then echo "usage: $0 [BUILD_DIR]" >&2; exit 2; fi
build_dir=${1:-$repo/build}
KVD=${KVD:-$build_dir/tools/kvd/kvd}
KVBENCH=${KVBENCH:-$build_dir/tools/kvbench/kvbench}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-$(command -v redis-benchmark || true)}
REDIS_CLI=${REDIS_CLI:-$(command -v redis-cli || true)}
LOG_DIR=${LOG_DIR:-}

die() { echo "compare-redis: $*" >&2; exit 2; }
fail() { echo "compare-redis: $*" >&2; exit 1; }
[[ -x $KVD ]] || die "kvd not found at $KVD (configure with -DKV_BUILD_TOOLS=ON and build, or set KVD)"
[[ -x $KVBENCH ]] || die "kvbench not found at $KVBENCH (or set KVBENCH)"
for t in REDIS_SERVER REDIS_BENCHMARK REDIS_CLI; do
    [[ -n ${!t} && -x ${!t} ]] || die "${t,,} not found (apt-get install redis-server redis-tools, or set $t)"
done
command -v curl >/dev/null || die "curl not found"
for v in RUNS DURATION CONNECTIONS DEPTH BLOCKING HTTP VALUE_SIZE KEYS REDIS_REQUESTS SEED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((RUNS >= 1 && DURATION >= 1 && CONNECTIONS >= 1 && KEYS >= 1 && REDIS_REQUESTS >= 1)) ||
    die "RUNS, DURATION, CONNECTIONS, KEYS and REDIS_REQUESTS must be at least 1"
((CONNECTIONS <= 64)) || die "CONNECTIONS must be at most 64 (the client's limit)"
((DEPTH >= 1)) || die "DEPTH must be at least 1"
((BLOCKING == 0 || DEPTH == 1)) || die "BLOCKING=1 runs one request per thread: DEPTH must be 1"
[[ $READ_RATIO =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "READ_RATIO must be in 0..1, got '$READ_RATIO'"
case $KVD_SYNC in always | periodic | none) ;; *) die "KVD_SYNC must be always, periodic or none" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvredis.XXXXXX")
kvd_pid=""
redis_pid=""
# stop_pid PID: SIGTERM, up to 10 s for it to exit, then SIGKILL. Only ever
# called with the pid of a process this script started.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    if [[ -n $kvd_pid ]]; then stop_pid "$kvd_pid"; fi
    if [[ -n $redis_pid ]]; then stop_pid "$redis_pid"; fi
    rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -n $LOG_DIR ]]; then mkdir -p "$LOG_DIR"; fi

used_ports=" "
# free_port: a random port in 20000..59999 that nothing on 127.0.0.1 listens
# on and that this script has not handed out yet (at most 200 tries).
free_port() {
    local i p
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [[ $used_ports == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            used_ports+="$p "
            echo "$p"
            return 0
        fi
    done
    fail "no free port found"
}

clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU time of the process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# client_cpu FILE CMD...: runs CMD under a shell that, once CMD has exited,
# writes CMD's user + system CPU time (its own cutime + cstime, in clock
# ticks) to FILE; returns CMD's status.
client_cpu() {
    local f=$1
    shift
    sh -c '"$@"; rc=$?; awk '\''{ sub(/^.*\) /, ""); print $14 + $15 }'\'' /proc/$$/stat >"$0"; exit $rc' "$f" "$@"
}

start_kvd() { # $1 = run number; sets kvd_pid, kvd_port, kvd_http
    kvd_port=$(free_port)
    kvd_http=$(free_port)
    "$KVD" --data "$tmp/kvd.$1" --listen "127.0.0.1:$kvd_port" --http "127.0.0.1:$kvd_http" \
        --node-id bench --sync "$KVD_SYNC" --log-level warn >"$tmp/kvd.$1.log" 2>&1 &
    kvd_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fsS --noproxy '*' --max-time 1 "http://127.0.0.1:$kvd_http/v1/health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$kvd_pid" 2>/dev/null || { cat "$tmp/kvd.$1.log" >&2; fail "kvd exited at start"; }
        sleep 0.1
    done
    cat "$tmp/kvd.$1.log" >&2
    fail "kvd did not answer /v1/health within 10 s"
}

start_redis() { # $1 = run number; sets redis_pid, redis_port
    redis_port=$(free_port)
    mkdir -p "$tmp/redis.$1"
    local aof=(--appendonly yes --appendfsync no)
    if [[ $KVD_SYNC == always ]]; then aof=(--appendonly yes --appendfsync always);
    elif [[ $KVD_SYNC == periodic ]]; then aof=(--appendonly yes --appendfsync everysec); fi
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$redis_port" --save '' "${aof[@]}" \
        --daemonize no --dir "$tmp/redis.$1" --logfile "$tmp/redis.$1.log" &
    redis_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ $("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]]; then
            return 0
        fi
        kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis.$1.log" >&2; fail "redis-server exited at start"; }
        sleep 0.1
    done
    cat "$tmp/redis.$1.log" >&2
    fail "redis-server did not answer PING within 10 s"
}

kvbench_common=(--keys "$KEYS" --value-size "$VALUE_SIZE" --read-ratio "$READ_RATIO"
    --seed "$SEED")
if ((BLOCKING)); then binary_shape=(--threads "$CONNECTIONS")
else binary_shape=(--depth "$DEPTH"); fi

# The key space, written once per run through the binary protocol (kvbench
# preloads, then does a single request).
preload_kvd() { # $1 = run number
    "$KVBENCH" binary --endpoints "127.0.0.1:$kvd_port" --connections "$CONNECTIONS" \
        --depth 16 "${kvbench_common[@]}" --requests 1 --json >"$tmp/preload.$1.json" 2>"$tmp/preload.$1.log" ||
        { cat "$tmp/preload.$1.log" >&2; fail "kvbench preload failed"; }
}

# run_kvbench MODE RUN: one measured kvbench run against the node, with the
# node's CPU time over it in $tmp/MODE.RUN.cpu ("ticks seconds").
run_kvbench() {
    local mode=$1 r=$2 target t0 t1 w0 w1
    if [[ $mode == binary ]]; then
        target=(--endpoints "127.0.0.1:$kvd_port" --connections "$CONNECTIONS"
            "${binary_shape[@]}")
    else
        target=(--url "http://127.0.0.1:$kvd_http" --threads "$CONNECTIONS")
    fi
    t0=$(cpu_ticks "$kvd_pid")
    w0=$(date +%s.%N)
    client_cpu "$tmp/$mode.$r.ccpu" "$KVBENCH" "$mode" "${target[@]}" "${kvbench_common[@]}" \
        --duration "$DURATION" --no-preload --json >"$tmp/$mode.$r.json" 2>"$tmp/$mode.$r.log" ||
        { cat "$tmp/$mode.$r.log" >&2; fail "kvbench $mode failed"; }
    w1=$(date +%s.%N)
    t1=$(cpu_ticks "$kvd_pid")
    echo "$((t1 - t0)) $(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" >"$tmp/$mode.$r.cpu"
}

run_redis() { # $1 = run number
    local r=$1 t0 t1 w0 w1
    start_redis "$r"
    t0=$(cpu_ticks "$redis_pid")
    w0=$(date +%s.%N)
    client_cpu "$tmp/redis.$r.ccpu" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$redis_port" -c "$CONNECTIONS" -n "$REDIS_REQUESTS" \
        -d "$VALUE_SIZE" -r "$KEYS" -P "$DEPTH" -t set,get --csv >"$tmp/redis.$r.csv" 2>"$tmp/redis.$r.err" ||
        { cat "$tmp/redis.$r.err" >&2; fail "redis-benchmark failed"; }
    w1=$(date +%s.%N)
    t1=$(cpu_ticks "$redis_pid")
    echo "$((t1 - t0)) $(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" >"$tmp/redis.$r.cpu"
    redis_keys=$("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" dbsize 2>/dev/null || echo '?')
    stop_pid "$redis_pid"
    redis_pid=""
}

run_tool() { # $1 = binary, http or redis, $2 = run number
    echo "  $(date +%T) $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    if [[ $1 == redis ]]; then run_redis "$2"; else run_kvbench "$1" "$2"; fi
}

# jfield TEXT NAME: a number field of a flat JSON object.
jfield() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"; }
# kv_section FILE NAME: the flat object "NAME":{...} of a kvbench result
# (total, get or put of the measured run, not the preload's).
kv_section() {
    local json
    json=$(<"$1")
    json=${json#*\"seconds\":} # skip the preload object
    sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p" <<<"$json"
}
# redis_field FILE TEST COLUMN: a column of redis-benchmark's CSV
# (2 rps, 5 p50 ms, 7 p99 ms).
redis_field() { awk -F, -v t="\"$2\"" -v c="$3" '$1 == t { gsub(/"/, "", $c); print $c }' "$1"; }
# cpu_cols CPUFILE CLIENTFILE OPS: the server's CPU as % of one core and in
# CPU us per operation, then the same for the load generator.
cpu_cols() {
    local ticks secs cticks
    read -r ticks secs <"$1"
    read -r cticks <"$2"
    awk -v t="$ticks" -v c="$cticks" -v s="$secs" -v n="$3" -v hz="$clk_tck" 'BEGIN {
        printf "%7.0f%% %7.1f %7.0f%% %7.1f", 100 * t / hz / s, 1e6 * t / hz / n,
            100 * c / hz / s, 1e6 * c / hz / n }'
}
# row LABEL OPS/S P50_US P99_US [CPU COLUMNS]
row() { printf '%-12s %9.0f %8.1f %8.1f%s\n' "$1" "$2" "$3" "$4" "${5:+ $5}"; }

echo "kvd:       $KVD (--sync $KVD_SYNC)"
echo "kvbench:   $KVBENCH"
echo "redis:     $("$REDIS_SERVER" --version)"
echo "           redis-benchmark $(dpkg-query -W -f='${Version}' redis-tools 2>/dev/null || echo '(version unknown)')"
echo "workload:  $CONNECTIONS connections, $DEPTH in flight on each$( ((BLOCKING)) && echo ' (blocking client)'), $KEYS keys, values $VALUE_SIZE bytes, read ratio $READ_RATIO;"
echo "           kvbench ${DURATION} s per protocol; redis-benchmark $REDIS_REQUESTS SETs then $REDIS_REQUESTS GETs"
echo "machine:   $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo

summary=()
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2 == 1)); then order=(binary http redis); else order=(redis http binary); fi
    if ((!HTTP)); then order=("${order[@]/http/}"); order=(${order[@]}); fi
    echo "run $r of $RUNS (order: ${order[*]})" >&2
    start_kvd "$r"
    preload_kvd "$r"
    for t in "${order[@]}"; do run_tool "$t" "$r"; done
    stop_pid "$kvd_pid"
    kvd_pid=""
    rm -rf -- "$tmp/kvd.$r"
    if [[ -n $LOG_DIR ]]; then
        for f in preload.$r.json binary.$r.json binary.$r.log http.$r.json http.$r.log \
            redis.$r.csv redis.$r.log kvd.$r.log; do
            if [[ -f $tmp/$f ]]; then cp "$tmp/$f" "$LOG_DIR/"; fi
        done
    fi

    echo "run $r of $RUNS (order: ${order[*]})"
    printf '%-12s %9s %8s %8s %8s %7s %8s %7s\n' "" "ops/s" "p50 us" "p99 us" \
        "srv cpu" "us/op" "cli cpu" "us/op"
    modes=(binary)
    if ((HTTP)); then modes+=(http); fi
    for m in "${modes[@]}"; do
        tot=$(kv_section "$tmp/$m.$r.json" total)
        [[ -n $tot ]] || fail "no result from kvbench $m"
        errs=$(jfield "$tot" errors)
        [[ $errs == 0 ]] || fail "kvbench $m reported $errs errors"
        ops=$(jfield "$tot" ops_per_sec)
        row "kvd $m" "$ops" "$(jfield "$tot" p50_us)" "$(jfield "$tot" p99_us)" \
            "$(cpu_cols "$tmp/$m.$r.cpu" "$tmp/$m.$r.ccpu" "$(jfield "$tot" ops)")"
        for op in get put; do
            sec=$(kv_section "$tmp/$m.$r.json" "$op")
            row "  $op" "$(jfield "$sec" ops_per_sec)" "$(jfield "$sec" p50_us)" "$(jfield "$sec" p99_us)"
        done
        summary+=("$m $ops")
    done
    set_rps=$(redis_field "$tmp/redis.$r.csv" SET 2)
    get_rps=$(redis_field "$tmp/redis.$r.csv" GET 2)
    [[ -n $set_rps && -n $get_rps ]] || fail "no SET/GET result from redis-benchmark"
    mix=$(awk -v s="$set_rps" -v g="$get_rps" -v rr="$READ_RATIO" \
        'BEGIN { printf "%.0f", 1 / (rr / g + (1 - rr) / s) }')
    printf '%-12s %9.0f %8s %8s %s\n' "redis mix" "$mix" "-" "-" \
        "$(cpu_cols "$tmp/redis.$r.cpu" "$tmp/redis.$r.ccpu" $((2 * REDIS_REQUESTS)))"
    for op in SET GET; do
        row "  $op" "$(redis_field "$tmp/redis.$r.csv" "$op" 2)" \
            "$(awk -v ms="$(redis_field "$tmp/redis.$r.csv" "$op" 5)" 'BEGIN { print ms * 1000 }')" \
            "$(awk -v ms="$(redis_field "$tmp/redis.$r.csv" "$op" 7)" 'BEGIN { print ms * 1000 }')"
    done
    summary+=("redis $mix" "redis_set $set_rps" "redis_get $get_rps")
    echo "kvd GET misses: binary $(jfield "$(<"$tmp/binary.$r.json")" misses);" \
        "redis keys after the run: $redis_keys"
    http_ops=0
    if ((HTTP)); then http_ops=$(jfield "$(kv_section "$tmp/http.$r.json" total)" ops_per_sec); fi
    awk -v b="$(jfield "$(kv_section "$tmp/binary.$r.json" total)" ops_per_sec)" \
        -v h="$http_ops" -v m="$mix" \
        'BEGIN { printf "binary/redis %.3f   http/redis %.3f\n\n", b / m, h / m }'
done

echo "redis mix = 1 / ($READ_RATIO / GET ops/s + (1 - $READ_RATIO) / SET ops/s) of redis-benchmark"
echo "srv cpu = the server process's CPU time over the tool's run, in % of one core, and"
echo "  us/op = that CPU time / operations (redis: SETs + GETs); cli cpu = the same for"
echo "  the load generator (kvbench or redis-benchmark); the machine has $(nproc) cores in all"
echo "p50/p99: kvbench's cover the whole request cycle, redis-benchmark's leave out its own"
echo "  event-loop wait (see the header of this script): compare ops/s, not latencies"
printf '%s\n' "${summary[@]}" | awk '
    { s[$1] += $2; n[$1]++ }
    END {
        printf "mean over %d run(s): binary %.0f, http %.0f, redis mix %.0f (SET %.0f, GET %.0f)\n",
            n["binary"], s["binary"] / n["binary"], n["http"] ? s["http"] / n["http"] : 0,
            s["redis"] / n["redis"], s["redis_set"] / n["redis_set"], s["redis_get"] / n["redis_get"]
        printf "  binary/redis %.3f   http/redis %.3f\n",
            s["binary"] / s["redis"], s["http"] / s["redis"]
    }'

#!/bin/sh
# What TLS costs on the binary protocol: one kvd on 127.0.0.1, plain and
# with --tls-cert/--tls-key, driven by kvbench binary with the same
# workload, GET-only and PUT-only, the order alternating from run to run.
# Prints one line per run with ops/s, p99 and kvd's CPU per operation.
#
#   sh tools/kvbench/compare-tls.sh BUILD_DIR      (RUNS=2 DURATION=15 by default)
#
# Everything it starts is stopped by pid, from a trap as well; it talks to
# loopback only.
set -eu
BUILD=${1:?usage: compare-tls.sh BUILD_DIR}
RUNS=${RUNS:-2}
DURATION=${DURATION:-15}
KVD=$BUILD/tools/kvd/kvd
KVBENCH=$BUILD/tools/kvbench/kvbench
TMP=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A CA and a certificate for 127.0.0.1 it signs.
(cd "$TMP" &&
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
     -subj /CN=bench-ca -keyout ca.key -out ca.pem &&
 printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext &&
 openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench \
     -keyout node.key -out node.csr &&
 openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
     -extfile ext -out node.pem) >/dev/null 2>&1

# kvd's user + system CPU, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# run MODE(plain|tls) READ_RATIO: starts a fresh kvd, preloads, measures.
run() {
    mode=$1
    ratio=$2
    port=$(free_port)
    dir=$TMP/data.$mode.$ratio.$$
    rm -rf "$dir"
    tls_flags=""
    client_flags=""
    if [ "$mode" = tls ]; then
        tls_flags="--tls-cert $TMP/node.pem --tls-key $TMP/node.key"
        client_flags="--tls-ca $TMP/ca.pem"
    fi
    # shellcheck disable=SC2086
    "$KVD" --data "$dir" --listen 127.0.0.1:"$port" --node-id bench --sync none \
        --log-level warn $tls_flags 2>"$TMP/kvd.log" &
    PID=$!
    i=0
    # shellcheck disable=SC2086
    until "$KVBENCH" binary --endpoints 127.0.0.1:"$port" $client_flags --requests 1 \
            --keys 1 --no-preload >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "kvd did not start" >&2; exit 1; }
        sleep 0.1
    done
    # shellcheck disable=SC2086
    "$KVBENCH" binary --endpoints 127.0.0.1:"$port" $client_flags --connections 50 \
        --threads 50 --keys 100000 --value-size 200 --read-ratio "$ratio" --seed 1 \
        --requests 1 --json >/dev/null 2>&1
    before=$(cpu_ticks "$PID")
    # shellcheck disable=SC2086
    out=$("$KVBENCH" binary --endpoints 127.0.0.1:"$port" $client_flags --connections 50 \
        --threads 50 --keys 100000 --value-size 200 --read-ratio "$ratio" --seed 1 \
        --duration "$DURATION" --no-preload --json 2>/dev/null)
    after=$(cpu_ticks "$PID")
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    rm -rf "$dir"
    hz=$(getconf CLK_TCK)
    echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
mode, ratio, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = r["total"]
ops, total, p99 = t["ops_per_sec"], t["ops"], t["p99_us"]
cpu_us = ticks / hz * 1e6 / total if total else 0
kind = "GET" if ratio == "1" else "PUT"
errors = r.get("errors", 0)
print(f"{mode:5} {kind}  {ops:10.0f} ops/s  p99 {p99:8.0f} us  kvd CPU {cpu_us:5.1f} us/op  ({total} requests, {errors} errors)")
' "$mode" "$ratio" "$((after - before))" "$hz"
}

n=1
while [ $n -le "$RUNS" ]; do
    echo "run $n"
    if [ $((n % 2)) -eq 1 ]; then order="plain tls"; else order="tls plain"; fi
    for ratio in 1 0; do
        for mode in $order; do
            run "$mode" "$ratio"
        done
    done
    n=$((n + 1))
done

#!/bin/sh
# Starts one kvd on 127.0.0.1 (binary protocol on 7400, HTTP on 8080), waits
# until it serves, prints how to use it, and stops it on Ctrl-C.
# Data and log in BUILD_DIR/run/node, apart from make run's cluster (in
# BUILD_DIR/run/cluster): the two can run side by side.
# Usage: scripts/run-node.sh BUILD_DIR
set -eu
build=${1:-build}
run="$build/run/node"
data="$run/data"
log="$run/kvd.log"
binary=${KV_BINARY_ADDR:-127.0.0.1:7400}
http=${KV_HTTP_ADDR:-127.0.0.1:8080}
mkdir -p "$data"
: >>"$log"
logged=$(wc -l <"$log")

"$build/tools/kvd/kvd" --data "$data" --listen "$binary" --http "$http" --node-id n1 \
    2>>"$log" &
pid=$!
stop() {
    kill -TERM $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
}
# Ctrl-C is the normal way out: stop kvd cleanly (SIGTERM) and exit 0.
trap 'stop; echo; echo "kvd stopped."; exit 0' INT TERM
trap stop EXIT

i=0
until curl -fsS "http://$http/v1/health" >/dev/null 2>&1 &&
        tail -n +"$((logged + 1))" "$log" | grep -q '"ready'; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
        echo "kvd did not start; its log:" >&2
        tail -5 "$log" >&2
        exit 1
    fi
    sleep 0.1
done

# A store that remembers other members (a cluster's) is still theirs: kvd
# says so on stderr, which goes to the log; show it here too.
tail -n +"$((logged + 1))" "$log" | grep '^kvd: ' >&2 || true

env_line="export KVCTL_ENDPOINTS=$binary"
echo "$env_line" >"$run/env"

cat <<TXT
kvd is serving node n1 (data in $data, log in $log)
  HTTP/JSON API    http://$http
  binary protocol  $binary (kvctl: $env_line, also in $run/env)

Try it:
  curl -X PUT http://$http/v1/kv/greeting -d '{"value": "hello", "ttl": 3600}'
  curl http://$http/v1/kv/greeting
  curl -X POST http://$http/v1/kv/greeting/cas -d '{"expectedVersion": 1, "newValue": "hi"}'
  curl -X DELETE http://$http/v1/kv/greeting
  curl http://$http/metrics
  $build/tools/kvctl/kvctl --endpoints $binary put user:1 ada
  $build/tools/kvctl/kvctl --endpoints $binary get user:1

Press Ctrl-C to stop.
TXT
wait $pid

#!/bin/sh
# Starts one kvd on 127.0.0.1 (binary protocol on 7400, HTTP on 8080), waits
# until it serves, prints how to use it, and stops it on Ctrl-C.
# Usage: scripts/run-node.sh BUILD_DIR
set -eu
build=${1:-build}
data="$build/run/n1"
binary=${KV_BINARY_ADDR:-127.0.0.1:7400}
http=${KV_HTTP_ADDR:-127.0.0.1:8080}
mkdir -p "$data"

"$build/tools/kvd/kvd" --data "$data" --listen "$binary" --http "$http" --node-id n1 \
    2>>"$build/run/n1.log" &
pid=$!
stop() {
    kill -TERM $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
}
# Ctrl-C is the normal way out: stop kvd cleanly (SIGTERM) and exit 0.
trap 'stop; echo; echo "kvd stopped."; exit 0' INT TERM
trap stop EXIT

i=0
until curl -fsS "http://$http/v1/health" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
        echo "kvd did not start; its log:" >&2
        tail -5 "$build/run/n1.log" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<TXT
kvd is serving node n1 (data in $data, log in $build/run/n1.log)
  HTTP/JSON API    http://$http
  binary protocol  $binary

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

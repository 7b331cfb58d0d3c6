#!/bin/sh
# Starts a local 3-node cluster on 127.0.0.1: kvd n1, n2, n3 with their binary
# protocol on 7401-7403 and HTTP on 8081-8083, N = 3. Waits until the cluster
# serves, prints how to use it, and stops all three on Ctrl-C.
# Data and logs in BUILD_DIR/run/cluster (make run-node uses BUILD_DIR/run/node,
# so the two never share a store); BUILD_DIR/run/cluster/env holds the line
# that points kvctl at the cluster.
# Usage: scripts/run-cluster.sh BUILD_DIR
set -eu
build=${1:-build}
kvd="$build/tools/kvd/kvd"
kvctl="$build/tools/kvctl/kvctl"
peers=127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403
run="$build/run/cluster"
pids=

stop() {
    for pid in $pids; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        wait "$pid" 2>/dev/null || true
    done
    pids=
}
# Ctrl-C is the normal way out: stop every kvd cleanly (SIGTERM), exit 0.
trap 'stop; echo; echo "cluster stopped."; exit 0' INT TERM
trap stop EXIT

for i in 1 2 3; do
    mkdir -p "$run/n$i"
    "$kvd" --data "$run/n$i" --node-id "n$i" --listen "127.0.0.1:740$i" \
        --http "127.0.0.1:808$i" --peers "$peers" 2>>"$run/n$i.log" &
    pids="$pids $!"
done

# Serving: every node knows the whole ring and a write at ALL succeeds.
i=0
until "$kvctl" --endpoints 127.0.0.1:7401 --timeout 1000 --consistency all \
        put run:ready yes >/dev/null 2>&1; do
    i=$((i + 1))
    for pid in $pids; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a kvd exited; the logs:" >&2
            tail -n 3 "$run"/n*.log >&2
            exit 1
        fi
    done
    if [ $i -gt 100 ]; then
        echo "the cluster did not start serving; the logs:" >&2
        tail -n 3 "$run"/n*.log >&2
        exit 1
    fi
    sleep 0.2
done

# And the members have heard from each other (gossip, about a second).
i=0
while [ $i -lt 50 ] && curl -fsS http://127.0.0.1:8081/v1/cluster 2>/dev/null |
        grep -Eq '"status":"(unknown|joining)"'; do
    i=$((i + 1))
    sleep 0.2
done

# kvctl speaks the binary protocol: this line points it at the cluster.
env_line="export KVCTL_ENDPOINTS=$peers"
echo "$env_line" >"$run/env"

cat <<TXT
A 3-node cluster is serving on 127.0.0.1 (replication factor 3):
  n1  HTTP http://127.0.0.1:8081  binary 127.0.0.1:7401
  n2  HTTP http://127.0.0.1:8082  binary 127.0.0.1:7402
  n3  HTTP http://127.0.0.1:8083  binary 127.0.0.1:7403
Data in $run/n1..n3, logs in $run/n1.log..n3.log.

Try it (any node answers for any key; consistency is one, quorum or all):
  curl -X PUT http://127.0.0.1:8081/v1/kv/greeting -d '{"value": "hello", "ttl": 3600}'
  curl http://127.0.0.1:8082/v1/kv/greeting
  curl -X PUT 'http://127.0.0.1:8083/v1/kv/greeting?consistency=all' -d '{"value": "hi"}'
  curl -X POST http://127.0.0.1:8081/v1/kv/greeting/cas -d '{"expectedVersion": 2, "newValue": "hey"}'
  curl http://127.0.0.1:8081/v1/cluster

kvctl talks to the binary ports; in another shell, point it at the cluster
(the same line is in $run/env: . $run/env):
  $env_line
  $kvctl put user:1 ada
  $kvctl get user:1 --verbose
  $kvctl members
  $kvctl ring

Press Ctrl-C to stop all three.
TXT
for pid in $pids; do
    wait "$pid" || true
done

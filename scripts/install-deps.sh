#!/bin/sh
# Installs the Debian 12 packages that building and testing libkv need, and
# only those that are missing (so a second run is instant). etcd is among
# them: net.etcd runs the etcd client against a real one; and chromium:
# integration.status_page loads the status page in headless Chromium. With the argument
# `bench`, also the anchors the benchmarks run against (db_bench, Redis; and
# etcd, from the base list).
# Needs root when anything is missing.
set -eu

PACKAGES="
build-essential
cmake
pkg-config
librocksdb-dev
libxxhash-dev
libcmocka-dev
libmicrohttpd-dev
libcjson-dev
libcurl4-openssl-dev
libgnutls28-dev
openssl
curl
python3
python3-pip
python3-setuptools
python3-wheel
golang-go
clang-14
libclang-rt-14-dev
nftables
iproute2
etcd-server
etcd-client
chromium
"
if [ "${1:-}" = bench ]; then
    PACKAGES="$PACKAGES rocksdb-tools redis-server redis-tools"
    # bindings/python/bench.py's anchors
    PACKAGES="$PACKAGES python3-plyvel python3-lmdb python3-redis"
    # bindings/go/bench-goleveldb's anchor (Go sources under /usr/share/gocode)
    PACKAGES="$PACKAGES golang-github-syndtr-goleveldb-dev"
fi

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (or install these packages yourself):$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing

#!/bin/sh
# Installs the Debian 12 packages that building, testing and benchmarking
# libkv need, and only those that are missing (so a second run is instant).
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
curl
python3
clang-14
libclang-rt-14-dev
rocksdb-tools
redis-server
redis-tools
"

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

#!/bin/sh
# Runs a test in a network namespace of its own (unshare -n, as root), with
# its loopback up, so that it can cut traffic between addresses in
# 127.0.0.0/8 with nft rules that touch nothing outside. Usage:
#   in_netns.sh PROGRAM [ARGS...]
set -eu
if ! command -v nft >/dev/null 2>&1; then
    echo "in_netns.sh: nft is missing (Debian package nftables; make deps installs it)" >&2
    exit 1
fi
exec unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' "$@"

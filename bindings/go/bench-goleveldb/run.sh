#!/bin/sh
# Runs the libkv-vs-goleveldb benchmark COUNT times (default 3), offline, and
# prints the median ns per call of each benchmark and the libkv/goleveldb
# ratio (below 1: libkv is faster). Needs libkv built in ../../../build (cmake
# with -DKV_BUILD_TESTS=ON) and golang-github-syndtr-goleveldb-dev installed
# (scripts/install-deps.sh bench).
set -eu
cd "$(dirname "$0")"
top=$(cd ../../.. && pwd)
export PKG_CONFIG_PATH="$top/build/tests/go/pkgconfig" LD_LIBRARY_PATH="$top/build/lib"
export GOFLAGS=-mod=mod GOPROXY=off
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
nice go test -run XXX -bench . -benchtime 1x -count "${COUNT:-3}" | tee "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
$1 ~ /^Benchmark/ && $NF == "ns/call" {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    n = split(name, p, "/")            # Put g1 libkv
    key = p[1] " " p[2]
    v[key, p[3], ++c[key, p[3]]] = $(NF - 1)
    if (!(key in seen)) { seen[key] = 1; order[++k] = key }
}
function median(key, s,    m, i, j, t, a) {
    m = c[key, s]
    for (i = 1; i <= m; i++) a[i] = v[key, s, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
    print ""
    print "| op | goroutines | libkv ns/call | goleveldb ns/call | libkv/goleveldb |"
    print "| --- | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= k; i++) {
        split(order[i], p, " ")
        a = median(order[i], "libkv"); b = median(order[i], "goleveldb")
        printf "| %s | %s | %d | %d | %.2f |\n", p[1], substr(p[2], 2), a, b, a / b
    }
}' "$out"

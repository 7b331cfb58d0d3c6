#!/bin/sh
# check_exports.sh - libkv.so exports the public API and nothing else.
#
# usage: check_exports.sh [--headers INCLUDE_DIR] [--soname NAME]
#                         [--static LIBKV_A] LIBKV_SO
#
# Fails when:
#  - `nm -D --defined-only` lists a symbol that does not start with kv_;
#  - there are no kv_ symbols, or kv_open, kv_put, kv_get or kv_strerror is
#    missing;
#  - (with --headers) a kv_ symbol is exported that no public header declares
#    with KV_API (an internal symbol leaking), or a KV_API function is declared
#    but not exported (missing definition or KV_API on the definition);
#  - `readelf -d` does not show the SONAME (default libkv.so.0).
# With --static, lists global symbols of libkv.a not starting with kv (a
# static consumer's namespace); informational only, never fails.
set -eu

headers=
soname=libkv.so.0
static=
while [ $# -gt 1 ]; do
    case $1 in
    --headers) headers=$2; shift 2 ;;
    --soname) soname=$2; shift 2 ;;
    --static) static=$2; shift 2 ;;
    *) break ;;
    esac
done
if [ $# -ne 1 ]; then
    echo "usage: $0 [--headers DIR] [--soname NAME] [--static LIBKV_A] LIBKV_SO" >&2
    exit 2
fi
lib=$1
[ -f "$lib" ] || { echo "no library at $lib (build first)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kv-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT PIPE TERM
fail=0

# Names only; strip any @VERSION suffix so a versioned build still matches.
nm -D --defined-only "$lib" >"$tmp/nm.out"
awk '{ print $NF }' "$tmp/nm.out" | sed 's/@.*//' | sort -u >"$tmp/exported"

grep -v '^kv_' "$tmp/exported" >"$tmp/bad" || true
if [ -s "$tmp/bad" ]; then
    echo "FAIL: symbols exported without the kv_ prefix:" >&2
    sed 's/^/    /' "$tmp/bad" >&2
    fail=1
fi

nkv=$(grep -c '^kv_' "$tmp/exported" || true)
if [ "$nkv" -eq 0 ]; then
    echo "FAIL: no kv_ symbols exported" >&2
    fail=1
fi
for s in kv_open kv_close kv_put kv_get kv_strerror kv_version; do
    if ! grep -qx "$s" "$tmp/exported"; then
        echo "FAIL: $s is not exported" >&2
        fail=1
    fi
done

if [ -n "$headers" ]; then
    # Every KV_API declaration names its function just before the '('.
    cat "$headers"/kv/*.h |
        sed -n 's/.*KV_API[^(]*[^A-Za-z0-9_]\(kv_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' |
        sort -u >"$tmp/declared"
    if [ ! -s "$tmp/declared" ]; then
        echo "FAIL: found no KV_API declarations in $headers/kv/*.h" >&2
        fail=1
    fi
    comm -23 "$tmp/exported" "$tmp/declared" | grep '^kv_' >"$tmp/leaked" || true
    if [ -s "$tmp/leaked" ]; then
        echo "FAIL: exported but not declared in the public headers:" >&2
        sed 's/^/    /' "$tmp/leaked" >&2
        fail=1
    fi
    comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/missing"
    if [ -s "$tmp/missing" ]; then
        echo "FAIL: declared KV_API in the public headers but not exported:" >&2
        sed 's/^/    /' "$tmp/missing" >&2
        fail=1
    fi
    echo "declared: $(wc -l <"$tmp/declared") KV_API functions"
fi

if readelf -d "$lib" >"$tmp/dyn"; then
    if ! grep -q "(SONAME).*\[$soname\]" "$tmp/dyn"; then
        echo "FAIL: SONAME is not $soname:" >&2
        grep '(SONAME)' "$tmp/dyn" >&2 || echo "    (no SONAME)" >&2
        fail=1
    fi
else
    echo "FAIL: readelf -d $lib" >&2
    fail=1
fi

if [ -n "$static" ]; then
    if [ -f "$static" ]; then
        nm -g --defined-only "$static" 2>/dev/null |
            awk 'NF == 3 { print $3 }' | grep -v '^kv' | sort -u >"$tmp/static_other" || true
        if [ -s "$tmp/static_other" ]; then
            echo "note: global symbols in $(basename "$static") without a kv prefix" \
                 "(visible to static consumers; not a failure):"
            sed 's/^/    /' "$tmp/static_other"
        fi
    else
        echo "note: no static library at $static"
    fi
fi

if [ "$fail" -ne 0 ]; then
    echo "--- nm -D --defined-only $lib" >&2
    cat "$tmp/nm.out" >&2
    exit 1
fi
echo "exports test passed: $nkv kv_ symbols, SONAME $soname"

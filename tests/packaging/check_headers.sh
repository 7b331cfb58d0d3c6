#!/bin/sh
# check_headers.sh - the public headers compile cleanly as C11 and C++11.
#
# usage: check_headers.sh CC CXX INCLUDE_DIR SOURCE_DIR [LIBKV_SO]
#
# Compiles every include/kv/*.h alone, then headertest.c (which uses every
# KV_*_INIT macro), each as C11 and as C++11 with -pedantic -Wall -Wextra
# -Werror. Headers are passed with -I, not -isystem, so their warnings count.
# With LIBKV_SO, also links headertest against the shared library in both
# languages and runs it (C linkage of the declarations; macros == _init()).
# The flag strings are split into words on purpose.
# shellcheck disable=SC2086
set -eu

if [ $# -lt 4 ]; then
    echo "usage: $0 CC CXX INCLUDE_DIR SOURCE_DIR [LIBKV_SO]" >&2
    exit 2
fi
cc=$1
cxx=$2
incdir=$3
srcdir=$4
libkv=${5:-}

cflags="-std=c11 -pedantic -Wall -Wextra -Werror"
cxxflags="-std=c++11 -pedantic -Wall -Wextra -Werror"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kv-headers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT PIPE TERM

fail=0
run() {
    echo "+ $*"
    if ! "$@"; then
        echo "FAILED: $*" >&2
        fail=1
    fi
}

[ -f "$incdir/kv/kv.h" ] || { echo "no $incdir/kv/kv.h" >&2; exit 1; }

for h in "$incdir"/kv/*.h; do
    name=$(basename "$h" .h)
    tu=$tmp/alone_$name.c
    {
        echo "#include <kv/$name.h>"
        echo "#include <kv/$name.h>"
        echo "int kv_headertest_$name(void);"
        echo "int kv_headertest_$name(void) { return 0; }"
    } >"$tu"
    run "$cc" $cflags -I"$incdir" -c "$tu" -o "$tmp/alone_$name.c.o"
    run "$cxx" $cxxflags -I"$incdir" -x c++ -c "$tu" -o "$tmp/alone_$name.cpp.o"
done

run "$cc" $cflags -I"$incdir" -c "$srcdir/headertest.c" -o "$tmp/headertest.c.o"
run "$cxx" $cxxflags -I"$incdir" -x c++ -c "$srcdir/headertest.c" -o "$tmp/headertest.cpp.o"

if [ "$fail" -eq 0 ] && [ -n "$libkv" ]; then
    [ -f "$libkv" ] || { echo "no library at $libkv (build first)" >&2; exit 1; }
    libdir=$(dirname "$libkv")
    run "$cc" "$tmp/headertest.c.o" "$libkv" -Wl,-rpath,"$libdir" -o "$tmp/headertest_c"
    run "$cxx" "$tmp/headertest.cpp.o" "$libkv" -Wl,-rpath,"$libdir" -o "$tmp/headertest_cpp"
    if [ "$fail" -eq 0 ]; then
        run "$tmp/headertest_c"
        run "$tmp/headertest_cpp"
    fi
fi

if [ "$fail" -ne 0 ]; then
    echo "header test FAILED ($cc / $cxx)" >&2
    exit 1
fi
echo "header test passed ($cc / $cxx)"

#!/bin/sh
# check_consumer.sh - install libkv to a scratch prefix and build a consumer
# program against the installed copy only, the four ways users will:
#   pkg-config kv (shared), pkg-config --static kv (static),
#   find_package(kv) + kv::kv (shared), find_package(kv) + kv::kv_static.
# Each program is run and must exit 0 (see consumer/main.c).
#
# usage: check_consumer.sh BUILD_DIR PACKAGING_SOURCE_DIR
#                          [CMAKE [CC [GENERATOR [MAKE_PROGRAM]]]]
# Every scratch file lives in one mktemp directory, removed on exit, so
# parallel runs do not collide.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR PACKAGING_SOURCE_DIR [CMAKE [CC [GENERATOR [MAKE_PROGRAM]]]]" >&2
    exit 2
fi
build=$(cd "$1" && pwd -P)
here=$(cd "$2" && pwd -P)
cmake=${3:-cmake}
cc=${4:-cc}
generator=${5:-}
make_program=${6:-}
srcroot=$(cd "$here/../.." && pwd -P)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kv-consumer.XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT PIPE TERM
prefix=$tmp/prefix
mkdir "$tmp/run"
# The consumers create their stores under $TMPDIR: keep them in our directory.
TMPDIR=$tmp/run
export TMPDIR

die() {
    echo "FAIL: $*" >&2
    exit 1
}
step() {
    echo
    echo "=== $*"
}
# needed EXE: the DT_NEEDED entries of EXE, one per line.
needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}

step "install $build to $prefix"
unset DESTDIR
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log" >&2
    die "cmake --install failed (is the build complete?)"
}

# GNUInstallDirs may give lib, lib64 or lib/<multiarch>: find where kv.pc went.
pcs=$(find "$prefix" -path '*/pkgconfig/kv.pc')
[ -n "$pcs" ] || die "kv.pc was not installed"
[ "$(echo "$pcs" | wc -l)" -eq 1 ] || die "more than one kv.pc installed: $pcs"
libdir=$(dirname "$(dirname "$pcs")")
echo "libdir: $libdir"

step "installed layout"
for f in libkv.so libkv.so.0 libkv.a cmake/kv/kvConfig.cmake \
         cmake/kv/kvConfigVersion.cmake cmake/kv/kvTargets.cmake; do
    [ -e "$libdir/$f" ] || die "$libdir/$f is missing"
done
[ -L "$libdir/libkv.so" ] || die "$libdir/libkv.so should be a symlink to the versioned file"
# Exactly the public headers, nothing from lib/.
(cd "$srcroot/include" && find . -type f | sort) >"$tmp/src_headers"
(cd "$prefix/include" && find . -type f | sort) >"$tmp/inst_headers"
if ! cmp -s "$tmp/src_headers" "$tmp/inst_headers"; then
    diff "$tmp/src_headers" "$tmp/inst_headers" >&2 || true
    die "installed headers differ from include/ (< source, > installed)"
fi
# The package files must not point back at the source or build tree.
leaks=$(grep -rlF -e "$srcroot" -e "$build" "$libdir/pkgconfig" "$libdir/cmake" || true)
[ -z "$leaks" ] || die "installed files name the source/build tree: $leaks"

cflags_common="-std=c11 -pedantic -Wall -Wextra -Werror"
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH

step "pkg-config kv"
pkg-config --exists --print-errors kv || die "pkg-config cannot resolve kv"
echo "version: $(pkg-config --modversion kv)"
echo "cflags:  $(pkg-config --cflags kv)"
echo "libs:    $(pkg-config --libs kv)"
echo "static:  $(pkg-config --static --libs kv)"
pc_inc=$(pkg-config --variable=includedir kv)
pc_lib=$(pkg-config --variable=libdir kv)
if ! [ -f "$pc_inc/kv/kv.h" ] || [ "$(cd "$pc_inc" && pwd -P)" != "$prefix/include" ]; then
    die "kv.pc includedir=$pc_inc is not $prefix/include: kv.pc does not follow 'cmake --install --prefix' (make it relative to \${pcfiledir})"
fi
if ! [ -d "$pc_lib" ] || [ "$(cd "$pc_lib" && pwd -P)" != "$libdir" ]; then
    die "kv.pc libdir=$pc_lib is not $libdir"
fi

step "pkg-config, shared"
# shellcheck disable=SC2046,SC2086 # word splitting of pkg-config output is intended
"$cc" $cflags_common $(pkg-config --cflags kv) "$here/consumer/main.c" \
    -o "$tmp/pc_shared" $(pkg-config --libs kv) || die "build with pkg-config --libs kv"
needed "$tmp/pc_shared" | grep -qx 'libkv.so.0' || die "pc_shared does not need libkv.so.0"
LD_LIBRARY_PATH=$libdir ldd "$tmp/pc_shared" | grep -F "$libdir/libkv.so.0" >/dev/null ||
    die "pc_shared does not load libkv from $libdir"
LD_LIBRARY_PATH=$libdir "$tmp/pc_shared" || die "pc_shared exited $?"

step "pkg-config --static"
# -lkv would pick libkv.so when both are installed; name the archive itself.
static_libs=$(pkg-config --static --libs kv | sed 's/\(^\| \)-lkv\( \|$\)/\1-l:libkv.a\2/')
echo "link: $static_libs"
# shellcheck disable=SC2046,SC2086
"$cc" $cflags_common $(pkg-config --static --cflags kv) "$here/consumer/main.c" \
    -o "$tmp/pc_static" $static_libs || die "build with pkg-config --static --libs kv"
if needed "$tmp/pc_static" | grep -q '^libkv\.so'; then
    die "pc_static is linked against libkv.so"
fi
env -u LD_LIBRARY_PATH "$tmp/pc_static" || die "pc_static exited $?"

step "find_package(kv) (shared kv::kv and static kv::kv_static)"
set -- -S "$here/consumer" -B "$tmp/cmake-build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DKV_EXPECTED_PREFIX="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
[ -z "$generator" ] || set -- "$@" -G "$generator"
[ -z "$make_program" ] || set -- "$@" -DCMAKE_MAKE_PROGRAM="$make_program"
"$cmake" "$@" || die "configuring the consumer project"
"$cmake" --build "$tmp/cmake-build" || die "building the consumer project"
needed "$tmp/cmake-build/consumer_shared" | grep -qx 'libkv.so.0' ||
    die "consumer_shared does not need libkv.so.0"
LD_LIBRARY_PATH=$libdir "$tmp/cmake-build/consumer_shared" || die "consumer_shared exited $?"
if needed "$tmp/cmake-build/consumer_static" | grep -q '^libkv\.so'; then
    die "consumer_static is linked against libkv.so"
fi
env -u LD_LIBRARY_PATH "$tmp/cmake-build/consumer_static" || die "consumer_static exited $?"

step "consumer test passed"

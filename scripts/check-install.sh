#!/usr/bin/env bash
# scripts/check-install.sh [BUILD_DIR] - install a built Tally (default build/) into a
# throwaway prefix with `cmake --install --prefix`, then build and run consumer
# programs outside the source tree, the ways users will:
#   1. CMake: find_package(tally REQUIRED), linking tally::tally (the shared
#      library), tally::static, and tally::tally with TALLY_USE_STATIC=ON;
#   2. pkg-config --cflags --libs tally with plain cc (strict C11 warnings).
# Each program opens a runtime, allocates and frees a block and prints OK.
# Set KEEP_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
jobs=${JOBS:-2}
cc=${CC:-cc}

die() { echo "check-install: FAILED: $*" >&2; exit 1; }
step() { echo "check-install: $*"; }

if [ ! -f "$build/CMakeCache.txt" ]; then
    step "configuring $build"
    cmake -S "$root" -B "$build" >/dev/null
fi
build=$(cd "$build" && pwd)
cmake --build "$build" -j"$jobs" >/dev/null || die "building $build"

work=$(mktemp -d "${TMPDIR:-/tmp}/tally-install-check.XXXXXX")
if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "check-install: keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix

# ---- install ---------------------------------------------------------------------
step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; die "cmake --install"; }

[ -f "$prefix/include/tally/tally.h" ] || die "tally/tally.h not installed in $prefix/include"
pc=$(find "$prefix" -name tally.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || die "tally.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
config=$(find "$prefix" -name tallyConfig.cmake | head -n 1)
[ -n "$config" ] || die "tallyConfig.cmake not installed"
for f in libtally.a libtally.so; do
    [ -e "$libdir/$f" ] || die "$f not installed in $libdir"
done
# No test, example or internal header may be installed.
if find "$prefix/include" -type f ! -path "$prefix/include/tally/*" | grep -q .; then
    find "$prefix/include" -type f ! -path "$prefix/include/tally/*" >&2
    die "files outside include/tally/ installed"
fi
step "installed: $(cd "$prefix" && find . -type f -o -type l | sed 's|^\./||' | sort | tr '\n' ' ')"

# ---- the consumer program ----------------------------------------------------------
mkdir -p "$work/src"
cat >"$work/src/main.c" <<'C'
#include <tally/tally.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL) {
        perror("tally_open");
        return 1;
    }
    unsigned char *p = tally_malloc(rt, 100);
    if (p == NULL) {
        fprintf(stderr, "tally_malloc: %s\n", tally_last_error_message(rt));
        tally_close(rt);
        return 1;
    }
    memset(p, 0x5a, 100);
    tally_free(rt, p);
    tally_close(rt);
    printf("OK\n");
    return 0;
}
C
cat >"$work/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(tally_consumer LANGUAGES C)
find_package(tally 0.1 REQUIRED)
message(STATUS "tally_DIR=${tally_DIR} version=${tally_VERSION}")
add_executable(use_tally main.c)
target_link_libraries(use_tally PRIVATE tally::tally)
add_executable(use_static main.c)
target_link_libraries(use_static PRIVATE tally::static)
CMAKE

# run NAME EXE: runs it with the installed library on LD_LIBRARY_PATH, expects "OK".
run() {
    local out
    out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$2") ||
        die "$1: $2 exited with status $?"
    [ "$out" = OK ] || die "$1: $2 printed '$out', not OK"
    step "$1: OK"
}
# needs_shared EXE yes|no: whether EXE is dynamically linked against libtally.
needs_shared() {
    local got=no
    if readelf -d "$1" | grep -q 'NEEDED.*\[libtally\.so'; then got=yes; fi
    [ "$got" = "$2" ] || die "$1: linked against libtally.so: $got, expected $2"
}

# ---- 1. CMake find_package ---------------------------------------------------------
cmake_consumer() { # NAME EXTRA_CMAKE_ARGS...
    local name=$1 dir=$work/$1
    shift
    cmake -S "$work/src" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
        "$@" >"$work/$name.configure.log" 2>&1 ||
        { cat "$work/$name.configure.log" >&2; die "$name: configuring the CMake consumer"; }
    local found
    found=$(sed -n 's/^-- tally_DIR=\([^ ]*\) .*/\1/p' "$work/$name.configure.log")
    case "$found" in
        "$prefix"/*) ;;
        *) die "$name: find_package(tally) found '$found', not the copy in $prefix" ;;
    esac
    cmake --build "$dir" -j"$jobs" >"$work/$name.build.log" 2>&1 ||
        { cat "$work/$name.build.log" >&2; die "$name: building the CMake consumer"; }
}
step "CMake consumer (find_package(tally), tally::tally + tally::static)"
cmake_consumer cmake
needs_shared "$work/cmake/use_tally" yes
needs_shared "$work/cmake/use_static" no
run "CMake tally::tally (shared)" "$work/cmake/use_tally"
run "CMake tally::static" "$work/cmake/use_static"

step "CMake consumer with -DTALLY_USE_STATIC=ON"
cmake_consumer cmake-use-static -DTALLY_USE_STATIC=ON
needs_shared "$work/cmake-use-static/use_tally" no
run "CMake tally::tally (TALLY_USE_STATIC=ON)" "$work/cmake-use-static/use_tally"

# ---- 2. pkg-config + plain cc --------------------------------------------------------
step "pkg-config consumer"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pc_libdir=$(pkg-config --variable=libdir tally) || die "pkg-config cannot read $pc"
pc_incdir=$(pkg-config --variable=includedir tally)
canon() { (cd "$1" 2>/dev/null && pwd -P) || echo "$1 (missing)"; }
if [ "$(canon "$pc_libdir")" != "$(canon "$libdir")" ] ||
   [ "$(canon "$pc_incdir")" != "$(canon "$prefix/include")" ]; then
    echo "check-install: tally.pc says libdir=$pc_libdir includedir=$pc_incdir," >&2
    echo "  but the library was installed in $libdir and the headers in $prefix/include." >&2
    echo "  tally.pc must follow 'cmake --install --prefix': make it relative to \${pcfiledir}." >&2
    sed 's/^/  | /' "$pc" >&2
    die "tally.pc does not describe the installed files"
fi
cflags=$(pkg-config --cflags tally)
libs=$(pkg-config --libs tally)
step "  $cc $cflags main.c $libs"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$work/src/main.c" \
    -o "$work/use_pkgconfig" $libs || die "compiling with pkg-config flags"
needs_shared "$work/use_pkgconfig" yes
run "pkg-config + cc" "$work/use_pkgconfig"

# The public headers must also be usable from C++ (extern "C", no C-only syntax).
if command -v c++ >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    printf '#include <tally/tally.h>\nint main() { return tally_open(nullptr) ? 0 : 1; }\n' |
        c++ -x c++ -std=c++11 -Wall -Wextra -Werror $cflags -fsyntax-only - ||
        die "the public headers do not compile as C++"
    step "headers compile as C++: OK"
fi

echo "check-install: all OK"

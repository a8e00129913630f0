#!/usr/bin/env bash
# scripts/check-symbols.sh [BUILD_DIR] - check the names Tally's libraries define
# (default build/, which must be built):
#   - libtally.so: every exported (dynamic, defined) symbol starts with tally_;
#   - libtally.a: every global defined symbol starts with tally_ or with an internal
#     layer prefix tally<Letter>_ (tallyB_ base, tallyH_ heap, tallyR_ runtime, ...;
#     hidden in the shared library);
#   - every function declared TALLY_API in include/tally/*.h is exported by
#     libtally.so (a declared but undefined API is a link error for users).
# Offending names are printed.  INTERNAL_RE overrides the internal-prefix pattern.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
public_re='^tally_'
internal_re=${INTERNAL_RE:-'^tally[A-Z]_'}
# Defined by the linker in every shared object, not by Tally's code.
linker_re='^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$'

so=$(find "$build" -maxdepth 3 -name 'libtally.so' -not -path '*/CMakeFiles/*' | head -n 1)
ar=$(find "$build" -maxdepth 3 -name 'libtally.a' -not -path '*/CMakeFiles/*' | head -n 1)
[ -n "$so" ] || { echo "check-symbols: no libtally.so under $build (build it first)" >&2; exit 2; }
[ -n "$ar" ] || { echo "check-symbols: no libtally.a under $build (build it first)" >&2; exit 2; }
so=$(readlink -f "$so")
fail=0

# ---- shared library: the dynamic symbol table ---------------------------------------
# Lines are "ADDRESS TYPE NAME[@VERSION]"; strip symbol versions.
exported=$(nm -D --defined-only "$so" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' | sort -u)
bad=$(printf '%s\n' "$exported" | grep -Ev "$linker_re" | grep -Ev "$public_re" | grep . || true)
nexp=$(printf '%s\n' "$exported" | grep -Ec "$public_re" || true)
if [ -n "$bad" ]; then
    echo "check-symbols: $so exports symbols without the tally_ prefix:" >&2
    nm -D --defined-only "$so" | awk 'NF >= 3' | grep -Fw -f <(printf '%s\n' "$bad") | sed 's/^/    /' >&2
    fail=1
else
    echo "check-symbols: $(basename "$so"): $nexp exported symbols, all tally_*"
fi

# ---- static archive: global defined symbols of every member ---------------------------
# With -A each line is "ARCHIVE:MEMBER: ADDRESS TYPE NAME".
globals=$(nm -A -g --defined-only "$ar" 2>/dev/null | awk 'NF >= 3 { print $1, $2, $3 }')
bad=$(printf '%s\n' "$globals" |
      awk -v pub_re="$public_re" -v int_re="$internal_re" 'NF == 3 && $3 !~ pub_re && $3 !~ int_re')
if [ -n "$bad" ]; then
    echo "check-symbols: $(basename "$ar") defines global symbols without the tally_ or internal (${internal_re#^}) prefix:" >&2
    printf '%s\n' "$bad" | sed "s|^$ar:||; s/^/    /" >&2
    fail=1
else
    nglob=$(printf '%s\n' "$globals" | grep -c . || true)
    echo "check-symbols: $(basename "$ar"): $nglob global symbols, all tally_* or internal"
fi

# ---- the public API is implemented --------------------------------------------------------
# Every "TALLY_API <type> [*]tally_name(" declaration in the public headers.
declared=$(cat "$root"/include/tally/*.h |
           tr '\n' ' ' | grep -oE 'TALLY_API[^;{(]*\(' |
           grep -oE 'tally_[A-Za-z0-9_]+[[:space:]]*\($' | sed 's/[[:space:]]*($//' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$exported") | grep . || true)
if [ -n "$missing" ]; then
    echo "check-symbols: declared TALLY_API in include/tally/ but not exported by $(basename "$so"):" >&2
    printf '%s\n' "$missing" | sed 's/^/    /' >&2
    fail=1
else
    echo "check-symbols: all $(printf '%s\n' "$declared" | grep -c .) TALLY_API functions are exported"
fi

# Exported but declared in no public header: not an error (may be data), but say so.
extra=$(comm -13 <(printf '%s\n' "$declared") <(printf '%s\n' "$exported" | grep -E "$public_re") |
        while read -r name; do
            grep -qw "$name" "$root"/include/tally/*.h || echo "$name"
        done)
if [ -n "$extra" ]; then
    echo "check-symbols: note: exported but named in no public header: $(echo "$extra" | tr '\n' ' ')"
fi

if [ "$fail" -ne 0 ]; then
    echo "check-symbols: FAILED" >&2
    exit 1
fi
echo "check-symbols: OK"

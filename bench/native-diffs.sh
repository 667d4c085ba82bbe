#!/usr/bin/env bash
# How small a patch of a rebuilt native library can be, by method: zstd's dictionary
# patch (`zstd --long=27 --patch-from`, what roll's patches are, here unbounded) at levels
# 3, 12 and 19, and bsdiff (a diff made for executables, as Debian ships it). The files
# are the shared libraries of 1 MB or more that changed between two consecutive releases
# of the wheels bench/real-packages.sh upgrades, paired by path, or by name with versions
# and auditwheel's content hash taken out (libscipy_openblas64_-<hash>.so; bench/pairs.py).
#
#   bench/native-diffs.sh          # a markdown table per file, then totals
# Env: WORK (default /var/tmp/native-diffs; wheels are kept in $WORK/wheels between runs),
# PACKAGES_LIST (another set, as for bench/real-packages.sh).
# Each command runs once under GNU time: seconds (one core) and peak memory.
set -euo pipefail
source "$(dirname "$0")/packages.sh"   # PACKAGES, unpack_wheels
WORK=${WORK:-/var/tmp/native-diffs}
for t in zstd bsdiff bspatch /usr/bin/time pip python3; do
    command -v "$t" >/dev/null || { apt-get update -qq && apt-get install -y -qq zstd bsdiff time python3-pip >/dev/null; break; }
done
unpack_wheels "$WORK"
rm -rf "$WORK/out" && mkdir -p "$WORK/out"

# old<TAB>new<TAB>label for each pair, largest first.
python3 "$(dirname "$0")/pairs.py" "$WORK/unpacked" --libraries "${PACKAGES[@]}" >"$WORK/pairs"

timed() {  # OUT CMD... -> "bytes seconds peakKiB"
    local out=$1; shift
    /usr/bin/time -f '%e %M' -o "$WORK/t" "$@" >/dev/null 2>&1
    read -r s m <"$WORK/t"
    echo "$(stat -c %s "$out") $s $m"
}
echo "| file | new bytes | zstd -3 | zstd -12 | zstd -19 | bsdiff | bsdiff / zstd -12 | s: zstd -12, -19, bsdiff | peak MiB: zstd -12, bsdiff |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
declare -A total=()
while IFS=$'\t' read -r old new label; do
    o=$WORK/out/patch
    declare -A r=()
    for level in 3 12 19; do
        r[$level]=$(timed "$o.zst" zstd -q -f "-$level" --long=27 --patch-from="$old" "$new" -o "$o.zst")
    done
    r[bsdiff]=$(timed "$o.bsdiff" bsdiff "$old" "$new" "$o.bsdiff")
    bspatch "$old" "$o.rebuilt" "$o.bsdiff" && cmp -s "$o.rebuilt" "$new" || { echo "bspatch did not rebuild $new" >&2; exit 1; }
    set -- ${r[3]}; z3=$1
    set -- ${r[12]}; z12=$1 z12s=$2 z12m=$3
    set -- ${r[19]}; z19=$1 z19s=$2
    set -- ${r[bsdiff]}; bd=$1 bds=$2 bdm=$3
    n=$(stat -c %s "$new")
    for k in n z3 z12 z19 bd; do total[$k]=$(( ${total[$k]:-0} + ${!k} )); done
    printf '| %s | %s | %s | %s | %s | %s | %s | %s, %s, %s | %s, %s |\n' "$label" "$n" "$z3" "$z12" "$z19" "$bd" \
        "$(awk -v a="$bd" -v b="$z12" 'BEGIN { printf "%.2f", a / b }')" "$z12s" "$z19s" "$bds" \
        "$((z12m / 1024))" "$((bdm / 1024))"
done <"$WORK/pairs"
printf '| total | %s | %s | %s | %s | %s | %s | | |\n' "${total[n]:-0}" "${total[z3]:-0}" "${total[z12]:-0}" "${total[z19]:-0}" "${total[bd]:-0}" \
    "$(awk -v a="${total[bd]:-0}" -v b="${total[z12]:-0}" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
rm -rf "$WORK/unpacked" "$WORK/out"

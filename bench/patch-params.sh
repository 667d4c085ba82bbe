#!/usr/bin/env bash
# What the encoder's level and bounds do to patches of real upgrades: every file that
# changed between two releases of the wheels bench/real-packages.sh upgrades (2 KiB or
# more, paired by path, or by name with versions and hashes taken out, as the agent pairs
# them), encoded as roll encodes a patch (bench/patch-params.c, the same zstd calls as
# Sources/RollWire/Patch.swift) under each configuration below: total bytes, and the
# median over REPS runs of the seconds spent encoding (one core), aligning included.
#
#   bench/patch-params.sh                      # the set bench/packages.sh names (native libraries)
#   PACKAGES_LIST="pandas 2.2.2 2.2.3, lxml 5.3.0 5.3.1" bench/patch-params.sh
# Env: WORK (default /var/tmp/patch-params; wheels are kept in $WORK/wheels), PACKAGES_LIST,
# REPS (3), CONFIGS (lines "name: level hashLog chainLog ldmMinMatch ldmBucketLog align"; a
# hashLog such as 20s is bounded by the file's size too, as roll bounds it; align 1 aligns ELF
# files first, as roll's aligned patches do; the first line is the reference the others are
# compared with).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/packages.sh"   # PACKAGES, unpack_wheels
WORK=${WORK:-/var/tmp/patch-params}
REPS=${REPS:-3}
CONFIGS=${CONFIGS:-"level 9, plain: 9 20s 18 32 4 0
level 9, ELF files aligned (roll at the top link level): 9 20s 18 32 4 1
level 9, plain, hash 2^22: 9 22 18 32 4 0
level 12, ELF files aligned: 12 20s 18 32 4 1
level 6, plain (roll at link level 3): 6 20s 18 32 4 0
level 6, ELF files aligned: 6 20s 18 32 4 1
level 4, plain (roll at link level 1): 4 20s 18 32 4 0
level 4, ELF files aligned: 4 20s 18 32 4 1"}
for t in pip python3 cc; do command -v "$t" >/dev/null || { echo "patch-params: needs $t" >&2; exit 1; }; done
[[ -f /usr/include/zstd.h ]] || { apt-get update -qq && apt-get install -y -qq libzstd-dev >/dev/null; }
unpack_wheels "$WORK"

# old<TAB>new<TAB>label for each changed file of 2 KiB or more.
python3 "$HERE/pairs.py" "$WORK/unpacked" "${PACKAGES[@]}" >"$WORK/pairs"
cc -O2 -I "$HERE/../Sources/CRollDelta/include" -o "$WORK/patch-params" "$HERE/patch-params.c" \
    "$HERE/../Sources/CRollDelta/align.c" -lzstd
count=$(wc -l <"$WORK/pairs")
bytes=$(cut -f2 "$WORK/pairs" | xargs -d '\n' stat -c %s | awk '{ s += $1 } END { print s }')
echo "$count changed files, $bytes bytes, of: ${PACKAGES[*]}"
echo
echo "| configuration | level hash chain ldm-min ldm-bucket align | bytes | / first | seconds (median of $REPS) | / first | files aligned |"
echo "|---|---|--:|--:|--:|--:|--:|"
ref_bytes= ref_s=
while IFS= read -r line; do
    [[ -n ${line// } ]] || continue
    label=${line%%:*}
    read -r -a args <<<"${line#*:}"
    runs=()
    for _ in $(seq "$REPS"); do runs+=("$("$WORK/patch-params" "$WORK/pairs" "${args[@]}")"); done
    b=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"${runs[0]}")
    s=$(printf '%s\n' "${runs[@]}" | sed -E 's/.*seconds=([0-9.]+).*/\1/' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    : "${ref_bytes:=$b}" "${ref_s:=$s}"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "${args[*]}" "$b" \
        "$(awk -v a="$b" -v b="$ref_bytes" 'BEGIN { printf "%.3f", a / b }')" "$s" \
        "$(awk -v a="$s" -v b="$ref_s" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }')" \
        "$(sed -E 's/.*aligned=([0-9]+).*/\1/' <<<"${runs[0]}")"
done <<<"$CONFIGS"
rm -rf "$WORK/unpacked"

#!/usr/bin/env bash
# Times roll against rdiff (librsync) on the same files and prints a markdown
# table: median of REPS runs, MB/s (10^6 bytes) of the step's input, peak RSS.
#
#   bench/delta-vs-rdiff.sh            # 1 GiB files, 3 reps
#   SIZE_MIB=256 REPS=5 bench/delta-vs-rdiff.sh
#   ROLL=dist/roll bench/delta-vs-rdiff.sh   # that binary (default: this checkout's release build)
#
# Files live under /var/tmp (on disk; /tmp may be a small tmpfs) and are
# removed on exit. They stay in the page cache between runs, so this measures
# CPU cost, not disk speed. Each step's output is removed, and the disk synced,
# before each run: truncating the last run's output made the next run wait for
# the disk to free its blocks (0.1-0.3 s for 256 MiB here, on either tool).
set -euo pipefail

REPS=${REPS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
HERE=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v rdiff >/dev/null; then
    apt-get update -qq && apt-get install -y -qq rdiff >/dev/null
fi
if [ ! -x /usr/bin/time ]; then
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

if [[ -z ${ROLL:-} ]]; then
    (cd "$HERE" && swift build -c release >/dev/null)
    ROLL="$(cd "$HERE" && swift build -c release --show-bin-path)/roll"
fi
ROLL=$(realpath "$ROLL")

WORK=$(mktemp -d /var/tmp/roll-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

half=$((SIZE_MIB / 2))
echo "generating ${SIZE_MIB} MiB files in $WORK ..." >&2
head -c "${SIZE_MIB}M" /dev/urandom > basis
{ head -c "${half}M" basis; head -c 1M /dev/urandom; tail -c "+$((half * 1048576 + 1))" basis; } > new
head -c "${SIZE_MIB}M" /dev/urandom > other
size() { stat -c %s "$1"; }

# run CMD... -> sets SEC (median seconds) and RSS (max KiB over reps); the
# command's last argument is its output file
run() {
    local times=() rss=0 t m
    for _ in $(seq "$REPS"); do
        rm -f "${@: -1}"; sync
        /usr/bin/time -f '%e %M' -o "$WORK/t" "$@" >/dev/null
        read -r t m < "$WORK/t"
        times+=("$t")
        (( m > rss )) && rss=$m
    done
    SEC=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    RSS=$rss
}

mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.005; printf "%.0f", b / s / 1e6 }'; }

ROWS=()
row() {  # step bytes rdiff_sec rdiff_rss roll_sec roll_rss
    local r1 r2
    r1=$(mbs "$2" "$3"); r2=$(mbs "$2" "$5")
    ROWS+=("| $1 | $3 | $r1 | $(( $4 / 1024 )) | $5 | $r2 | $(( $6 / 1024 )) | $(awk -v a="$r2" -v b="$r1" 'BEGIN { printf "%.1fx", a / b }') |")
}

# signature
run rdiff --force signature basis rd.sig; s1=$SEC m1=$RSS
run "$ROLL" signature --seed 1 basis roll.sig; s2=$SEC m2=$RSS
row "signature (basis)" "$(size basis)" "$s1" "$m1" "$s2" "$m2"

# delta, mostly matching
run rdiff --force delta rd.sig new rd.delta; s1=$SEC m1=$RSS
run "$ROLL" delta roll.sig new roll.delta; s2=$SEC m2=$RSS
row "delta (1 MiB inserted)" "$(size new)" "$s1" "$m1" "$s2" "$m2"
dsz1=$(size rd.delta) dsz2=$(size roll.delta)

# delta, nothing in common
run rdiff --force delta rd.sig other rd.delta2; s1=$SEC m1=$RSS
run "$ROLL" delta roll.sig other roll.delta2; s2=$SEC m2=$RSS
row "delta (no common blocks)" "$(size other)" "$s1" "$m1" "$s2" "$m2"

# patch, mostly matching
run rdiff --force patch basis rd.delta rd.out; s1=$SEC m1=$RSS
run "$ROLL" patch basis roll.delta roll.out; s2=$SEC m2=$RSS
row "patch (1 MiB inserted)" "$(size new)" "$s1" "$m1" "$s2" "$m2"
cmp rd.out new && cmp roll.out new

# patch, all literal
run rdiff --force patch basis rd.delta2 rd.out; s1=$SEC m1=$RSS
run "$ROLL" patch basis roll.delta2 roll.out; s2=$SEC m2=$RSS
row "patch (no common blocks)" "$(size other)" "$s1" "$m1" "$s2" "$m2"
cmp rd.out other && cmp roll.out other

run cp basis cp.out; cps=$SEC cpm=$RSS

echo
echo "Files: ${SIZE_MIB} MiB random basis; new = basis with 1 MiB random inserted in the middle; other = unrelated random. Median of $REPS runs, page cache warm, $(nproc) cores."
echo
echo "| step | rdiff s | rdiff MB/s | rdiff RSS MiB | roll s | roll MB/s | roll RSS MiB | roll/rdiff |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo "| cp basis (reference) | | | | $cps | $(mbs "$(size basis)" "$cps") | $(( cpm / 1024 )) | |"
echo
echo "Sizes: rdiff signature $(size rd.sig) B, roll signature $(size roll.sig) B; delta for the 1 MiB insert: rdiff $dsz1 B, roll $dsz2 B."

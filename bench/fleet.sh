#!/usr/bin/env bash
# What one push costs as an app grows from 1 to 3 containers: a 1 % change of the
# benchmark's web application (../shared/bench/gen-tree.py, mutate-tree.py --percent 1),
# pushed with roll's own SSH client to N deploy roots on the benchmark's loopback sshd
# (one SSH connection and one agent each, as with separate containers).
#   bench/fleet.sh                     # N = 1 2 3, REPS=3; prints medians and a TSV
# Env: ROLL_BIN (default: dist/roll, then .build/release/roll), REPS, BENCH (the shared
# harness folder), BENCH_ROOT (default /var/lib/bench), WEBAPP_PROFILE (webapp | small).
# Run as root (the harness's sshd and its user).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$(cd "$HERE/../shared/bench" && pwd)}
export BENCH_ROOT=${BENCH_ROOT:-/var/lib/bench}
export BENCH_SSHD_STATE=${BENCH_SSHD_STATE:-$BENCH_ROOT/sshd}
export BENCH_SSHD_PORT=${BENCH_SSHD_PORT:-2222}
U=${BENCH_USER:-benchuser}
REPS=${REPS:-3}
PROFILE=${WEBAPP_PROFILE:-webapp}
ROLL=${ROLL_BIN:-}
[[ -n $ROLL ]] || { [[ -x $HERE/dist/roll ]] && ROLL=$HERE/dist/roll || ROLL=$HERE/.build/release/roll; }
[[ -x $ROLL ]] || { echo "no roll binary (make static, or swift build -c release)" >&2; exit 1; }

DATA=$BENCH_ROOT/data/fleet
RES=$BENCH_ROOT/results/fleet-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$DATA" "$RES"
AGENT=/usr/local/lib/roll-bench/roll
install -D -m 755 "$ROLL" "$AGENT"

STARTED_SSHD=0
if ! "$BENCH/sshd.sh" status >/dev/null 2>&1; then "$BENCH/sshd.sh" start >/dev/null; STARTED_SSHD=1; fi
cleanup() { if [[ $STARTED_SSHD == 1 ]]; then "$BENCH/sshd.sh" stop 2>/dev/null || true; fi; }
trap cleanup EXIT
CONFIG=$BENCH_SSHD_STATE/ssh_config
lo_bytes() { awk '/^ *lo:/{sub(/^ *lo:/,""); print $1}' /proc/net/dev; }
now() { date +%s.%N; }

push() {   # push SRC ROOT... -> prints "wall_s wire_bytes lo_bytes client_cpu_s"
    local src=$1; shift
    local targets=() r
    for r in "$@"; do targets+=("ssh://$U@127.0.0.1:$BENCH_SSHD_PORT$r"); done
    local lo0 t0 out t1 lo1
    lo0=$(lo_bytes); t0=$(now)
    out=$(/usr/bin/time -o "$RES/cpu" -f "%U %S" "$ROLL" push --json --keep 3 --ssh-config "$CONFIG" --agent-path "$AGENT" "$src" "${targets[@]}")
    t1=$(now); lo1=$(lo_bytes)
    local wire
    wire=$(grep -o '"wire_\(out\|in\)":[0-9]*' <<<"$out" | cut -d: -f2 | awk '{s += $1} END {print s}')
    echo "$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}") $wire $((lo1 - lo0)) $(awk '{printf "%.2f", $1 + $2}' "$RES/cpu")"
}

echo "[$(date +%T)] generating the $PROFILE tree" >&2
python3 "$BENCH/gen-tree.py" --profile "$PROFILE" --out "$DATA/base" --seed 42 --force >/dev/null
ROOTS=()
for i in 1 2 3; do
    ROOTS+=("$DATA/srv-$i")
    rm -rf "$DATA/srv-$i"; mkdir -p "$DATA/srv-$i"; chown "$U" "$DATA/srv-$i"
done
chmod 755 "$BENCH_ROOT" "$BENCH_ROOT/data" "$DATA"
echo "[$(date +%T)] initial push to 3 roots" >&2
push "$DATA/base" "${ROOTS[@]}" >/dev/null

printf 'containers\trep\twall_s\twire_bytes\tloopback_bytes\tclient_cpu_s\n' >"$RES/raw.tsv"
for n in 1 2 3; do
    for rep in $(seq 1 "$REPS"); do
        rm -rf "$DATA/work"; cp -a "$DATA/base" "$DATA/work"
        # A different 1 % per run, so no run finds its files in an earlier run's release.
        python3 "$BENCH/mutate-tree.py" "$DATA/work" --percent 1 --seed $((n * 100 + rep)) >/dev/null
        sync
        read -r wall wire lo cpu < <(push "$DATA/work" "${ROOTS[@]:0:$n}")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$rep" "$wall" "$wire" "$lo" "$cpu" | tee -a "$RES/raw.tsv" >&2
        # Back to the base release everywhere, for the next run.
        # (the base is the oldest release: active before every run, so never pruned)
        for r in "${ROOTS[@]:0:$n}"; do "$ROLL" back --no-hooks "$r" "$(ls "$r/releases" | head -1)" >/dev/null; done
    done
done
echo "results: $RES/raw.tsv" >&2
python3 - "$RES/raw.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
base = None
print("| containers | median wall s | median roll bytes | median loopback bytes | median client CPU s | wall vs 1 | loopback vs 1 |")
print("|---|---|---|---|---|---|---|")
for n in ("1", "2", "3"):
    rs = [r for r in rows if r["containers"] == n]
    wall = statistics.median(float(r["wall_s"]) for r in rs)
    wire = statistics.median(int(r["wire_bytes"]) for r in rs)
    lo = statistics.median(int(r["loopback_bytes"]) for r in rs)
    cpu = statistics.median(float(r["client_cpu_s"]) for r in rs)
    if base is None: base = (wall, lo)
    print(f"| {n} | {wall:.2f} | {wire:,} | {lo:,} | {cpu:.2f} | {wall / base[0]:.2f}x | {lo / base[1]:.2f}x |")
EOF

#!/usr/bin/env bash
# What a push killed near its end costs the next one: over a link shaped like an uplink
# (a network namespace of its own, MTU 1500, tbf RATE), roll's own client pushes the
# benchmark's webapp tree into an empty root, is killed (SIGKILL) once PERCENT of the tree's
# bytes are in the agent's staging folder, and the same push runs again. Prints the bytes
# of a full first push (into a second root), of the resumed push, and their ratio.
#   bench/resume.sh 40mbit            # PERCENT=90
# Env: PERCENT, WEBAPP_PROFILE (webapp | small), BENCH (the harness folder), BENCH_ROOT,
# ROLL_BIN (default: .build/release/roll). Run as root.
set -euo pipefail
RATE=${1:?usage: $0 RATE (e.g. 40mbit)}
PERCENT=${PERCENT:-90}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$(cd "$HERE/../shared/bench" && pwd)}
. "$HERE/bench/shaped-link.sh"
bench_agent
export BENCH_ROOT=${BENCH_ROOT:-/var/lib/bench}
export BENCH_SSHD_STATE=$BENCH_ROOT/sshd-resume BENCH_SSHD_PORT=2222
U=${BENCH_USER:-benchuser}
SRC=$BENCH_ROOT/data/client/${WEBAPP_PROFILE:-webapp}
[[ -d $SRC ]] || python3 "$BENCH/gen-tree.py" --profile "${WEBAPP_PROFILE:-webapp}" --seed 42 --out "$SRC" >&2
shaped_link rollresume "$RATE"
ip netns exec "$ns" "$BENCH/sshd.sh" start >/dev/null

home=$(getent passwd "$U" | cut -d: -f6)
full=$home/resume-full resumed=$home/resume-resumed
runuser -u "$U" -- rm -rf "$full" "$resumed"
push() { ip netns exec "$ns" "$ROLL" push --json --ssh-config "$BENCH_SSHD_STATE/ssh_config" --agent-path "$AGENT" \
    "$SRC" "ssh://$U@127.0.0.1:$BENCH_SSHD_PORT$1"; }
field() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -1 | cut -d: -f2; }
sync
out=$(push "$full")
full_bytes=$(( $(field wire_out "$out") + $(field wire_in "$out") ))
total=$(field tree_bytes "$out")

# ip netns exec execs roll: $! is the client itself, which is what gets killed.
ip netns exec "$ns" "$ROLL" push --json --ssh-config "$BENCH_SSHD_STATE/ssh_config" --agent-path "$AGENT" \
    "$SRC" "ssh://$U@127.0.0.1:$BENCH_SSHD_PORT$resumed" >/dev/null 2>&1 &
pid=$!
want=$((total * PERCENT / 100))
staged=0
while kill -0 "$pid" 2>/dev/null; do
    staged=$( (find "$resumed/releases" -path '*/.staging-*' -type f -printf '%s\n' 2>/dev/null || true) | awk '{s+=$1} END {print s+0}')
    ((staged >= want)) && break
    sleep 0.3
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
for _ in $(seq 100); do flock -n "$resumed/.roll/lock" true && break; sleep 0.2; done
sync
out=$(push "$resumed")
resumed_bytes=$(( $(field wire_out "$out") + $(field wire_in "$out") ))
printf 'link %s, tree %s bytes, killed at %s bytes staged (%s%%)\n' "$RATE" "$total" "$staged" "$((staged * 100 / total))"
printf 'full push: %s bytes; resumed push: %s bytes (%s files resumed); ratio %s\n' "$full_bytes" "$resumed_bytes" \
    "$(field resumed "$out")" "$(awk "BEGIN{printf \"%.3f\", $resumed_bytes / $full_bytes}")"
runuser -u "$U" -- rm -rf "$full" "$resumed"

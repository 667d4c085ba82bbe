#!/usr/bin/env bash
# How full a push keeps a shaped link: 100 MiB of random (incompressible) data in ten files,
# pushed with roll's own SSH client (--no-sync: the transfer, not the disk) and with the
# harness's rsync reference, over a network namespace of its own whose loopback has MTU 1500
# and a token bucket of RATE. Prints bytes, seconds and Mbit/s for each, the whole command
# included (connect, scan, publish).
#   bench/goodput.sh 20mbit
# Env: BENCH (the harness folder), BENCH_ROOT, ROLL_BIN (default: .build/release/roll). Run as root.
set -euo pipefail
RATE=${1:?usage: $0 RATE (e.g. 20mbit)}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$(cd "$HERE/../shared/bench" && pwd)}
. "$HERE/bench/shaped-link.sh"
bench_agent
export BENCH_ROOT=${BENCH_ROOT:-/var/lib/bench}
export BENCH_SSHD_STATE=$BENCH_ROOT/sshd-goodput BENCH_SSHD_PORT=2222
U=${BENCH_USER:-benchuser}
shaped_link rollgoodput "$RATE"
SRC=$(mktemp -d)
for i in $(seq 1 10); do dd if=/dev/urandom of="$SRC/f$i" bs=1M count=10 status=none; done
ip netns exec "$ns" "$BENCH/sshd.sh" start >/dev/null
home=$(getent passwd "$U" | cut -d: -f6)
runuser -u "$U" -- rm -rf "$home/goodput-roll" "$home/goodput-rsync"
rate() { awk "BEGIN{printf \"%.1f Mbit/s\", $1 * 8 / $2 / 1e6}"; }
sync
t0=$(date +%s.%N)
out=$(ip netns exec "$ns" "$ROLL" push --json --no-sync --ssh-config "$BENCH_SSHD_STATE/ssh_config" --agent-path "$AGENT" \
    "$SRC" "ssh://$U@127.0.0.1:$BENCH_SSHD_PORT$home/goodput-roll")
t1=$(date +%s.%N)
bytes=$(grep -o '"wire_out":[0-9]*' <<<"$out" | cut -d: -f2)
secs=$(awk "BEGIN{print $t1 - $t0}")
echo "roll:  $bytes bytes in $secs s: $(rate "$bytes" "$secs") through $RATE"
t0=$(date +%s.%N)
out=$(ip netns exec "$ns" env BENCH_SSH_CONFIG="$BENCH_SSHD_STATE/ssh_config" "$BENCH/rsync-deploy.sh" "$SRC" "$U@127.0.0.1" \
    "$BENCH_SSHD_PORT" "$home/goodput-rsync" 2>/dev/null | grep RESULT)
t1=$(date +%s.%N)
bytes=$(grep -o 'bytes_sent=[0-9]*' <<<"$out" | cut -d= -f2)
secs=$(awk "BEGIN{print $t1 - $t0}")
echo "rsync: $bytes bytes in $secs s: $(rate "$bytes" "$secs") through $RATE"
runuser -u "$U" -- rm -rf "$home/goodput-roll" "$home/goodput-rsync"
rm -rf "$SRC"

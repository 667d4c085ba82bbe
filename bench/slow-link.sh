#!/usr/bin/env bash
# The deploy benchmark over a link shaped like a laptop's uplink: the shared harness
# (../shared/bench/run-baseline.sh) runs unchanged inside a network namespace of its own
# whose loopback has MTU 1500 and a token-bucket limit of RATE; its sshd, the clients and
# the agents all stay on 127.0.0.1 inside it. Tools: rsync, rsync -z and roll (its own SSH
# client), unless TOOLS says otherwise.
#   bench/slow-link.sh 40mbit                 # webapp: first push, no change, 1 % change
#   REPS=3 SCENARIOS="webapp bigfile" bench/slow-link.sh 20mbit
# Env: REPS (default 1: a first push of ~250 MiB takes about a minute at 40 Mbit/s),
# SCENARIOS (webapp), LIMIT (a tbf queue in bytes, e.g. 16kb, to drop packets instead of
# queueing 200 ms), BENCH (the harness folder), BENCH_ROOT, ROLL_BIN. Run as root.
set -euo pipefail
RATE=${1:?usage: $0 RATE (e.g. 40mbit)}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$(cd "$HERE/../shared/bench" && pwd)}
. "$HERE/bench/shaped-link.sh"
shaped_link rollbench "$RATE"

export BENCH_ROOT=${BENCH_ROOT:-/var/lib/bench}
# A server state folder of its own: one on the unshaped loopback may be running, and its
# pid file would make the harness think it can reach it from inside the namespace.
export BENCH_SSHD_STATE=$BENCH_ROOT/sshd-slow-link
export RESULTS=${RESULTS:-$BENCH_ROOT/results/slow-link-$RATE-$(date -u +%Y%m%dT%H%M%SZ)}
export REPS=${REPS:-1}
export SCENARIOS=${SCENARIOS:-webapp}
export TOOLS=${TOOLS:-"rsync=$BENCH/rsync-deploy.sh rsync-z=$HERE/bench/rsync-z-deploy.sh roll=$HERE/bench/roll-deploy.sh"}
export BENCH_ROLL_SHARED=$BENCH
echo "slow link: $RATE${LIMIT:+, queue $LIMIT}; results in $RESULTS" >&2
status=0
ip netns exec "$ns" "$BENCH/run-baseline.sh" || status=$?
echo "# link: tbf rate $RATE burst 32kb ${queue[*]}, MTU 1500 (bench/slow-link.sh)" >>"$RESULTS/env.txt" 2>/dev/null || true
exit $status

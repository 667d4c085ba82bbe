#!/usr/bin/env bash
# roll as a tool for the deploy benchmark harness (../shared/bench/run-baseline.sh):
#   roll-deploy.sh SRC HOST PORT APPROOT
# Pushes SRC into APPROOT over roll's own SSH client (ROLL_TRANSPORT=builtin, the default)
# or the system's ssh client (ROLL_TRANSPORT=ssh), one connection either way, with the same
# ssh settings file the rsync reference uses, and prints the harness's RESULT line (bytes
# are roll's protocol bytes, without SSH framing, like rsync --stats).
#   TOOLS="rsync=$BENCH/rsync-deploy.sh roll=$PWD/bench/roll-deploy.sh" $BENCH/run-baseline.sh
# Env: ROLL_BIN (default: this checkout's release build), ROLL_TRANSPORT, ROLL_PUSH_OPTS (e.g. --no-sync),
# BENCH_SSH_CONFIG, BENCH_SSH_OPTS, KEEP_RELEASES.
set -euo pipefail
SRC=${1:?usage: $0 SRC HOST PORT APPROOT}; HOST=${2:?}; PORT=${3:?}; APPROOT=${4:?}
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROLL=${ROLL_BIN:-$HERE/.build/release/roll}
SSH_CONFIG=${BENCH_SSH_CONFIG:-/var/lib/bench/sshd/ssh_config}
[[ -x $ROLL ]] || { echo "no roll binary at $ROLL: run swift build -c release" >&2; exit 1; }

# The server side runs as another user: give it a copy of the binary it can execute.
AGENT=/usr/local/lib/roll-bench/roll
if ! cmp -s "$ROLL" "$AGENT" 2>/dev/null; then
    install -D -m 755 "$ROLL" "$AGENT.tmp" && mv -f "$AGENT.tmp" "$AGENT"
fi

if [[ ${ROLL_TRANSPORT:-builtin} == ssh ]]; then
    SSH="ssh -p $PORT"
    [[ -f $SSH_CONFIG ]] && SSH="$SSH -F $SSH_CONFIG"
    TRANSPORT=(--ssh-command "$SSH ${BENCH_SSH_OPTS:-}")
    DEST="$HOST:$APPROOT"
else
    TRANSPORT=()
    [[ -f $SSH_CONFIG ]] && TRANSPORT=(--ssh-config "$SSH_CONFIG")
    DEST="ssh://$HOST:$PORT$APPROOT"
fi
now() { date +%s.%N; }
t0=$(now)
# shellcheck disable=SC2086
out=$("$ROLL" push ${ROLL_PUSH_OPTS:-} --json --keep "${KEEP_RELEASES:-5}" "${TRANSPORT[@]}" --agent-path "$AGENT" "$SRC" "$DEST")
t1=$(now)
echo "$out" >&2
field() { grep -o "\"$1\":[^,}]*" <<<"$out" | head -1 | cut -d: -f2 | tr -d '"'; }
printf 'RESULT tool=roll release=%s wall_s=%s bytes_sent=%s bytes_received=%s\n' \
    "$(field release)" "$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")" "$(field wire_out)" "$(field wire_in)"

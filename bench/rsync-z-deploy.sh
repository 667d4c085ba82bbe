#!/usr/bin/env bash
# The harness's rsync reference with compression (-z), for links where bandwidth is what
# costs:  rsync-z-deploy.sh SRC HOST PORT APPROOT  (see ../shared/bench/rsync-deploy.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_ROLL_SHARED:-$(cd "$HERE/../shared/bench" && pwd)}
export RSYNC_EXTRA_OPTS="${RSYNC_EXTRA_OPTS:-} -z"
out=$("$BENCH/rsync-deploy.sh" "$@")
echo "${out//tool=rsync /tool=rsync-z }"

#!/usr/bin/env bash
# roll-deploy.sh with --no-sync: the release is not flushed to disk before the switch,
# like rsync's default (no --fsync). For comparing like with like in the harness.
ROLL_PUSH_OPTS="--no-sync ${ROLL_PUSH_OPTS:-}" exec "$(dirname "$0")/roll-deploy.sh" "$@"

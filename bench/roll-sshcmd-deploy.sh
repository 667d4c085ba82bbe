#!/usr/bin/env bash
# roll-deploy.sh through the system's ssh client (--ssh-command) instead of roll's own
# SSH client, to compare the two transports in one harness run.
ROLL_TRANSPORT=ssh exec "$(dirname "$0")/roll-deploy.sh" "$@"

#!/usr/bin/env bash
# The agent's peak memory per manifest size: a client driven by hand (the integration
# test ManifestLimitTests/agentMemoryPerEntry) pushes a generated tree of N entries (a
# folder per 1000, paths of 25 bytes, every file of its own content) into an empty
# root three times: a first push, the same tree again (every file reused from the active
# release), and a tree whose files are all new (two releases kept). Prints the agent's peak
# resident set (ru_maxrss) for each, and bytes per entry above an idle agent.
#   bench/manifest-memory.sh                 # 200000,750000 (750000 is the limit)
#   bench/manifest-memory.sh 50000,500000
# Env: ROLL_MANIFEST_BENCH_PATH (path length, default 25; 44 puts 750000 entries at the
# limit on path bytes), ROLL_BIN (the roll binary the agent runs; default: the one beside
# the test build, so an older build can be measured the same way).
# Takes about 3 minutes per million entries and push on two cores, and 4 GiB of disk per
# million files (each is a file of its own).
set -euo pipefail
COUNTS=${1:-200000,750000}
cd "$(dirname "$0")/.."
export PATH=$PATH:/opt/swift/usr/bin
swift build --build-tests >&2
ROLL_MANIFEST_BENCH=$COUNTS swift test --disable-xctest --skip-build --filter 'ManifestLimitTests/agentMemoryPerEntry' 2>&1 \
    | grep -E '^manifest-memory:|✘' | sed 's/^manifest-memory: //'

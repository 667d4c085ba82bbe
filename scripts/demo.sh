#!/usr/bin/env bash
# The local demo: push the sample app, change it, push again, list releases, roll back.
# No server needed: the target is a folder, reached through the same agent protocol that
# runs over SSH. Usage: scripts/demo.sh [ROLL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
ROLL=${1:-.build/debug/roll}
DEMO=${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/roll-demo.XXXXXX")}
SRC=$DEMO/src
ROOT=$DEMO/root
bold=; plain=
if [[ -t 1 ]]; then bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true); fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

rm -rf "$SRC" && mkdir -p "$DEMO" && cp -a examples/hello-app "$SRC"
step "1. Push the sample app ($SRC) into a fresh root ($ROOT)"
show "$ROLL" push "$SRC" "$ROOT"
show ls -l "$ROOT"

step "2. Change one file and push again: only that file travels, the rest are hard links"
sed -i 's/release one/release two/' "$SRC/index.html"
show "$ROLL" push "$SRC" "$ROOT"
show sed -n 4p "$ROOT/current/index.html"

step "3. Push again without changes: nothing to do"
show "$ROLL" push "$SRC" "$ROOT"

step "4. The releases under the root"
show "$ROLL" releases "$ROOT"

step "5. Roll back to the previous release (one atomic rename)"
show "$ROLL" back "$ROOT"
show sed -n 4p "$ROOT/current/index.html"
show "$ROLL" releases "$ROOT"

step "Done"
echo "The demo root stays in $ROOT: look around, or push your own tree:"
echo "  $ROLL push PATH/TO/TREE $ROOT"

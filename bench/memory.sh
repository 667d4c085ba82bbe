#!/usr/bin/env bash
# Where a push's resident memory goes, client and agent, over loopback SSH:
#   ROLL=dist/roll bench/memory.sh            (as root; uses ../shared/bench's sshd and trees)
# For a first push of the webapp tree (fresh root, empty ~/.cache/roll), a push of the same
# tree again, and one after a 1 % change, each side's peak resident set is split into
#   code   the binary's text mapped (file-backed, clean: shared with the page cache)
#   data   the binary's data segment (mostly clean pages of its initialised data)
#   anon   everything the process allocated: heap, mapped buffers, stacks
#   files  other files it mapped (the object cache's objects and packs, a patch's basis)
# sampled every 20 ms from /proc/PID/smaps (the sample with the largest total is kept), and
# the kernel's high-water mark of the whole run (VmHWM, read at each sample: a peak between
# samples is in it, but not one in the last 20 ms).
# The binary is copied with cp before the runs: a file just written by strip or a linker
# sits in the page cache in large folios, and the kernel then maps far more of its text
# on the first faults (measured: `roll --help` 18.2 MB right after strip, 8.0 MB once the
# file was read back normally); a copy is mapped page by page, like an installed binary.
# Env: ROLL (default dist/roll), DATA (default /var/lib/bench/data), BENCH_USER (benchuser),
# BENCH_SSHD_PORT (2222), LEVEL (1-4: each push after the first starts at that link level,
# as after a push over a slow link, where patches go at level 12; default: as the last
# push left it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$(cd "$HERE/../shared/bench" && pwd)
ROLL=${ROLL:-$HERE/dist/roll}
DATA=${DATA:-/var/lib/bench/data}
U=${BENCH_USER:-benchuser}
PORT=${BENCH_SSHD_PORT:-2222}
[[ $(id -u) == 0 ]] || { echo "run as root (it uses the benchmark's private sshd)" >&2; exit 1; }
[[ -x $ROLL ]] || { echo "no roll binary at $ROLL: run packaging/build-static" >&2; exit 1; }

WORK=$(mktemp -d /tmp/roll-memory.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
BIN=$WORK/roll
cp "$ROLL" "$BIN"
STATE=${BENCH_SSHD_STATE:-/var/lib/bench/sshd}
BENCH_SSHD_PORT=$PORT "$BENCH/sshd.sh" start >/dev/null

TREE=$WORK/webapp
if [[ ! -d $DATA/client/webapp ]]; then
    python3 "$BENCH/gen-tree.py" --profile webapp --seed 42 --out "$DATA/client/webapp" --force >/dev/null
fi
cp -a "$DATA/client/webapp" "$TREE"

# Polls PID's smaps until it exits; writes "total code data anon files" (KiB) of the largest
# sample, and the kernel's high-water mark (VmHWM) as last read.
cat >"$WORK/watch" <<'EOF'
#!/usr/bin/env bash
pid=$1 out=$2 exe=$3 best=0 line="- - - - -" hwm=0
while kill -0 "$pid" 2>/dev/null; do
    h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || true
    [[ -n $h && $h -gt $hwm ]] && hwm=$h
    s=$(awk -v exe="$exe" '
        /^[0-9a-f]+-[0-9a-f]+ / {
            kind = ($6 == exe) ? ($2 ~ /x/ ? "code" : "data") : (substr($6, 1, 1) == "/" ? "files" : "anon"); next }
        /^Rss:/ { rss[kind] += $2; total += $2 }
        END { printf "%d %d %d %d %d", total, rss["code"], rss["data"], rss["anon"], rss["files"] }' "/proc/$pid/smaps" 2>/dev/null) || break
    set -- $s
    if [[ -n ${1:-} && $1 -gt $best ]]; then best=$1; line=$s; fi
    sleep 0.02
done
echo "$line $hwm" >"$out"
EOF
chmod 755 "$WORK/watch"
# The agent as the server runs it, watched from beside it.
cat >"$WORK/agent" <<EOF
#!/usr/bin/env bash
exec 3<&0
"$BIN" "\$@" <&3 &
pid=\$!
[[ \$1 == agent && \$2 == --stdio ]] && "$WORK/watch" \$pid "$WORK/peaks/agent" "$BIN" &
wait \$pid
EOF
chmod 755 "$WORK/agent"
mkdir "$WORK/peaks" && chown "$U" "$WORK/peaks"
APP=/home/$U/roll-memory
rm -rf "$APP"

push() {
    rm -f "$WORK/peaks/agent"
    if [[ -n ${LEVEL:-} && -f $WORK/cache/roll/links ]]; then
        awk -v l="$LEVEL" '{ $2 = l; print }' "$WORK/cache/roll/links" >"$WORK/links" && mv "$WORK/links" "$WORK/cache/roll/links"
    fi
    sync
    XDG_CACHE_HOME=$WORK/cache "$BIN" push --json --keep 3 --ssh-config "$STATE/ssh_config" --agent-path "$WORK/agent" \
        "$TREE" "ssh://127.0.0.1:$PORT$APP" >"$WORK/out.json" 2>"$WORK/err" &
    local pid=$!
    "$WORK/watch" $pid "$WORK/peaks/client" "$BIN"
    wait $pid || { cat "$WORK/err" >&2; exit 1; }
    for _ in $(seq 50); do [[ -s $WORK/peaks/agent ]] && break; sleep 0.1; done
    mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
    for side in client agent; do
        read -r total code data anon files hwm <"$WORK/peaks/$side"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$side" "$(mib "$total")" "$(mib "$code")" "$(mib "$data")" "$(mib "$anon")" "$(mib "$files")" "$(mib "$hwm")"
    done
}

echo "roll $("$BIN" --version), $(grep -c . <(find "$TREE" -mindepth 1)) entries in the tree; MiB at each side's peak${LEVEL:+; link level $LEVEL after the first push}"
echo
echo "| push | side | total | code | data | anon | files | high-water mark |"
echo "|---|---|--:|--:|--:|--:|--:|--:|"
push "first"
push "no change"
python3 "$BENCH/mutate-tree.py" "$TREE" --percent 1 --seed 7 >/dev/null
push "1 % change"
rm -rf "$APP"

#!/usr/bin/env bash
# Bytes on the wire, roll against rsync, for two realistic updates of a Python
# virtualenv-like tree built from real PyPI wheels (issue "real-world transfers"):
#
#   A "package upgrade": site-packages with PACKAGES at their OLD version, then at NEW.
#     Wheels carry native libraries that auditwheel renames by content hash
#     (numpy.libs/libscipy_openblas64_-<hash>.so, pillow.libs/..., grpc's _cython .so),
#     so part of an upgrade is "new path, similar content": no tool that deltas only
#     against the same path can reuse it.
#   B "CI checkout": the NEW tree pushed twice, the second time with every file and
#     folder given a new mtime (a fresh checkout / cache restore): content unchanged.
#
# Tools, each into fresh destinations, first tree then second tree; the figures are the
# second (update) transfer:
#   roll local      ROLL push into a local root (agent is a child process; never compressed)
#   roll ssh        ROLL push over ssh://  (roll's own SSH client, zstd at a level that
#                   follows the link, 1 to 4; patches three above it, 9 at 4); changed files
#                   whose old version the first push left in ~/.cache/roll/objects go as
#                   zstd patches against it (executables and libraries aligned first, at
#                   level 4)
#   roll ssh cold   same, but the client's ~/.cache/roll is emptied before the update push,
#                   as on a CI runner that keeps no cache (manifest goes as a collapsed tree
#                   instead of a difference, changed files as block deltas)
#   rsync           rsync -a --delete over ssh, updating the same folder in place
#   rsync -z        same with -z
#   rsync -z fuzzy  the update goes into a hard-linked copy of the previous folder (cp -al on
#                   the server, as a release dir made from the previous one), with -z --fuzzy
#                   and --delete-after (the default --delete-during would remove the renamed
#                   files' old names before --fuzzy could use them as a basis)
# roll's bytes are wire_out/wire_in from `push --json`; rsync's are "Total bytes
# sent/received" from --stats. Both count protocol bytes without SSH framing; "out" is
# client -> server (the data), "in" is server -> client (signatures, acks).
#
# Usage (as root: it creates a user and runs a private sshd):
#   ROLL=/path/to/roll bench/real-packages.sh
# Env: ROLL (required), PACKAGES_LIST (another set of packages, below), WORK (default
# /tmp/realpkg), CACHE (wheel cache, default $WORK/wheel-cache; kept between runs), BENCH_USER (default benchuser), SSH_PORT (default:
# a free loopback port), SHAPED_RATE (e.g. 20mbit: adds roll ssh and rsync -z over a
# rate-limited loopback in a private network namespace; see below). Re-runnable: trees, roots and destinations are rebuilt every run;
# wheels, the sshd host key and the client key are reused. Report: $WORK/results/report.md.
set -euo pipefail

# ---- what to measure -------------------------------------------------------------------
source "$(dirname "$0")/packages.sh"   # PACKAGES, wheel
# Folder mtimes of each tree: folders are not in a wheel, pip creates them at install time.
DIR_MTIME_OLD="2025-01-10 12:00:00 UTC"
DIR_MTIME_NEW="2025-02-10 12:00:00 UTC"

ROLL=${ROLL:?set ROLL=/path/to/roll binary}
WORK=${WORK:-/tmp/realpkg}
CACHE=${CACHE:-$WORK/wheel-cache}
BENCH_USER=${BENCH_USER:-benchuser}
SSH_PORT=${SSH_PORT:-}
# Optional, e.g. SHAPED_RATE=20mbit: also run "roll ssh" and "rsync -z" through a network
# namespace whose loopback is limited to that rate. roll picks its zstd level from the link
# (compress time vs. time waiting for the link, levels 1-4): on plain loopback it moves with
# the CPU the agent and sshd leave it, while rsync -z always uses its default level. A shaped link
# shows what roll sends where bandwidth is what costs. Empty: skipped.
SHAPED_RATE=${SHAPED_RATE:-}

[[ $(id -u) == 0 ]] || { echo "run as root (creates $BENCH_USER, starts an sshd)" >&2; exit 1; }
[[ -x $ROLL ]] || { echo "ROLL=$ROLL is not executable" >&2; exit 1; }
for t in python3 pip rsync ssh ssh-keygen /usr/sbin/sshd zstd xz; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install openssh-server openssh-client rsync zstd xz-utils)" >&2; exit 1; }
done

mkdir -p "$WORK" "$CACHE"
chmod 755 "$WORK"             # the ssh user must reach its roots and authorized_keys below
WORK=$(cd "$WORK" && pwd)
RES=$WORK/results
rm -rf "$RES" && mkdir -p "$RES"
log() { printf '== %s\n' "$*" >&2; }

SSHD_PID="" SSHD2_PID="" NETNS=""
cleanup() {
    # Only the sshd processes this run started, by their pids, and its own namespace.
    local p
    for p in $SSHD_PID $SSHD2_PID; do
        if kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    [[ -z $NETNS ]] || ip netns del "$NETNS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. wheels -------------------------------------------------------------------------
# One folder per name-version, so a re-run skips what is there and a version change
# downloads only the new one.
mb() { stat -c %s "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }
OLD_WHEELS=() NEW_WHEELS=()
for spec in "${PACKAGES[@]}"; do
    read -r name old new <<<"$spec"
    OLD_WHEELS+=("$(wheel "$name" "$old" "$CACHE")")
    NEW_WHEELS+=("$(wheel "$name" "$new" "$CACHE")")
done
{
    echo "| package | old wheel | MB | new wheel | MB |"
    echo "|---|---|--:|---|--:|"
    for i in "${!PACKAGES[@]}"; do
        read -r name _ _ <<<"${PACKAGES[$i]}"
        o=${OLD_WHEELS[$i]} n=${NEW_WHEELS[$i]}
        echo "| $name | $(basename "$o") | $(mb "$o") | $(basename "$n") | $(mb "$n") |"
    done
} >"$RES/wheels.md"

# ---- 2. trees --------------------------------------------------------------------------
# Unpacked as zip entries with their stored mtimes (what rsync's quick check and roll's
# hash cache see) and modes; folders get one "install time" per tree.
unpack() {  # dest dir-mtime wheel...
    local dest=$1 dmt=$2; shift 2
    rm -rf "$dest" && mkdir -p "$dest/site-packages"
    python3 - "$dest/site-packages" "$(date -d "$dmt" +%s)" "$@" <<'PY'
import calendar, os, sys, zipfile
dest, dir_mtime, wheels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for whl in wheels:
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = info.filename
            parts = name.split("/")
            if name.startswith("/") or ".." in parts:
                sys.exit(f"{whl}: unsafe member {name!r}")
            path = os.path.join(dest, name)
            if name.endswith("/"):
                os.makedirs(path, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(info) as src, open(path, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(path, mode | 0o600 if mode else 0o644)
            t = calendar.timegm(info.date_time + (0, 0, -1))   # zip times: no zone; read as UTC
            os.utime(path, (t, t))
for root, dirs, _ in os.walk(os.path.dirname(dest), topdown=False):
    os.utime(root, (dir_mtime, dir_mtime))
PY
}
log "unpacking trees"
cd "$WORK"
unpack tree-old "$DIR_MTIME_OLD" "${OLD_WHEELS[@]}"
unpack tree-new "$DIR_MTIME_NEW" "${NEW_WHEELS[@]}"
# B: same content, every mtime new (files and folders alike).
rm -rf tree-ci && cp -a tree-new tree-ci
sleep 1   # so "now" differs from anything cp -a could have kept
find tree-ci -exec touch {} +

# What changed between old and new: same path same bytes, same path other bytes, and paths
# only in one tree; renamed-by-hash pairs are matched by the name without its 8-hex hash.
python3 - tree-old/site-packages tree-new/site-packages "$RES" <<'PY'
import collections, filecmp, os, re, sys
old, new, res = sys.argv[1:4]
def files(top):
    out = {}
    for root, _, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, top)] = os.path.getsize(p)
    return out
o, n = files(old), files(new)
same = changed = 0; same_b = changed_b = 0; changed_list = []
for p in sorted(set(o) & set(n)):
    if o[p] == n[p] and filecmp.cmp(os.path.join(old, p), os.path.join(new, p), shallow=False):
        same += 1; same_b += n[p]
    else:
        changed += 1; changed_b += n[p]; changed_list.append((n[p], p))
only_new = sorted(((n[p], p) for p in set(n) - set(o)), reverse=True)
only_old = sorted(((o[p], p) for p in set(o) - set(n)), reverse=True)
key = lambda p: re.sub(r"-[0-9a-f]{8}(?=[.-])", "-HASH", p)
old_by_key = collections.defaultdict(list)
for s, p in only_old: old_by_key[key(p)].append(p)
pairs = [(s, old_by_key[key(p)][0], p) for s, p in only_new if len(old_by_key[key(p)]) == 1]
# Folders named after the version (numpy-2.2.5.dist-info) also rename every file in them.
mb = lambda b: f"{b / 1e6:.2f}"
with open(os.path.join(res, "changes.md"), "w") as f:
    f.write(f"files in new: {len(n)} ({mb(sum(n.values()))} MB); old: {len(o)} ({mb(sum(o.values()))} MB)\n\n")
    f.write(f"- same path, same bytes: {same} files, {mb(same_b)} MB\n")
    f.write(f"- same path, changed: {changed} files, {mb(changed_b)} MB (new size)\n")
    f.write(f"- only in new: {len(only_new)} files, {mb(sum(s for s, _ in only_new))} MB\n")
    f.write(f"- only in old: {len(only_old)} files, {mb(sum(s for s, _ in only_old))} MB\n\n")
    f.write("Files of new with no same-path file in old (bytes; the old name when a renamed-by-hash pair):\n\n")
    f.write("| bytes | path in new | old counterpart |\n|--:|---|---|\n")
    for s, p in only_new:
        k = old_by_key.get(key(p), [])
        f.write(f"| {s} | `{p}` | {'`' + k[0] + '`' if len(k) == 1 else ''} |\n")
    f.write("\nLargest same-path changed files:\n\n| bytes | path |\n|--:|---|\n")
    for s, p in sorted(changed_list, reverse=True)[:10]:
        f.write(f"| {s} | `{p}` |\n")
# For the zstd step: largest renamed .so pair, largest same-path changed .so.
with open(os.path.join(res, "pairs.txt"), "w") as f:
    so = [x for x in pairs if ".so" in x[2]]
    if so:
        f.write(f"renamed {os.path.join(old, so[0][1])} {os.path.join(new, so[0][2])}\n")
    so = sorted((x for x in changed_list if ".so" in x[1]), reverse=True)
    if so:
        f.write(f"same-path {os.path.join(old, so[0][1])} {os.path.join(new, so[0][1])}\n")
PY

# ---- 3. sshd ---------------------------------------------------------------------------
# A private OpenSSH server on a free loopback port, for one non-root user with a key. Its
# state lives under $WORK, which is in /tmp (world-writable): StrictModes would refuse the
# authorized_keys file there, so it is off; the server listens on 127.0.0.1 only and lets in
# only $BENCH_USER with that key.
ST=$WORK/sshd
mkdir -p "$ST" && chmod 755 "$ST"
id "$BENCH_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$BENCH_USER"
# A locked password ('!') makes sshd without PAM refuse even key logins.
[[ $(getent shadow "$BENCH_USER" | cut -d: -f2) == '!'* ]] && usermod -p '*' "$BENCH_USER"
[[ -f $ST/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C realpkg-host -f "$ST/host_ed25519"
[[ -f $ST/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C realpkg-client -f "$ST/client_ed25519"
install -m 644 "$ST/client_ed25519.pub" "$ST/authorized_keys"
if [[ -z $SSH_PORT ]]; then
    SSH_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
cat >"$ST/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $ST/host_ed25519
PidFile none
AuthorizedKeysFile $ST/authorized_keys
StrictModes no
AllowUsers $BENCH_USER
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 64:30:128
Subsystem sftp internal-sftp
EOF
mkdir -p /run/sshd && chmod 755 /run/sshd          # privilege-separation dir (no systemd)
/usr/sbin/sshd -t -f "$ST/sshd_config"
/usr/sbin/sshd -D -f "$ST/sshd_config" -E "$ST/sshd.log" &   # -D: stays our child, $! is its pid
SSHD_PID=$!
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$ST/host_ed25519.pub")" >"$ST/known_hosts"
SSH="ssh -F /dev/null -p $SSH_PORT -i $ST/client_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes
     -o UserKnownHostsFile=$ST/known_hosts -o StrictHostKeyChecking=yes -o LogLevel=ERROR"
SSH=$(echo $SSH)   # one line, for rsync -e
for _ in $(seq 50); do $SSH "$BENCH_USER@127.0.0.1" true 2>/dev/null && break; sleep 0.2; done
$SSH "$BENCH_USER@127.0.0.1" true || { echo "ssh login failed; see $ST/sshd.log" >&2; exit 1; }
log "sshd pid $SSHD_PID on 127.0.0.1:$SSH_PORT"

# The agent runs as $BENCH_USER: give it a copy of the binary it can execute.
AGENT=$WORK/agent/roll
mkdir -p "$WORK/agent" && chmod 755 "$WORK/agent"
cmp -s "$ROLL" "$AGENT" 2>/dev/null || install -m 755 "$ROLL" "$AGENT"
REMOTE=$WORK/remote                      # every ssh destination, owned by the ssh user
rm -rf "$REMOTE" && mkdir -p "$REMOTE" && chown "$BENCH_USER:" "$REMOTE"
LOCAL=$WORK/local-roots
rm -rf "$LOCAL" && mkdir -p "$LOCAL"
# The roll client's HOME: its caches and known_hosts, apart from root's own.
CHOME=$WORK/client-home
rm -rf "$CHOME" && mkdir -p "$CHOME"

# ---- 4. measurements -------------------------------------------------------------------
declare -A OUT IN SECS          # key: "tool|scenario" -> bytes of the update transfer
declare -A FIRST                 # key: "tool|scenario" -> total bytes of the first transfer
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
json() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(*(d[k] for k in sys.argv[1:]))' "$@"; }

roll_push() {  # label scenario src target [extra args] -> saves json, echoes it
    local label=$1 sc=$2 src=$3 dst=$4; shift 4
    local f=$RES/${label// /_}-$sc-$(basename "$src").json
    "${NS[@]}" env HOME="$CHOME" "$ROLL" push --json "$@" "$src" "$dst" >"$f" 2>"$f.err" ||
        { cat "$f.err" >&2; echo "roll push $src -> $dst failed" >&2; exit 1; }
    cat "$f"
}
run_roll() {  # label scenario first second target [extra args]
    local label=$1 sc=$2 a=$3 b=$4 dst=$5; shift 5
    local j o i t0
    rm -rf "$CHOME/.cache"           # every pair starts with an empty client cache
    j=$(roll_push "$label" "$sc" "$a" "$dst" "$@")
    read -r o i <<<"$(json wire_out wire_in <<<"$j")"
    FIRST[$label|$sc]=$((o + i))
    [[ $label == *cold* ]] && rm -rf "$CHOME/.cache/roll"
    t0=$(now)
    j=$(roll_push "$label" "$sc" "$b" "$dst" "$@")
    SECS[$label|$sc]=$(since "$t0")
    read -r o i <<<"$(json wire_out wire_in <<<"$j")"
    OUT[$label|$sc]=$o IN[$label|$sc]=$i
    echo "| $label | $sc | $(json files sent_files sent_bytes delta_files delta_file_bytes delta_matched_bytes patch_files aligned_patch_files patch_bytes linked manifest_mode manifest_items compression_level <<<"$j" | tr ' ' '|') |" >>"$RES/roll-details.md"
}
stat_num() { grep -m1 "^$1" "$2" | sed 's/.*: *//; s/,//g; s/ .*//'; }
rsync_to() {  # label scenario src dest [opts] -> stats file
    local label=$1 sc=$2 src=$3 dst=$4; shift 4
    local f=$RES/${label// /_}-$sc-$(basename "$src").stats
    # --debug=nstr: rsync prints the checksum and compression it negotiated (kept in the file)
    "${NS[@]}" rsync -a --stats --no-human-readable --debug=nstr "$@" -e "$SSH" "$src/" "$BENCH_USER@127.0.0.1:$dst/" >"$f"
    echo "$f"
}
run_rsync() {  # label scenario first second [opts]
    local label=$1 sc=$2 a=$3 b=$4; shift 4
    local d1=$REMOTE/${label// /_}-$sc d2 f t0 o opts=("$@") first=() fuzzy=0
    for o in "$@"; do
        if [[ $o == --fuzzy ]]; then fuzzy=1; else first+=("$o"); fi
    done
    f=$(rsync_to "$label" "$sc" "$a" "$d1" --delete "${first[@]}")
    FIRST[$label|$sc]=$(($(stat_num 'Total bytes sent' "$f") + $(stat_num 'Total bytes received' "$f")))
    d2=$d1
    if ((fuzzy)); then
        # a release dir made from the previous one, on the server (costs no wire bytes)
        d2=$d1-next
        $SSH "$BENCH_USER@127.0.0.1" "cp -al '$d1' '$d2'"
        opts+=(--delete-after)
    else
        opts+=(--delete)
    fi
    t0=$(now)
    f=$(rsync_to "$label" "$sc" "$b" "$d2" "${opts[@]}")
    SECS[$label|$sc]=$(since "$t0")
    OUT[$label|$sc]=$(stat_num 'Total bytes sent' "$f")
    IN[$label|$sc]=$(stat_num 'Total bytes received' "$f")
    echo "| $label | $sc | $(stat_num 'Number of regular files transferred' "$f") | $(stat_num 'Literal data' "$f") | $(stat_num 'Matched data' "$f") | $(grep -i -m1 'compress' "$f" | sed 's/^ *//' || true) |" >>"$RES/rsync-details.md"
}

echo "| tool | scen. | files | sent_files | sent_bytes | delta_files | delta_file_bytes | delta_matched_bytes | patch_files | aligned_patch_files | patch_bytes | linked | manifest | manifest_items | zstd level |" >"$RES/roll-details.md"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|" >>"$RES/roll-details.md"
echo "| tool | scen. | files transferred | literal data | matched data | negotiated |" >"$RES/rsync-details.md"
echo "|---|---|--:|--:|--:|---|" >>"$RES/rsync-details.md"

NS=()                             # command prefix: empty, or "ip netns exec NS" for the shaped link
TOOLS=("roll local" "roll ssh" "roll ssh cold" "rsync" "rsync -z" "rsync -z fuzzy")
ssh_url() { echo "ssh://$BENCH_USER@127.0.0.1:$SSH_PORT$REMOTE/$1"; }
ROLL_SSH=(-i "$ST/client_ed25519" --accept-new --agent-path "$AGENT")
for sc in A B; do
    if [[ $sc == A ]]; then a=tree-old b=tree-new; else a=tree-new b=tree-ci; fi
    log "scenario $sc: roll local";     run_roll "roll local" "$sc" "$a" "$b" "$LOCAL/roll-$sc"
    log "scenario $sc: roll ssh";       run_roll "roll ssh" "$sc" "$a" "$b" "$(ssh_url "roll-$sc")" "${ROLL_SSH[@]}"
    log "scenario $sc: roll ssh cold";  run_roll "roll ssh cold" "$sc" "$a" "$b" "$(ssh_url "roll-cold-$sc")" "${ROLL_SSH[@]}"
    log "scenario $sc: rsync";          run_rsync "rsync" "$sc" "$a" "$b"
    log "scenario $sc: rsync -z";       run_rsync "rsync -z" "$sc" "$a" "$b" -z
    log "scenario $sc: rsync -z fuzzy"; run_rsync "rsync -z fuzzy" "$sc" "$a" "$b" -z --fuzzy
done

if [[ -n $SHAPED_RATE ]]; then
    # Same sshd config and port, inside a namespace of our own (so no other process on this
    # machine sees the limit): loopback with MTU 1500 and a token bucket of SHAPED_RATE.
    NETNS=realpkg-$$
    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo mtu 1500 up
    ip netns exec "$NETNS" tc qdisc add dev lo root tbf rate "$SHAPED_RATE" burst 32kb latency 200ms
    ip netns exec "$NETNS" /usr/sbin/sshd -D -f "$ST/sshd_config" -E "$ST/sshd-shaped.log" &
    SSHD2_PID=$!                  # ip netns exec execs sshd: same pid
    NS=(ip netns exec "$NETNS")
    for _ in $(seq 50); do "${NS[@]}" $SSH "$BENCH_USER@127.0.0.1" true 2>/dev/null && break; sleep 0.2; done
    "${NS[@]}" $SSH "$BENCH_USER@127.0.0.1" true || { echo "ssh in $NETNS failed; see $ST/sshd-shaped.log" >&2; exit 1; }
    TOOLS+=("roll ssh @$SHAPED_RATE" "rsync -z @$SHAPED_RATE")
    for sc in A B; do
        if [[ $sc == A ]]; then a=tree-old b=tree-new; else a=tree-new b=tree-ci; fi
        log "scenario $sc: roll ssh @$SHAPED_RATE"
        run_roll "roll ssh @$SHAPED_RATE" "$sc" "$a" "$b" "$(ssh_url "roll-shaped-$sc")" "${ROLL_SSH[@]}"
        log "scenario $sc: rsync -z @$SHAPED_RATE"
        run_rsync "rsync -z @$SHAPED_RATE" "$sc" "$a" "$b" -z
    done
    NS=()
fi

# ---- 5. dictionary-delta potential -----------------------------------------------------
# What a delta against a *similar* file (not the same path) could save: zstd --patch-from
# with the old library as dictionary, against plain compression of the new one.
zrow() {  # label cmd... (last arg is output file) -> "| label | bytes | seconds |"
    local label=$1 t0; shift
    t0=$(now); "$@" 2>/dev/null; local s; s=$(since "$t0")
    echo "| $label | $(stat -c %s "${@: -1}") | $s |"
}
: >"$RES/zstd.md"
while read -r kind old new; do
    z=$WORK/zstd && rm -rf "$z" && mkdir -p "$z"
    {
        echo "**$kind** \`${old#"$WORK"/}\` ($(stat -c %s "$old") B) -> \`${new#"$WORK"/}\` ($(stat -c %s "$new") B)"
        echo
        echo "| method | bytes | seconds |"
        echo "|---|--:|--:|"
        zrow "zstd -3 --long=27 --patch-from" zstd -q -f -3 --long=27 --patch-from="$old" "$new" -o "$z/p3.zst"
        zrow "zstd -19 --long=27 --patch-from" zstd -q -f -19 --long=27 --patch-from="$old" "$new" -o "$z/p19.zst"
        zrow "zstd -3 (no dictionary)" zstd -q -f -3 "$new" -o "$z/n3.zst"
        zrow "zstd -19 (no dictionary)" zstd -q -f -19 "$new" -o "$z/n19.zst"
        t0=$(now); xz -k -c -6 "$new" >"$z/n.xz"; echo "| xz -6 (no dictionary) | $(stat -c %s "$z/n.xz") | $(since "$t0") |"
        # roll's own block delta against the old file (what a push sends for a same-path
        # change, before its zstd stream; a renamed file is sent whole instead), then zstd -3.
        t0=$(now)
        "$ROLL" signature --seed 1 "$old" "$z/sig" && "$ROLL" delta "$z/sig" "$new" "$z/delta" &&
            zstd -q -f -3 "$z/delta" -o "$z/delta.zst"
        echo "| roll block delta ($(stat -c %s "$z/delta") B, signature $(stat -c %s "$z/sig") B) + zstd -3 | $(stat -c %s "$z/delta.zst") | $(since "$t0") |"
        # the patch really rebuilds the file
        zstd -q -d --long=27 --patch-from="$old" "$z/p3.zst" -o "$z/check" && cmp -s "$z/check" "$new" ||
            echo "(patch-from check FAILED)"
        echo
    } >>"$RES/zstd.md"
done <"$RES/pairs.txt"

# The same idea over the whole of A: every file of new compressed on its own with zstd -3,
# with --patch-from its same-path (or renamed-by-hash) old file when there is one; files
# identical at the same path cost nothing. Comparable to the "out" bytes of A.
python3 - tree-old/site-packages tree-new/site-packages "$WORK/zstd" >"$RES/potential.md" <<'PY'
import collections, filecmp, os, re, subprocess, sys
old, new, tmp = sys.argv[1:4]
os.makedirs(tmp, exist_ok=True)
def files(top):
    out = {}
    for root, _, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, top)] = p
    return out
o, n = files(old), files(new)
key = lambda p: re.sub(r"-[0-9a-f]{8}(?=[.-])", "-HASH", p)
only_old = collections.defaultdict(list)
for p in set(o) - set(n):
    only_old[key(p)].append(p)
def z(args, src):
    out = os.path.join(tmp, "one.zst")
    subprocess.run(["zstd", "-q", "-f", *args, src, "-o", out], check=True)
    return os.path.getsize(out)
count, raw, whole, patch = collections.Counter(), collections.Counter(), collections.Counter(), collections.Counter()
for p, path in n.items():
    if p in o:
        if filecmp.cmp(o[p], path, shallow=False):
            continue
        basis, kind = o[p], "same path, changed"
    elif len(only_old.get(key(p), [])) == 1:
        basis, kind = o[only_old[key(p)][0]], "renamed by hash"
    else:
        basis, kind = None, "new (no counterpart)"
    count[kind] += 1; raw[kind] += os.path.getsize(path)
    w = z(["-3"], path); whole[kind] += w
    # zstd's --patch-from aborts on an empty file, either one.
    patchable = basis and os.path.getsize(basis) and os.path.getsize(path)
    patch[kind] += z(["-3", "--long=27", f"--patch-from={basis}"], path) if patchable else w
print("| files of new | count | raw bytes | zstd -3 each | zstd -3 --patch-from old |")
print("|---|--:|--:|--:|--:|")
for k in sorted(count):
    print(f"| {k} | {count[k]} | {raw[k]} | {whole[k]} | {patch[k]} |")
print(f"| **total** | {sum(count.values())} | {sum(raw.values())} | {sum(whole.values())} | {sum(patch.values())} |")
PY

# ---- 6. report -------------------------------------------------------------------------
entries_b=$(find tree-ci -mindepth 1 | wc -l)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
    echo "# roll vs rsync, real package upgrade (A) and CI checkout (B)"
    echo
    echo "roll: \`$ROLL\` ($("$ROLL" --version 2>/dev/null | head -1)); rsync $(rsync --version | head -1 | awk '{print $3}'); $(date -u +%FT%TZ)"
    echo
    cat "$RES/wheels.md"
    echo
    echo "Bytes of the update transfer (out = client to server, in = server to client); \"first\" is the full first transfer."
    echo
    echo "| tool | A out | A in | A total | B out | B in | B total | first (A) total | A s | B s |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for t in "${TOOLS[@]}"; do
        echo "| $t | ${OUT[$t|A]} | ${IN[$t|A]} | $((OUT[$t|A] + IN[$t|A])) | ${OUT[$t|B]} | ${IN[$t|B]} | $((OUT[$t|B] + IN[$t|B])) | ${FIRST[$t|A]} | ${SECS[$t|A]} | ${SECS[$t|B]} |"
    done
    echo
    echo "Ratios of totals (roll / rsync):"
    echo
    echo "| roll | rsync | A | B |"
    echo "|---|---|--:|--:|"
    pairs=()
    for r in "roll local" "roll ssh" "roll ssh cold"; do
        for s in "rsync" "rsync -z" "rsync -z fuzzy"; do
            [[ $r == "roll local" && $s != rsync ]] || pairs+=("$r=$s")
        done
    done
    [[ -z $SHAPED_RATE ]] || pairs+=("roll ssh @$SHAPED_RATE=rsync -z @$SHAPED_RATE")
    for pr in "${pairs[@]}"; do
        r=${pr%%=*} s=${pr#*=}
        echo "| $r | $s | $(ratio $((OUT[$r|A] + IN[$r|A])) $((OUT[$s|A] + IN[$s|A]))) | $(ratio $((OUT[$r|B] + IN[$r|B])) $((OUT[$s|B] + IN[$s|B]))) |"
    done
    echo
    echo "Scenario B: $entries_b entries (files, folders, symlinks) all with a new mtime; per entry:"
    echo
    for t in "${TOOLS[@]}"; do
        echo "- $t: $(ratio $((OUT[$t|B] + IN[$t|B])) "$entries_b") B/entry total, $(ratio "${OUT[$t|B]}" "$entries_b") out"
    done
    echo
    echo "## roll details (update push)"
    echo
    cat "$RES/roll-details.md"
    echo
    echo "## rsync details (update transfer)"
    echo
    cat "$RES/rsync-details.md"
    echo
    echo "## What changed from old to new"
    echo
    cat "$RES/changes.md"
    echo
    echo "## Dictionary-delta potential"
    echo
    cat "$RES/zstd.md"
    echo "Over all of A (per file, no block delta):"
    echo
    cat "$RES/potential.md"
} >"$RES/report.md"
cat "$RES/report.md"

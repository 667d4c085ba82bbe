#!/usr/bin/env bash
# Zero-downtime check for roll: does a site served straight from ROOT/current ever answer
# with an error, a short body, or a body that mixes two releases while roll switches
# releases under load?
#
# What it does (everything on 127.0.0.1, in a temp workspace, bounded in time):
#   - starts its own nginx (daemon off, own pid file and logs, sendfile on,
#     open_file_cache off so every request resolves ROOT/current again, `root ROOT/current;`)
#     on a free loopback port, and stops it by pid at exit;
#   - makes two source trees A and B whose files (index.html 20 KiB, asset.bin 256 KiB) are one
#     16-byte token repeated, "<A-gen00000007>\n" (tree and generation), so a response that
#     mixes two releases, or is cut short, is detectable; pushes A (generation 0);
#   - loads it: `wrk -t2 -c32 -d$DURATION` on /index.html and a second wrk on /asset.bin, each
#     with a Lua script that counts non-2xx responses and spot-checks bodies (wrk's own
#     "Non-2xx or 3xx" and socket error counts are parsed too); in parallel a python3 checker
#     (http.client, $CHECKER_THREADS threads) GETs both files and verifies every body in full:
#     status 200, Content-Length, whole body, exactly one release's token, and a token that was
#     live at some moment of the request (not stale);
#   - meanwhile makes $SWITCHES switches as fast as they go, alternating `roll push --keep $KEEP`
#     and `roll back`. Each push edits the trees in place: index.html gets the next generation,
#     the trees alternate A/B; with REUSE_ASSET=1 asset.bin keeps its tree's generation, so it
#     is hard-linked from a kept release (often the live one). Every $BACK_NAMED_EVERY-th back
#     is `roll back ROOT ID` to the oldest kept release, so the next push prunes the release
#     that was live a moment before. Each switch is checked to land on the expected release;
#   - prints a summary (requests, non-2xx, socket errors, checker verdicts, nginx log
#     statuses, switches and their times) and exits 1 if any count that should be 0 is not,
#     2 if the check could not be set up.
#
# Run (as root, so it can apt-get install nginx and wrk if they are missing); about
# DURATION + 5 seconds on 2 cores:
#   bench/zero-downtime.sh
#   ROLL_BIN=/tmp/roll DURATION=60 SWITCHES=100 bench/zero-downtime.sh
# Env: ROLL_BIN (default: this checkout's .build/release/roll; copied into the workspace first),
#   DURATION (wrk seconds, 60; must outlast the switches, which take ~30 s under load here),
#   SWITCHES (100), KEEP (5), WARMUP (seconds of load before the first switch, 2),
#   WRK_THREADS (2), WRK_CONNS (32), CHECKER_THREADS (3), NGINX_WORKERS (2),
#   BACK_NAMED_EVERY (5; 0 = always plain `roll back`), REUSE_ASSET (1; 0 = asset.bin changes
#   every push too), KEEP_WORKSPACE (1 = keep it; it is always kept when the check fails).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROLL_SRC_BIN=${ROLL_BIN:-$HERE/.build/release/roll}
DURATION=${DURATION:-60}
SWITCHES=${SWITCHES:-100}
KEEP=${KEEP:-5}
WARMUP=${WARMUP:-2}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-32}
CHECKER_THREADS=${CHECKER_THREADS:-3}
NGINX_WORKERS=${NGINX_WORKERS:-2}
BACK_NAMED_EVERY=${BACK_NAMED_EVERY:-5}
REUSE_ASSET=${REUSE_ASSET:-1}
INDEX_SIZE=20480     # 1280 tokens
ASSET_SIZE=262144    # 16384 tokens

die() { echo "zero-downtime: $*" >&2; exit 2; }
[[ -x $ROLL_SRC_BIN ]] || die "no roll binary at $ROLL_SRC_BIN (set ROLL_BIN)"
command -v python3 >/dev/null || die "python3 is needed"
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
    [[ $EUID == 0 ]] || die "missing ${need[*]}; run as root to install them"
    echo "installing ${need[*]}..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx)

WS=$(mktemp -d /tmp/roll-zd.XXXXXX)
chmod 755 "$WS"   # nginx workers run unprivileged and must reach ROOT
mkdir -p "$WS"/{nginx,srcA,srcB,cache,out}
ROLL=$WS/roll
cp "$ROLL_SRC_BIN" "$ROLL"
export XDG_CACHE_HOME=$WS/cache   # roll's hash and manifest caches stay in the workspace
ROOT=$WS/root
OUT=$WS/out

PIDS=()
NGINX_PID=
STATUS=2
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n $NGINX_PID ]]; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    if [[ $STATUS == 0 && ${KEEP_WORKSPACE:-0} != 1 ]]; then
        rm -rf "$WS"
    else
        echo "workspace kept: $WS" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers in other languages
cat >"$WS/check.lua" <<'LUA'
-- Counts non-2xx responses and spot-checks bodies (length; first, middle and last token equal).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  expected = tonumber(args[1])
  non2xx = 0; badbody = 0; s404 = 0; s5xx = 0; sother = 0
end
local function tok_at(body, i) return body:sub(i * 16 + 1, i * 16 + 16) end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 404 then s404 = s404 + 1 elseif status >= 500 then s5xx = s5xx + 1
    else sother = sother + 1 end
    return
  end
  local n = expected / 16
  local t = tok_at(body, 0)
  if #body ~= expected or not t:match("^<[AB]%-gen%d%d%d%d%d%d%d%d>\n$")
     or tok_at(body, math.floor(n / 2)) ~= t or tok_at(body, n - 1) ~= t then
    badbody = badbody + 1
  end
end
function done(summary, latency, requests)
  local a, b, c, d, e = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("non2xx"); b = b + t:get("badbody")
    c = c + t:get("s404"); d = d + t:get("s5xx"); e = e + t:get("sother")
  end
  io.write(string.format("LUA non2xx=%d badbody=%d statuses=[404:%d 5xx:%d other:%d]\n", a, b, c, d, e))
end
LUA

cat >"$WS/zd.py" <<'PY'
"""check: GET both files until a stop file appears, verify every body, keep a record of each.
report: read wrk outputs, the checker's records, the switch log and nginx's logs; print the summary."""
import bisect, http.client, json, os, re, statistics, sys, threading, time

FILES = {"/index.html": 20480, "/asset.bin": 262144}
PATHS = list(FILES)
TOK = re.compile(rb"<([AB])-gen(\d{8})>\n")

def fetch(conn, path):
    """One GET: (status, gen, kind, detail), kind in ok non2xx short mixed failed."""
    conn.request("GET", path)
    r = conn.getresponse()
    try:
        body = r.read()
    except http.client.IncompleteRead as e:
        return r.status, -1, "short", f"IncompleteRead {len(e.partial)} of {r.length}", True
    close = r.will_close
    if r.status != 200:
        return r.status, -1, "non2xx", f"status {r.status}", close
    size = FILES[path]
    cl = r.getheader("Content-Length")
    if cl is None or int(cl) != size or len(body) != size:
        return r.status, -1, "short", f"Content-Length {cl} body {len(body)} want {size}", close
    m = TOK.fullmatch(body[:16])
    if not m or body != body[:16] * (size // 16):
        toks = sorted(set(TOK.findall(body)))
        return r.status, -1, "mixed", f"tokens {toks[:4]}", close
    return 200, int(m.group(2)), "ok", "", close

def check(host, port, stopfile, out, nthreads, maxsecs):
    deadline = time.time() + maxsecs
    recs, lock = [], threading.Lock()
    def worker(k):
        conn, n, mine = None, 0, []
        while not os.path.exists(stopfile) and time.time() < deadline:
            path = PATHS[n % 2]
            n += 1
            a = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                st, gen, kind, detail, close = fetch(conn, path)
            except (OSError, http.client.HTTPException) as e:
                st, gen, kind, detail, close = 0, -1, "failed", f"{type(e).__name__}: {e}", True
            b = time.time()
            mine.append((a, b, path, st, gen, kind, detail))
            if close or n % 50 == 0:   # mostly keep-alive, some fresh connections
                conn.close(); conn = None
        with lock:
            recs.extend(mine)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in ts: t.start()
    for t in ts: t.join()
    recs.sort()
    with open(out, "w") as f:
        json.dump(recs, f)

def wrk_stats(path):
    txt = open(path).read()
    d = {"requests": 0, "non2xx_wrk": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
         "non2xx_lua": None, "badbody_lua": None, "rps": 0.0, "statuses": ""}
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", txt)
    if m: d["requests"] = int(m.group(1)); d["took"] = m.group(2); d["read_bytes"] = m.group(3)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    if m: d.update(connect=int(m[1]), read=int(m[2]), write=int(m[3]), timeout=int(m[4]))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    if m: d["non2xx_wrk"] = int(m[1])
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    if m: d["rps"] = float(m[1])
    m = re.search(r"LUA non2xx=(\d+) badbody=(\d+) statuses=\[(.*)\]", txt)
    if m: d["non2xx_lua"] = int(m[1]); d["badbody_lua"] = int(m[2]); d["statuses"] = m[3].strip()
    return d

def report(ws, t_load):
    out = os.path.join(ws, "out")
    t_load = float(t_load)
    bad = {}   # name -> count that should be 0
    print("== roll zero-downtime check ==")
    print(f"roll: {open(os.path.join(out, 'roll-version')).read().strip()}")
    # --- switches
    ops = []
    for line in open(os.path.join(out, "switches.tsv")):
        i, op, rc, t0, t1, cur, gi, ga, expect = line.rstrip("\n").split("\t")
        ops.append(dict(i=int(i), op=op, rc=int(rc), t0=float(t0), t1=float(t1), cur=cur,
                        gen={"/index.html": int(gi), "/asset.bin": int(ga)}, expect=expect))
    init, sw = ops[0], ops[1:]
    pushes = [o for o in sw if o["op"] == "push"]
    backs = [o for o in sw if o["op"].startswith("back")]
    errs = [o for o in sw if o["rc"] != 0]
    wrong = [o for o in sw if o["rc"] == 0 and o["expect"] != "-" and o["cur"] != o["expect"]]
    dur = [o["t1"] - o["t0"] for o in sw]
    bad["roll errors (non-zero exit)"] = len(errs)
    bad["switches landing on an unexpected release"] = len(wrong)
    # --- wrk
    wi, wa = wrk_stats(os.path.join(out, "wrk-index.txt")), wrk_stats(os.path.join(out, "wrk-asset.txt"))
    for name, w in (("index", wi), ("asset", wa)):
        if w["non2xx_lua"] is None:
            bad[f"wrk {name}: no Lua summary (wrk failed?)"] = 1
    # --- checker
    recs = json.load(open(os.path.join(out, "checker.json")))
    kinds = {}
    for r in recs: kinds[r[5]] = kinds.get(r[5], 0) + 1
    # stale: a token that was not live at any moment between request start and end
    ends = [o["t1"] for o in ops]
    stale = []
    for a, b, path, st, gen, kind, detail in recs:
        if kind != "ok": continue
        j = bisect.bisect_right(ends, a) - 1          # last op finished before the request
        allowed = {ops[j]["gen"][path]} if j >= 0 else set()
        k = max(j, 0)
        while k < len(ops) and ops[k]["t0"] <= b:       # ops running during the request
            if ops[k]["t1"] >= a: allowed.add(ops[k]["gen"][path])
            k += 1
        if gen not in allowed: stale.append((a, path, gen, sorted(allowed)))
    # --- nginx logs
    errlog = open(os.path.join(ws, "nginx", "error.log"), errors="replace").read().splitlines()
    nerr = [l for l in errlog if re.search(r"\[(error|crit|alert|emerg)\]", l)]
    acc_status, acc_short, acc_bad = {}, 0, []
    with open(os.path.join(ws, "nginx", "access.log"), errors="replace") as f:
        for l in f:
            p = l.split()
            if len(p) < 4: continue
            acc_status[p[1]] = acc_status.get(p[1], 0) + 1
            if p[1] != "200": acc_bad.append(l.strip())
            elif p[3] in FILES and int(p[2]) != FILES[p[3]]: acc_short += 1
    # --- final state
    fin = json.load(open(os.path.join(out, "final.json")))

    tot = wi["requests"] + wa["requests"]
    print(f"load: 2 x wrk -t{os.environ.get('WRK_THREADS')} -c{os.environ.get('WRK_CONNS')} "
          f"-d{os.environ.get('DURATION')}s + checker {os.environ.get('CHECKER_THREADS')} threads; "
          f"nginx {os.environ.get('NGINX_WORKERS')} workers, sendfile on, open_file_cache off")
    for name, w in (("/index.html", wi), ("/asset.bin", wa)):
        print(f"wrk {name:12s} requests {w['requests']:8d} ({w['rps']:.0f}/s)  non-2xx {w['non2xx_wrk']} "
              f"(lua {w['non2xx_lua']}{' ' + w['statuses'] if w['non2xx_lua'] else ''})  body spot-check failures "
              f"{w['badbody_lua']}  socket errors connect {w['connect']} read {w['read']} "
              f"write {w['write']} timeout {w['timeout']}")
        bad[f"wrk {name} non-2xx"] = max(w["non2xx_wrk"], w["non2xx_lua"] or 0)
        bad[f"wrk {name} bad bodies"] = w["badbody_lua"] or 0
        for e in ("connect", "read", "write", "timeout"):
            bad[f"wrk {name} socket errors ({e})"] = w[e]
    print(f"wrk total requests {tot}")
    gens = {r[4] for r in recs if r[5] == "ok" and r[2] == "/index.html"}
    print(f"checker requests {len(recs)}  ok {kinds.get('ok', 0)}  non-2xx {kinds.get('non2xx', 0)}  "
          f"short {kinds.get('short', 0)}  mixed {kinds.get('mixed', 0)}  failed {kinds.get('failed', 0)}  "
          f"stale {len(stale)}  (distinct index generations seen {len(gens)})")
    for k in ("non2xx", "short", "mixed", "failed"):
        bad[f"checker {k}"] = kinds.get(k, 0)
    bad["checker stale (release not live during the request)"] = len(stale)
    print(f"nginx: access log statuses {dict(sorted(acc_status.items()))}, 200s with a short body "
          f"{acc_short}; error log lines at error or worse {len(nerr)}")
    bad["nginx error-log errors"] = len(nerr)
    bad["nginx access-log non-200"] = len(acc_bad)
    last = sw[-1]["t1"] if sw else t_load
    print(f"switches {len(sw)} done ({len(pushes)} push, {len(backs)} back, "
          f"{sum(1 for o in backs if o['op'] == 'back-id')} of them named) in "
          f"{last - sw[0]['t0'] if sw else 0:.2f}s; first at +{sw[0]['t0'] - t_load if sw else 0:.2f}s, "
          f"last done at +{last - t_load:.2f}s of load")
    def ms(l):
        l = [(o["t1"] - o["t0"]) * 1000 for o in l]
        return f"median {statistics.median(l):.0f} ms, max {max(l):.0f} ms" if l else "-"
    print(f"  push {ms(pushes)}; back {ms(backs)} (under load; each is a fresh roll process)")
    if sw and last - t_load > float(os.environ.get("DURATION", "0")):
        bad["switches still running when the load ended (raise DURATION)"] = 1
    kept = fin["releases"]
    print(f"final: current -> {fin['current']} (index gen {fin['current_gen']['/index.html']}, asset gen "
          f"{fin['current_gen']['/asset.bin']}); served index gen {fin['served']['/index.html']}, "
          f"asset gen {fin['served']['/asset.bin']}; "
          f"releases kept {len(kept)}: {' '.join(r['id'].split('-')[0] + ':' + (r['state'] or '-') for r in kept)}")
    bad["final content differs from current"] = sum(
        1 for p in FILES if fin["served"][p] != fin["current_gen"][p])
    if len(kept) > int(os.environ.get("KEEP", "5")) + 2:
        bad[f"more releases kept than --keep {os.environ.get('KEEP')} + active + rollback target"] = len(kept)
    print(f"took {float(open(os.path.join(out, 't_end')).read()) - float(open(os.path.join(out, 't_start')).read()):.1f}s in all")
    # --- details of anything that went wrong
    def during(a, b):
        return ", ".join(f"{o['op']}#{o['i']}" for o in ops[1:]
                         if o["t0"] - 0.002 <= b and a <= o["t1"] + 0.002) or "no switch running"
    # Every bad event with a time, grouped into windows (events less than 50 ms apart).
    ev = [(r[0], r[1], "checker " + r[5], r[6]) for r in recs if r[5] != "ok"]
    ev += [(a, a, "checker stale", f"{path} gen {gen}, live then {al}") for a, path, gen, al in stale]
    for l in acc_bad:
        p = l.split(); ev.append((float(p[0]), float(p[0]), "nginx " + p[1], p[3]))
    ev += [(o["t0"], o["t1"], f"roll {o['op']} exit {o['rc']}", "see out/roll.log") for o in errs]
    ev.sort()
    wins = []
    for e in ev:
        if wins and e[0] <= wins[-1]["b"] + 0.05:
            w = wins[-1]; w["b"] = max(w["b"], e[1])
        else:
            w = {"a": e[0], "b": e[1], "n": {}, "ex": e}; wins.append(w)
        w["n"][e[2]] = w["n"].get(e[2], 0) + 1
    if wins:
        print(f"bad windows: {len(wins)} (times from the start of the load; 'during' = switches running then)")
    for w in wins[:12]:
        print(f"  +{w['a'] - t_load:.3f}s..+{w['b'] - t_load:.3f}s ({(w['b'] - w['a']) * 1000:.0f} ms): "
              + ", ".join(f"{k} x{v}" for k, v in w["n"].items())
              + f"; during: {during(w['a'], w['b'])}; e.g. {w['ex'][2]}: {w['ex'][3]}")
    for o in wrong[:10]:
        print(f"  {o['op']} #{o['i']} at +{o['t0'] - t_load:.3f}s: current -> {o['cur']}, expected {o['expect']}")
    for l in nerr[:3]:
        print(f"  nginx error.log: {l}")
    failing = {k: v for k, v in bad.items() if v}
    if failing:
        print("FAIL: " + "; ".join(f"{k} = {v}" for k, v in failing.items()))
        return 1
    print("PASS: every count that should be 0 is 0")
    return 0

def final(host, port, root, out):
    try:
        cur = os.readlink(os.path.join(root, "current"))
    except OSError as e:
        cur = f"MISSING ({e})"
    served = {}
    for p in FILES:
        c = http.client.HTTPConnection(host, port, timeout=10)
        try:
            st, gen, kind, detail, _ = fetch(c, p)
        except (OSError, http.client.HTTPException):
            gen = -1
        finally:
            c.close()
        served[p] = gen
    gen = {p: -1 for p in FILES}
    for line in open(os.path.join(out, "switches.tsv")):
        f = line.rstrip("\n").split("\t")
        if f[1] in ("init", "push") and f[5] == os.path.basename(cur):
            gen = {"/index.html": int(f[6]), "/asset.bin": int(f[7])}
    rel = json.loads(open(os.path.join(out, "releases.json")).read())
    json.dump({"current": os.path.basename(cur), "current_gen": gen, "served": served,
               "releases": rel}, open(os.path.join(out, "final.json"), "w"))

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "check":
        check(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), float(sys.argv[7]))
    elif cmd == "ready":
        c = http.client.HTTPConnection(sys.argv[2], int(sys.argv[3]), timeout=2)
        c.request("GET", "/index.html"); r = c.getresponse(); r.read()
        sys.exit(0 if r.status == 200 else 1)
    elif cmd == "final":
        final(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
PY

# ---------------------------------------------------------------- source trees
# write_tree DIR TREE GEN AGEN: rewrite index.html in place with the token of TREE, generation
# GEN, and asset.bin with generation AGEN when that changes it.
write_tree() {
    local s
    printf -v s '<%s-gen%08d>\n' "$2" "$3"
    while ((${#s} < INDEX_SIZE)); do s+=$s; done
    printf '%s' "${s:0:INDEX_SIZE}" >"$1/index.html"
    printf -v s '<%s-gen%08d>\n' "$2" "$4"
    if [[ ! -f $1/asset.bin || $(head -c 16 "$1/asset.bin") != "${s%$'\n'}" ]]; then
        while ((${#s} < ASSET_SIZE)); do s+=$s; done
        printf '%s' "$s" >"$1/asset.bin"
    fi
}
# asset.bin's generation for push GEN: with REUSE_ASSET=1 each tree keeps its first one, so the
# asset of a push equals the one two pushes back and roll hard-links it from a kept release.
asset_gen() { if ((REUSE_ASSET)); then echo $(($1 % 2)); else echo "$1"; fi; }
echo "$("$ROLL" --version 2>&1 | head -1) ($ROLL_SRC_BIN)" >"$OUT/roll-version"
date +%s.%N >"$OUT/t_start"
write_tree "$WS/srcA" A 0 0
write_tree "$WS/srcB" B 1 1
"$ROLL" push --quiet --keep "$KEEP" "$WS/srcA" "$ROOT" >>"$OUT/roll.log" 2>&1 || die "first push failed: $(cat "$OUT/roll.log")"
IDS=("$(basename "$(readlink "$ROOT/current")")")
printf '0\tinit\t0\t%s\t%s\t%s\t0\t0\t-\n' "$EPOCHREALTIME" "$EPOCHREALTIME" "${IDS[0]}" >"$OUT/switches.tsv"

# ---------------------------------------------------------------- nginx on a free port
NUSER=
if [[ $EUID == 0 ]]; then
    if getent passwd www-data >/dev/null; then NUSER="user www-data www-data;"; else NUSER="user nobody $(id -gn nobody);"; fi
fi
start_nginx() {
    local port=$1 n=$WS/nginx
    : >"$n/error.log"
    cat >"$n/nginx.conf" <<EOF
$NUSER
daemon off;
worker_processes $NGINX_WORKERS;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    types { text/html html; }
    log_format zd '\$msec \$status \$body_bytes_sent \$uri';
    access_log $n/access.log zd buffer=64k flush=1s;
    sendfile on;
    tcp_nopush on;
    open_file_cache off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $n/body;
    proxy_temp_path $n/proxy;
    fastcgi_temp_path $n/fastcgi;
    uwsgi_temp_path $n/uwsgi;
    scgi_temp_path $n/scgi;
    server {
        listen 127.0.0.1:$port;
        root $ROOT/current;
        location / { }
    }
}
EOF
    "$NGINX" -p "$n" -c "$n/nginx.conf" -e "$n/error.log" &
    NGINX_PID=$!
    local i
    for ((i = 0; i < 50; i++)); do
        sleep 0.1
        if ! kill -0 "$NGINX_PID" 2>/dev/null; then
            wait "$NGINX_PID" 2>/dev/null || true
            NGINX_PID=
            return 1
        fi
        python3 "$WS/zd.py" ready 127.0.0.1 "$port" 2>/dev/null && return 0
    done
    return 1
}
PORT=
for try in 1 2 3 4 5 6 7 8; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if start_nginx "$p"; then PORT=$p; break; fi
    echo "nginx did not come up on port $p (try $try): $(tail -2 "$WS/nginx/error.log")" >&2
    if [[ -n $NGINX_PID ]]; then kill -TERM "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; NGINX_PID=; fi
done
[[ -n $PORT ]] || die "could not start nginx"
URL=http://127.0.0.1:$PORT

# ---------------------------------------------------------------- load
T_LOAD=$EPOCHREALTIME
wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency -s "$WS/check.lua" "$URL/index.html" -- "$INDEX_SIZE" >"$OUT/wrk-index.txt" 2>&1 &
WRK1=$!; PIDS+=("$WRK1")
wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency -s "$WS/check.lua" "$URL/asset.bin" -- "$ASSET_SIZE" >"$OUT/wrk-asset.txt" 2>&1 &
WRK2=$!; PIDS+=("$WRK2")
python3 "$WS/zd.py" check 127.0.0.1 "$PORT" "$WS/stop" "$OUT/checker.json" "$CHECKER_THREADS" "$((DURATION + 120))" &
CHECKER=$!; PIDS+=("$CHECKER")
sleep "$WARMUP"

# ---------------------------------------------------------------- switches
# Each line of switches.tsv: n, op, exit code, start, end, current after, its index and asset
# generations, expected current.
gen=0 nback=0
gen_of() { # id -> "index-gen<TAB>asset-gen", from the log
    awk -F'\t' -v id="$1" '($2=="init"||$2=="push") && $6==id {g=$7 "\t" $8} END {print (g==""?"-1\t-1":g)}' "$OUT/switches.tsv"
}
for ((i = 1; i <= SWITCHES; i++)); do
    expect=- rc=0
    if ((i % 2 == 1)); then
        op=push
        gen=$((gen + 1))
        if ((gen % 2 == 0)); then tree=A; else tree=B; fi
        agen=$(asset_gen "$gen")
        write_tree "$WS/src$tree" "$tree" "$gen" "$agen"
        t0=$EPOCHREALTIME
        "$ROLL" push --quiet --keep "$KEEP" "$WS/src$tree" "$ROOT" >>"$OUT/roll.log" 2>&1 || rc=$?
        t1=$EPOCHREALTIME
        cur=$(readlink "$ROOT/current") || cur=MISSING; cur=${cur##*/}
        if ((rc == 0)); then
            IDS+=("$cur"); cgen=$gen$'\t'$agen
            expect=$cur
            [[ $cur != "${IDS[-2]}" ]] || expect=new-release
        else
            echo "push #$i (gen $gen, tree $tree) exited $rc at $t0" >>"$OUT/roll.log"
            cgen=$(gen_of "$cur")
        fi
    else
        nback=$((nback + 1))
        t0=$EPOCHREALTIME
        if ((BACK_NAMED_EVERY > 0 && nback % BACK_NAMED_EVERY == 0)); then
            op=back-id
            k=$((${#IDS[@]} - KEEP)); ((k >= 0)) || k=0
            expect=${IDS[k]}
            "$ROLL" back "$ROOT" "$expect" >>"$OUT/roll.log" 2>&1 || rc=$?
        else
            op=back
            expect=${IDS[-2]}   # the newest good release before the one just pushed
            "$ROLL" back "$ROOT" >>"$OUT/roll.log" 2>&1 || rc=$?
        fi
        t1=$EPOCHREALTIME
        ((rc == 0)) || echo "$op #$i exited $rc at $t0" >>"$OUT/roll.log"
        cur=$(readlink "$ROOT/current") || cur=MISSING; cur=${cur##*/}
        cgen=$(gen_of "$cur")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$op" "$rc" "$t0" "$t1" "$cur" "$cgen" "$expect" >>"$OUT/switches.tsv"
done

# ---------------------------------------------------------------- wait, then report
wait "$WRK1" || echo "wrk (index) exited $?" >&2
wait "$WRK2" || echo "wrk (asset) exited $?" >&2
touch "$WS/stop"
wait "$CHECKER" || echo "checker exited $?" >&2
PIDS=()
"$ROLL" releases "$ROOT" --json >"$OUT/releases.json" 2>>"$OUT/roll.log" || echo '[]' >"$OUT/releases.json"
python3 "$WS/zd.py" final 127.0.0.1 "$PORT" "$ROOT" "$OUT"
kill -TERM "$NGINX_PID" 2>/dev/null || true
wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=
date +%s.%N >"$OUT/t_end"
export DURATION KEEP WRK_THREADS WRK_CONNS CHECKER_THREADS NGINX_WORKERS
STATUS=0
python3 "$WS/zd.py" report "$WS" "$T_LOAD" || STATUS=1
exit "$STATUS"

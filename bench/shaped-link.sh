# Sourced by the slow-link benchmarks (slow-link.sh, goodput.sh, resume.sh), after they set
# HERE (this checkout) and BENCH (the shared harness folder).
#
# shaped_link PREFIX RATE: makes the network namespace $ns (PREFIX-pid) whose loopback has
# MTU 1500 and a token bucket of RATE (LIMIT=16kb: a queue that drops instead of holding
# 200 ms, recorded in $queue); at exit the harness's sshd in it is stopped (the one under
# $BENCH_SSHD_STATE) and the namespace removed.
shaped_link() {
    [[ $(id -u) == 0 ]] || { echo "run as root (network namespaces, the harness's sshd)" >&2; exit 1; }
    command -v tc >/dev/null || { echo "tc is missing: apt-get install iproute2" >&2; exit 1; }
    ns=$1-$$
    ip netns add "$ns"
    trap 'ip netns exec "$ns" env BENCH_SSHD_STATE="${BENCH_SSHD_STATE:-}" "$BENCH/sshd.sh" stop >/dev/null 2>&1 || true
          ip netns del "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" ip link set lo mtu 1500
    ip netns exec "$ns" ip link set lo up
    if [[ -n ${LIMIT:-} ]]; then queue=(limit "$LIMIT"); else queue=(latency 200ms); fi
    ip netns exec "$ns" tc qdisc add dev lo root tbf rate "$2" burst 32kb "${queue[@]}"
}

# bench_agent: $ROLL (ROLL_BIN, default this checkout's release build) and a copy at
# $AGENT that the harness's user can run.
bench_agent() {
    ROLL=${ROLL_BIN:-$HERE/.build/release/roll}
    [[ -x $ROLL ]] || { echo "no roll binary at $ROLL: swift build -c release" >&2; exit 1; }
    AGENT=/usr/local/lib/roll-bench/roll
    install -D -m 755 "$ROLL" "$AGENT"
}

#!/usr/bin/env bash
# Installs the Debian packages that building and testing roll need, skipping what is
# already there (so a second run costs nothing and needs no network).
set -euo pipefail
PACKAGES=(
    zlib1g-dev      # gzip: bundles, and the upload of roll to a server
    libzstd-dev     # compressed file data on the wire
    libssh2-1-dev   # roll's own SSH client (pulls in libssl-dev)
    python3         # the demo app
    openssh-client  # the system-ssh transport
    openssh-server  # tests: a real sshd on loopback
    dropbear-bin    # tests: the SSH server of the platform's containers
    rsync           # tests: uploads by standard tools, released with roll release
    iproute2        # tests and bench: network namespaces shaped like an uplink (ip, tc)
    tar             # tests: tar streams for roll release --from -
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "roll: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "roll: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [[ -x $d/swift ]] && { echo "roll: swift is in $d but not on PATH: export PATH=$d:\$PATH" >&2; exit 1; }
    done
    echo "roll: no Swift toolchain found; install Swift 6.1 or newer (https://www.swift.org/install/linux/)" >&2
    exit 1
fi

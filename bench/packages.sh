# The wheels bench/real-packages.sh and bench/native-diffs.sh upgrade (sourced by both).
# "name old new": two consecutive releases that both have CPython 3.11 x86_64 Linux wheels.
PACKAGES=(
    "numpy 2.2.5 2.2.6"
    "scipy 1.15.2 1.15.3"
    "pillow 11.2.1 11.3.0"
    "cryptography 45.0.6 45.0.7"
    "grpcio 1.74.0 1.75.0"
)
# PACKAGES_LIST replaces the set: specs as above separated by commas, e.g. an application's
# own kind of upgrade, "django 4.2.16 5.0, jupyterlab 4.2.5 4.3.0" (a version of another
# length in the dist-info folder's name; webpack chunks renamed by their content hash).
if [[ -n ${PACKAGES_LIST:-} ]]; then IFS=',' read -r -a PACKAGES <<<"$PACKAGES_LIST"; fi
PY_VERSION=3.11
# pip tries these platform tags; several because projects moved from manylinux2014 to
# manylinux_2_28 / _2_34 at different times.
PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64)

# The wheel of NAME==VERSION in FOLDER/NAME-VERSION, downloaded the first time (through a
# .tmp folder, so a download cut short is not taken for one); prints its path.
wheel() {  # NAME VERSION FOLDER
    local d=$3/$1-$2 w p plat_args=()
    w=$(find "$d" -maxdepth 1 -name '*.whl' 2>/dev/null | head -1)
    if [[ -z $w ]]; then
        for p in "${PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
        echo "== pip download $1==$2" >&2
        rm -rf "$d.tmp" && mkdir -p "$d.tmp"
        # PIP_FIND_LINKS emptied: a local wheelhouse must not stand in for PyPI's wheel.
        PIP_FIND_LINKS= pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
            "${plat_args[@]}" "$1==$2" -d "$d.tmp" >&2
        rm -rf "$d" && mv "$d.tmp" "$d"
        w=$(find "$d" -maxdepth 1 -name '*.whl' | head -1)
    fi
    [[ -n $w ]] || { echo "no wheel for $1==$2" >&2; return 1; }
    echo "$w"
}

# Both releases of each package unpacked into WORK/unpacked/<name>-<version>, emptied
# first (wheels are kept in WORK/wheels).
unpack_wheels() {  # WORK
    local work=$1 spec name old new v w
    rm -rf "$work/unpacked" && mkdir -p "$work/unpacked"
    for spec in "${PACKAGES[@]}"; do
        read -r name old new <<<"$spec"
        for v in "$old" "$new"; do
            w=$(wheel "$name" "$v" "$work/wheels")
            python3 -m zipfile -e "$w" "$work/unpacked/$name-$v"
        done
    done
}

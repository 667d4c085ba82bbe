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

# Downloads (once: they are kept in WORK/wheels) and unpacks both releases of each package
# into WORK/unpacked/<name>-<version>, emptied first.
unpack_wheels() {  # WORK
    local work=$1 spec name old new v d p plat_args=()
    for p in "${PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
    mkdir -p "$work/wheels"
    rm -rf "$work/unpacked" && mkdir -p "$work/unpacked"
    for spec in "${PACKAGES[@]}"; do
        read -r name old new <<<"$spec"
        for v in "$old" "$new"; do
            d=$work/wheels/$name-$v
            if ! ls "$d"/*.whl >/dev/null 2>&1; then
                PIP_FIND_LINKS= pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
                    "${plat_args[@]}" -d "$d" "$name==$v" >&2
            fi
            python3 -m zipfile -e "$(ls "$d"/*.whl | head -1)" "$work/unpacked/$name-$v"
        done
    done
}

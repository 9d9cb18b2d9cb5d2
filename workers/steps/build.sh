#!/bin/sh
# The build step, inside the builder container (no network, read-only root).
# Mounts: /input (the sdist, read-only), /wheelhouse (pinned build requirements, read-only),
# /output (where the repaired wheel goes), /scratch and /tmp (size-limited tmpfs).
# Environment: EDELWEISS_SDIST, EDELWEISS_PROJECT, EDELWEISS_VERSION, EDELWEISS_PLATFORM,
# EDELWEISS_VERSION_MUST_MATCH (optional), and the recipe's env.
set -eu
export HOME=/scratch/home TMPDIR=/scratch/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Fixed timestamps in the wheel's zip entries, so the same inputs give the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
mkdir -p "$HOME" "$TMPDIR" /scratch/dist
echo "edelweiss: building $EDELWEISS_PROJECT $EDELWEISS_VERSION for $EDELWEISS_PLATFORM"

if [ -n "${EDELWEISS_VERSION_MUST_MATCH:-}" ]; then
    library=$(sh -c "$EDELWEISS_VERSION_MUST_MATCH")
    if [ "$library" != "$EDELWEISS_VERSION" ]; then
        echo "edelweiss: $EDELWEISS_PROJECT $EDELWEISS_VERSION must be built against the same library version, but this builder has $library; configure a builder image for $EDELWEISS_VERSION" >&2
        exit 3
    fi
fi

if ls /wheelhouse/*.whl >/dev/null 2>&1; then
    python3 -m pip install --no-index --find-links /wheelhouse --prefix /scratch/build-env /wheelhouse/*.whl
    site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib", vars={"base": "/scratch/build-env", "platbase": "/scratch/build-env"}))')
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="/scratch/build-env/bin:$PATH"
fi

python3 -m pip wheel --no-deps --no-build-isolation --no-index --find-links /wheelhouse \
    --wheel-dir /scratch/dist "$EDELWEISS_SDIST"

for wheel in /scratch/dist/*.whl; do
    case "$wheel" in
        *-none-any.whl)
            echo "edelweiss: pure-Python wheel, nothing to repair"
            cp "$wheel" /output/ ;;
        *)
            python3 -m auditwheel show "$wheel" || true
            python3 -m auditwheel repair --plat "$EDELWEISS_PLATFORM" --wheel-dir /output "$wheel" ;;
    esac
done
ls -l /output

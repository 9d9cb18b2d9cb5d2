#!/bin/sh
# The build step, inside the builder container (no network, read-only root).
# Mounts: /input (the sdist and, for an sdist with a Cargo.lock, cargo-vendor/: its crates and
# a cargo configuration; read-only), /wheelhouse (build requirements, read-only), /output (where
# the repaired wheel goes), /scratch and /tmp (size-limited tmpfs).
# Environment: EDELWEISS_SDIST, EDELWEISS_PROJECT, EDELWEISS_VERSION, EDELWEISS_PLATFORM,
# EDELWEISS_VERSION_MUST_MATCH, EDELWEISS_BUNDLE_DATA and EDELWEISS_ISOLATED (optional: 1 builds
# with pip's build isolation from the wheelhouse alone), and the recipe's env.
# A builder may carry /etc/edelweiss/build.env (its compilers, e.g. the test root's C++ layer).
set -eu
export HOME=/scratch/home TMPDIR=/scratch/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Fixed timestamps in the wheel's zip entries, so the same inputs give the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
mkdir -p "$HOME" "$TMPDIR" /scratch/dist
echo "edelweiss: building $EDELWEISS_PROJECT $EDELWEISS_VERSION for $EDELWEISS_PLATFORM"

if [ -f /etc/edelweiss/build.env ]; then
    . /etc/edelweiss/build.env
fi
if [ -f /input/cargo-vendor/config.toml ]; then
    # The crates of the sdist's Cargo.lock, fetched and checked by edelweiss: cargo takes them
    # instead of crates.io and stays offline.
    export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" CARGO_NET_OFFLINE=true
    mkdir -p "$CARGO_HOME"
    cp /input/cargo-vendor/config.toml "$CARGO_HOME/config.toml"
fi

if [ -n "${EDELWEISS_VERSION_MUST_MATCH:-}" ]; then
    library=$(sh -c "$EDELWEISS_VERSION_MUST_MATCH")
    # Equal (GDAL 3.6.2) or extending it (pygdal 3.6.2.11).
    case "$EDELWEISS_VERSION" in
        "$library" | "$library".*) matches=yes ;;
        *) matches=no ;;
    esac
    if [ -z "$library" ] || [ "$matches" = no ]; then
        echo "edelweiss: $EDELWEISS_PROJECT $EDELWEISS_VERSION must be built against the same library version, but this builder has $library; configure a builder image for $EDELWEISS_VERSION" >&2
        exit 3
    fi
fi

if [ "${EDELWEISS_ISOLATED:-}" = 1 ]; then
    # The wheelhouse holds the resolved build requirements and what the backend adds: pip
    # builds in its isolated environment made from them alone.
    python3 -m pip wheel --no-deps --no-index --find-links /wheelhouse \
        --wheel-dir /scratch/dist "$EDELWEISS_SDIST"
else
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then
        python3 -m pip install --no-index --find-links /wheelhouse --prefix /scratch/build-env /wheelhouse/*.whl
        site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib", vars={"base": "/scratch/build-env", "platbase": "/scratch/build-env"}))')
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="/scratch/build-env/bin:$PATH"
    fi
    python3 -m pip wheel --no-deps --no-build-isolation --no-index --find-links /wheelhouse \
        --wheel-dir /scratch/dist "$EDELWEISS_SDIST"
fi

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

if [ -n "${EDELWEISS_BUNDLE_DATA:-}" ]; then
    for wheel in /output/*.whl; do
        python3 /edelweiss/bundle_data.py "$wheel"
    done
fi
ls -l /output

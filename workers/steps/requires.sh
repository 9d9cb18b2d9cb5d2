#!/bin/sh
# The first build step where build requirements are resolved, inside the builder (no network,
# read-only root): with the sdist's declared requirements installed from the wheelhouse, ask
# its PEP 517 backend what it adds for a wheel (`get_requires_for_build_wheel`). The host
# resolves and fetches those into the wheelhouse before the build step.
# Mounts: /input (the sdist, and cargo-vendor/ for an sdist with a Cargo.lock), /wheelhouse
# (read-only), /output (gets requires.json).
# Environment: EDELWEISS_SDIST, and the recipe's env.
set -eu
export HOME=/scratch/home TMPDIR=/scratch/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
mkdir -p "$HOME" "$TMPDIR" /scratch/backend

if [ -f /etc/edelweiss/build.env ]; then
    . /etc/edelweiss/build.env
fi
if [ -f /input/cargo-vendor/config.toml ]; then
    export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" CARGO_NET_OFFLINE=true
    mkdir -p "$CARGO_HOME"
    cp /input/cargo-vendor/config.toml "$CARGO_HOME/config.toml"
fi

if ls /wheelhouse/*.whl >/dev/null 2>&1; then
    python3 -m pip install --quiet --no-index --no-deps --target /scratch/backend /wheelhouse/*.whl
fi
python3 -S /edelweiss/build_requires.py "$EDELWEISS_SDIST" /scratch/backend /output/requires.json

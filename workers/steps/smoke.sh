#!/bin/sh
# The smoke test, in a fresh container of the plain runtime image (no compiler, no -dev
# packages, no network): install the repaired wheel and run the recipe's import check.
# Mounts: /output (the wheel, read-only), /wheelhouse (its runtime dependencies, read-only,
# with EDELWEISS_RUNTIME_WHEELHOUSE=1), /scratch and /tmp (tmpfs).
# Environment: EDELWEISS_WHEEL, EDELWEISS_IMPORT_CHECK, EDELWEISS_RUNTIME_WHEELHOUSE.
set -eu
export HOME=/scratch/home TMPDIR=/scratch/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
mkdir -p "$HOME" "$TMPDIR"
if [ "${EDELWEISS_RUNTIME_WHEELHOUSE:-}" = 1 ]; then
    # The wheel's runtime dependencies, resolved for the target on the host.
    python3 -m pip install --no-index --find-links /wheelhouse --target /scratch/site "$EDELWEISS_WHEEL"
else
    python3 -m pip install --no-index --no-deps --target /scratch/site "$EDELWEISS_WHEEL"
fi
cd /scratch
echo "edelweiss: import check: $EDELWEISS_IMPORT_CHECK"
PYTHONPATH=/scratch/site python3 -c "$EDELWEISS_IMPORT_CHECK"
echo "edelweiss: smoke test passed"

#!/bin/sh
# The smoke test, in a fresh container of the plain runtime image (no compiler, no -dev
# packages, no network): install the repaired wheel and run the recipe's import check.
# Mounts: /output (the wheel, read-only), /scratch and /tmp (tmpfs).
# Environment: EDELWEISS_WHEEL, EDELWEISS_IMPORT_CHECK.
set -eu
export HOME=/scratch/home TMPDIR=/scratch/tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
mkdir -p "$HOME" "$TMPDIR"
python3 -m pip install --no-index --no-deps --target /scratch/site "$EDELWEISS_WHEEL"
cd /scratch
echo "edelweiss: import check: $EDELWEISS_IMPORT_CHECK"
PYTHONPATH=/scratch/site python3 -c "$EDELWEISS_IMPORT_CHECK"
echo "edelweiss: smoke test passed"

#!/usr/bin/env bash
# C++ benchmark: the test root's C++ layer and the C++ wheels built on it.
#
# Times `workers/musl-root/build --cxx` as it stands (from cache when the layer exists; from
# nothing when CXX_FROM_NOTHING=1 points EDELWEISS_CACHE_DIR at a fresh directory that reuses
# only the downloads), then ROUNDS cold `edelweiss build` runs (runc, a fresh data directory each
# round: build step, repair, symbol check, smoke test) of GDAL's bindings (the layer's libgdal
# version), ujson and msgpack, with their pinned build requirements added to the data directory
# first (`edelweiss add`). Prints a Markdown section on stdout; progress on stderr.
#
# Environment (defaults in brackets):
#   EDELWEISS_BIN [target/release/edelweiss, built if missing]  ROUNDS [3]
#   BUILDER_ROOT, RUNTIME_ROOT [what workers/musl-root/build prints; the runtime with --runtime]
#   CXX_ROOT [what workers/musl-root/build --cxx prints, timed]
#   KEEP=1 keep the temporary directory
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
ROUNDS=${ROUNDS:-3}
TARGET=cp313-musllinux_1_2_x86_64
PIP_TARGET=(--only-binary :all: --platform musllinux_1_2_x86_64 --python-version 3.13
  --implementation cp --abi cp313)

log() { printf '[cxx.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

make_work_dir cxx

seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

BIN=$(edelweiss_binary)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -z ${CXX_ROOT:-} ]]; then
  started=$(now_ms)
  CXX_ROOT=$("$REPO_DIR/workers/musl-root/build" --cxx | tail -n 1)
  LAYER_MS=$(($(now_ms) - started))
  log "build --cxx: $LAYER_MS ms"
fi
RUNTIME_ROOT=${RUNTIME_ROOT:-$("$REPO_DIR/workers/musl-root/build" --runtime | tail -n 1)}
GDAL_VERSION=$(sed -n 's/^CONFIG_VERSION="\(.*\)"/\1/p' "$CXX_ROOT/usr/local/bin/gdal-config")
[[ -n $GDAL_VERSION ]] || die "no gdal-config in $CXX_ROOT"

mkdir -p "$WORK/inputs"
python3 -m pip download --quiet --no-deps "${PIP_TARGET[@]}" --dest "$WORK/inputs" \
  numpy==2.2.6 setuptools-scm==8.1.0 >&2
python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$WORK/inputs" \
  ujson==5.9.0 msgpack==1.0.8 >&2
# GDAL's sdist needs gdal-config even to prepare its metadata: fetch the file itself.
curl -fsSL -o "$WORK/inputs/GDAL-$GDAL_VERSION.tar.gz" \
  "$(curl -fsSL -H 'Accept: application/vnd.pypi.simple.v1+json' https://pypi.org/simple/gdal/ \
    | python3 -c "import json, sys; print(next(f['url'] for f in json.load(sys.stdin)['files'] if f['filename'] == 'GDAL-$GDAL_VERSION.tar.gz'))")"

declare -A SAMPLES SIZE
for sdist in "GDAL-$GDAL_VERSION.tar.gz" ujson-5.9.0.tar.gz msgpack-1.0.8.tar.gz; do
  samples=()
  for round in $(seq "$ROUNDS"); do
    data="$WORK/data-${sdist%%-*}-$round"
    EDELWEISS_NO_UPSTREAM=true EDELWEISS_LOG=warn "$BIN" add --data "$data" \
      "$WORK"/inputs/*.whl >/dev/null
    started=$(now_ms)
    EDELWEISS_NO_UPSTREAM=true EDELWEISS_LOG=warn "$BIN" build "$WORK/inputs/$sdist" \
      --target "$TARGET" --executor runc --rootfs "$CXX_ROOT" --runtime "$RUNTIME_ROOT" \
      --data "$data" --out "$WORK/out" >"$WORK/$sdist-$round.log" 2>&1 \
      || die "$sdist failed: $(tail -n 30 "$WORK/$sdist-$round.log")"
    samples+=($(($(now_ms) - started)))
    log "$sdist round $round: ${samples[-1]} ms"
  done
  SAMPLES[$sdist]="${samples[*]}"
  wheel=$(sed -n 's/^wheel: \(.*\.whl\) (sha256 .*$/\1/p' "$WORK/$sdist-1.log")
  SIZE[$sdist]="$(basename "$wheel") ($(awk -v b="$(stat -c %s "$wheel")" 'BEGIN { printf "%.1f MB", b / 1e6 }'))"
done

echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- Machine: \`nproc\` $(nproc), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load average $LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "- Command: \`ROUNDS=$ROUNDS bench/cxx.sh\`; layer root \`$CXX_ROOT\`"
[[ -n ${LAYER_MS:-} ]] && echo "- \`workers/musl-root/build --cxx\`: $(seconds "$LAYER_MS")"
echo
# shellcheck disable=SC2016 # backquotes are Markdown
printf '| sdist | cold `edelweiss build`, median of %s (all) | wheel |\n|---|---:|---|\n' "$ROUNDS"
for sdist in "GDAL-$GDAL_VERSION.tar.gz" ujson-5.9.0.tar.gz msgpack-1.0.8.tar.gz; do
  all=$(for ms in ${SAMPLES[$sdist]}; do seconds "$ms"; echo -n ", "; done | sed 's/, $//')
  echo "| $sdist | $(seconds "$(median <<<"${SAMPLES[$sdist]}")") ($all) | ${SIZE[$sdist]} |"
done

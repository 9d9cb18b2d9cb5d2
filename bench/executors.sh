#!/usr/bin/env bash
# Executor benchmark: the same `edelweiss build` through runc, docker and podman over the same
# musl test root (as a directory for runc, imported as an image for the engines).
#
# For each package (default psycopg2 2.9.10 and MarkupSafe 2.1.5) and executor: ROUNDS cold
# builds, each into a fresh data directory (build step, auditwheel repair, smoke test in a fresh
# container), then HIT_ROUNDS cache hits (the same call on the first round's data directory: no
# container starts), each timed as a whole process. Prints a Markdown section on stdout.
#
# Usage: bench/executors.sh > section.md       (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN [target/release/edelweiss, built if missing]
#   EXECUTORS ["runc docker podman"; an engine that does not answer `info` is left out]
#   PACKAGES ["psycopg2==2.9.10 MarkupSafe==2.1.5"]  ROUNDS [3]  HIT_ROUNDS [5]
#   BUILDER_ROOT, RUNTIME_ROOT [what workers/musl-root/build prints, without and with --runtime]
#   KEEP=1 keep the temporary directory
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
EXECUTORS=${EXECUTORS:-runc docker podman}
PACKAGES=${PACKAGES:-psycopg2==2.9.10 MarkupSafe==2.1.5}
ROUNDS=${ROUNDS:-3}
HIT_ROUNDS=${HIT_ROUNDS:-5}
TARGET=cp313-musllinux_1_2_x86_64

log() { printf '[executors.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

make_work_dir executors


range() { tr ',' '\n' | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }'; }

seconds() { awk -v ms="$1" 'BEGIN { if (ms >= 1000) printf "%.2f s", ms / 1000; else printf "%d ms", ms }'; }

BIN=$(edelweiss_binary)
BUILDER_ROOT=${BUILDER_ROOT:-$("$REPO_DIR/workers/musl-root/build" | tail -n 1)}
RUNTIME_ROOT=${RUNTIME_ROOT:-$("$REPO_DIR/workers/musl-root/build" --runtime | tail -n 1)}

# The arguments that name builder and runtime for an executor.
placement() {
  case $1 in
    runc) echo "--rootfs $BUILDER_ROOT --runtime $RUNTIME_ROOT" ;;
    *)
      local builder runtime
      builder=$("$REPO_DIR/workers/musl-root/import-image" "$BUILDER_ROOT" --name edelweiss-musl-root --engine "$1" | tail -n 1)
      runtime=$("$REPO_DIR/workers/musl-root/import-image" "$RUNTIME_ROOT" --name edelweiss-musl-runtime --engine "$1" | tail -n 1)
      echo "--image $builder --runtime $runtime" ;;
  esac
}

declare -A PLACEMENT

build_once() {
  local executor=$1 sdist=$2 data=$3 out=$4 output=$5 started status=0 where
  read -ra where <<<"${PLACEMENT[$executor]}"
  started=$(now_ms)
  EDELWEISS_NO_UPSTREAM=true EDELWEISS_LOG=warn "$BIN" build "$sdist" --target "$TARGET" \
    --executor "$executor" "${where[@]}" --data "$data" --out "$out" >"$output" 2>&1 || status=$?
  ((status == 0)) || die "$executor build failed: $(tail -n 20 "$output")"
  echo $(($(now_ms) - started))
}

mkdir -p "$WORK/sdists" "$WORK/logs"
read -ra PACKAGE_LIST <<<"$PACKAGES"
python3 -m pip download --quiet --no-binary :all: --no-deps --dest "$WORK/sdists" "${PACKAGE_LIST[@]}" >&2

executors=()
for executor in $EXECUTORS; do
  if [[ $executor == runc ]] || "$executor" info >/dev/null 2>&1; then
    executors+=("$executor")
    PLACEMENT[$executor]=$(placement "$executor") # imports the images before anything is timed
  else
    log "$executor does not answer; left out"
  fi
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A COLD HIT
for requirement in "${PACKAGE_LIST[@]}"; do
  name=${requirement%%==*}
  sdist=$(find "$WORK/sdists" -iname "${name}-*" | head -n 1)
  for executor in "${executors[@]}"; do
    cold=() hit=()
    for round in $(seq "$ROUNDS"); do
      cold+=("$(build_once "$executor" "$sdist" "$WORK/$executor-$name-$round" "$WORK/out" "$WORK/logs/$executor-$name-cold-$round.txt")")
      grep -q '(Queued,' "$WORK/logs/$executor-$name-cold-$round.txt" || die "cold build was not queued"
      log "$name $executor cold round $round: ${cold[-1]} ms"
    done
    for round in $(seq "$HIT_ROUNDS"); do
      hit+=("$(build_once "$executor" "$sdist" "$WORK/$executor-$name-1" "$WORK/out" "$WORK/logs/$executor-$name-hit-$round.txt")")
      grep -q '(Cached,' "$WORK/logs/$executor-$name-hit-$round.txt" || die "not a cache hit"
    done
    log "$name $executor cache hits: ${hit[*]} ms"
    COLD[$name,$executor]=$(IFS=,; echo "${cold[*]}")
    HIT[$name,$executor]=$(IFS=,; echo "${hit[*]}")
  done
done

cell() {
  local samples=$1 lo hi
  IFS='–' read -r lo hi <<<"$(range <<<"$samples")"
  echo "$(seconds "$(median <<<"$samples")") ($(seconds "$lo")–$(seconds "$hi"))"
}

echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- Machine: \`nproc\` $(nproc), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load average $LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "- Command: \`ROUNDS=$ROUNDS HIT_ROUNDS=$HIT_ROUNDS bench/executors.sh\`; $("$BIN" --version 2>/dev/null || echo edelweiss), $(docker version --format 'docker {{.Server.Version}}' 2>/dev/null || true), $(podman --version 2>/dev/null || true)"
echo "- Figures: median (min–max) of $ROUNDS cold builds and $HIT_ROUNDS cache hits, each a whole \`edelweiss build\` process"
echo
printf '| package | executor | cold build | cache hit |\n|---|---|---:|---:|\n'
for requirement in "${PACKAGE_LIST[@]}"; do
  name=${requirement%%==*}
  for executor in "${executors[@]}"; do
    echo "| $requirement | $executor | $(cell "${COLD[$name,$executor]}") | $(cell "${HIT[$name,$executor]}") |"
  done
done

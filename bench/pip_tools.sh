#!/usr/bin/env bash
# pip-tools' `pip-compile --generate-hashes` through edelweiss mirroring the real PyPI: how
# many files edelweiss serves (and how many bytes, and how many it pulls from the upstream)
# for one requirement set, for each server binary given, each on a fresh data directory.
# Then the same compile again against the same server (warm: wheels stored, their metadata
# read). The compiled files must agree on every hash across binaries.
#
# Usage: bench/pip_tools.sh > table.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BINS  space-separated `label=path` pairs [after=<EDELWEISS_BIN or the release build>]
#                   e.g. "before=/tmp/edelweiss-main after=target/release/edelweiss"
#   REQUIREMENTS    requirement lines, one per line ["requests"]
#   UPSTREAM        [https://pypi.org/simple/]
#   PIP_COMPILE     [~/.cache/edelweiss/tools/venv/bin/pip-compile, from .ci/setup]
#   KEEP=1          keep the temporary directory (data dirs, logs, compiled files)
# Needs: the network (the upstream), curl.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
REQUIREMENTS=${REQUIREMENTS:-requests}
UPSTREAM=${UPSTREAM:-https://pypi.org/simple/}
PIP_COMPILE=${PIP_COMPILE:-$HOME/.cache/edelweiss/tools/venv/bin/pip-compile}

log() { printf '[pip_tools.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

[[ -x $PIP_COMPILE ]] || die "$PIP_COMPILE not found: run .ci/setup (pip-tools is in .ci/client-requirements.txt)"
command -v curl >/dev/null || die "curl not found"
BINS=${EDELWEISS_BINS:-after=$(edelweiss_binary)}

make_work_dir pip-tools
SERVER_PID=""
trap 'stop "$SERVER_PID"; if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi' EXIT
printf '%s\n' "$REQUIREMENTS" >"$WORK/requirements.in"

# Sum of the samples of a metric whose line starts with $2, from the server at $1.
metric() {
  curl -sf "$1/metrics" | awk -v prefix="$2" 'index($0, prefix) == 1 { sum += $NF } END { print sum + 0 }'
}

start_server() { # binary data_dir: sets SERVER_PID and SERVER_URL
  "$1" serve --listen 127.0.0.1:0 --data "$2" --upstream "$UPSTREAM" \
    >"$2.out" 2>"$2.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    SERVER_URL=$(sed -n 's/^edelweiss listening on //p' "$2.out")
    [[ -n $SERVER_URL ]] && return 0
    sleep 0.1
  done
  die "the server did not start: $(cat "$2.log")"
}

compile() { # label: one compile against SERVER_URL, one table row
  local label=$1 out="$WORK/$1.txt" files0 bytes0 upstream0 metadata0 json0 start elapsed
  files0=$(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="file",')
  bytes0=$(metric "$SERVER_URL" edelweiss_file_bytes_served_total)
  upstream0=$(metric "$SERVER_URL" edelweiss_upstream_bytes_fetched_total)
  metadata0=$(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="file_metadata",')
  json0=$(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="pypi_project",')
  start=$(now_ms)
  env -i HOME="$WORK" PATH="/usr/bin:/bin" PIP_CONFIG_FILE=/dev/null \
    "$PIP_COMPILE" --generate-hashes --no-header --no-annotate --no-emit-index-url --quiet \
    --index-url "$SERVER_URL/simple/" --cache-dir "$WORK/cache-$label" \
    -o "$out" "$WORK/requirements.in" >&2
  elapsed=$(($(now_ms) - start))
  local files bytes upstream metadata json pins hashes
  files=$(($(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="file",') - files0))
  bytes=$(($(metric "$SERVER_URL" edelweiss_file_bytes_served_total) - bytes0))
  upstream=$(($(metric "$SERVER_URL" edelweiss_upstream_bytes_fetched_total) - upstream0))
  metadata=$(($(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="file_metadata",') - metadata0))
  json=$(($(metric "$SERVER_URL" 'edelweiss_http_requests_total{route="pypi_project",') - json0))
  pins=$(grep -c '==' "$out")
  hashes=$(grep -c -- '--hash=sha256:' "$out")
  awk -v row="$label" -v pins="$pins" -v hashes="$hashes" -v bytes="$bytes" \
    -v upstream="$upstream" -v files="$files" -v metadata="$metadata" -v json="$json" \
    -v ms="$elapsed" 'BEGIN { printf "| %s | %d | %d | %.1f | %.1f | %d | %d | %d | %.1f |\n",
      row, pins, hashes, bytes / 1e6, upstream / 1e6, files, metadata, json, ms / 1000 }'
}

log "pip-compile $("$PIP_COMPILE" --version | awk '{print $NF}'), requirements: $(tr '\n' ' ' <"$WORK/requirements.in")"
echo "| run | pins | hashes | MB served (files + metadata) | MB from upstream | file downloads | metadata files | JSON API answers | seconds |"
echo "|---|---|---|---|---|---|---|---|---|"
first=""
for pair in $BINS; do
  label=${pair%%=*} binary=${pair#*=}
  [[ -x $binary ]] || die "$binary is not executable"
  log "$label: $binary, fresh data directory"
  start_server "$binary" "$WORK/data-$label"
  compile "$label, cold"
  compile "$label, warm"
  stop "$SERVER_PID"
  SERVER_PID=""
  for run in cold warm; do
    file="$WORK/$label, $run.txt"
    first=${first:-$file}
    diff -q <(sort "$first") <(sort "$file") >/dev/null \
      || die "$label, $run pinned other hashes than $(basename "$first" .txt):
$(diff <(sort "$first") <(sort "$file"))"
  done
done
log "every run pinned the same versions with the same hashes"

#!/usr/bin/env bash
# Build-farm benchmark: what a wheel built by edelweiss saves a musl (Alpine-like) image.
#
# For each package (default: psycopg2 2.9.10, which links libpq, and MarkupSafe 2.1.5, a small
# C extension; neither has a cp313 musllinux wheel on PyPI):
#   - `pip install` into the musl test root from the sdist (compiling, --no-build-isolation)
#     and from the wheel edelweiss built, offline, in a bubblewrap sandbox over the read-only
#     root: median wall time and the ratio sdist/wheel;
#   - `edelweiss build SDIST` with the runc executor into a fresh data directory (cold: build
#     step, auditwheel repair, smoke test in a fresh container) and the same call again (cache
#     hit: no container);
#   - against a running `edelweiss serve`: the sdist uploaded with twine, one build requested
#     through POST /api/v1/builds and polled until it succeeds, then the latency of repeated
#     identical POSTs (each answers `"requested": "cached"`; one new connection per request).
# Rounds of the two pip modes are interleaved so a drift in the host's load hits both alike;
# `pip --version` in the same sandbox gives pip's start-up, the floor of any install.
#
# A root without /etc/edelweiss-root-id is identified by walking it (paths, sizes, mtimes), and
# the runc executor adds its mount points to the root on first use, which changes that
# identity and so the build key: on such a fresh root one untimed warm-up build runs first,
# or the "cache hit" below would be a second, different build.
#
# Usage: bench/farm.sh > section.md       (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN   binary [target/release/edelweiss, built if missing]
#   MUSL_ROOT       the musl test root [last line of workers/musl-root/build]
#   SDISTS          a directory already holding the sdists [pip download into the temp dir]
#   PACKAGES ["psycopg2==2.9.10 MarkupSafe==2.1.5"]  IMPORTS ["psycopg2._psycopg markupsafe._speedups"]
#   ROUNDS [5] (pip installs, cold builds)  HIT_ROUNDS [10] (cached CLI builds)
#   HTTP_ROUNDS [50] (cached POSTs)  BUILD_TIMEOUT [1800] (seconds per server build)
#   TWINE [~/.cache/edelweiss/tools/venv/bin/twine]
#   KEEP=1          keep the temporary directory (data, wheels, logs)
# Needs: bwrap, runc, curl, python3 with pip (host), twine; runs as root (runc).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
PACKAGES=${PACKAGES:-psycopg2==2.9.10 MarkupSafe==2.1.5}
IMPORTS=${IMPORTS:-psycopg2._psycopg markupsafe._speedups}
ROUNDS=${ROUNDS:-5}
HIT_ROUNDS=${HIT_ROUNDS:-10}
HTTP_ROUNDS=${HTTP_ROUNDS:-50}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
TWINE=${TWINE:-$HOME/.cache/edelweiss/tools/venv/bin/twine}
TARGET=cp313-musllinux_1_2_x86_64
TOKEN=bench-token-0123456789
ROOT_PYTHON=/usr/local/bin/python3.13
COMMAND_LINE="bench/farm.sh"
for variable in MUSL_ROOT SDISTS PACKAGES IMPORTS ROUNDS HIT_ROUNDS HTTP_ROUNDS; do
  [[ -n ${!variable:-} ]] && COMMAND_LINE="$variable=\"${!variable}\" $COMMAND_LINE"
done

log() { printf '[farm.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in bwrap runc curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $TWINE ]] || die "twine not found at $TWINE (set TWINE)"
read -ra PACKAGE_LIST <<<"$PACKAGES"
read -ra IMPORT_LIST <<<"$IMPORTS"
((${#PACKAGE_LIST[@]} == ${#IMPORT_LIST[@]})) || die "PACKAGES and IMPORTS differ in length"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edelweiss-farm-bench.XXXXXX")
SERVER_PID=""
WARM_UP=""
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

cleanup() {
  stop "$SERVER_PID"
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


musl_root() {
  if [[ -n ${MUSL_ROOT:-} ]]; then
    echo "$MUSL_ROOT"
    return
  fi
  log "preparing the musl test root (workers/musl-root/build; ~10 min the first time)"
  local root
  root=$("$REPO_DIR/workers/musl-root/build" | tail -n 1) \
    || die "workers/musl-root/build failed; set MUSL_ROOT to an existing root"
  echo "$root"
}


# Runs a command with its output into a log file; prints its wall time in ms, or dies with
# the log's tail.
timed() {
  local output=$1 started status=0
  shift
  started=$(now_ms)
  "$@" >"$output" 2>&1 || status=$?
  ((status == 0)) || die "failed ($status): $* -- $(tail -n 20 "$output")"
  echo $(($(now_ms) - started))
}

# Runs a command in the musl root: read-only, offline, with $WORK at /tmp/bench.
in_root() {
  bwrap --ro-bind "$ROOT" / --proc /proc --dev /dev --tmpfs /tmp --bind "$WORK" /tmp/bench \
    --unshare-net --unshare-pid --die-with-parent --clearenv \
    --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv HOME /tmp --chdir /tmp "$@"
}

# Adds nothing to the root when it already has every mount point the runc executor needs.
warm_up_fresh_root() {
  local mount_point missing=()
  [[ -f $ROOT/etc/edelweiss-root-id ]] && return
  for mount_point in edelweiss input output wheelhouse scratch; do
    [[ -d $ROOT/$mount_point ]] || missing+=("/$mount_point")
  done
  ((${#missing[@]} == 0)) && return
  log "warning: the root lacks ${missing[*]}; the first build adds them and changes the root's"
  log "walked identity (so the build key): running one untimed warm-up build"
  WARM_UP="the root lacked ${missing[*]}: one untimed warm-up build ran first"
  timed "$WORK/logs/warm-up.txt" edelweiss_build "$(sdist_of "${PACKAGE_LIST[0]%%==*}")" \
    "$WORK/warm-up-data" "$WORK/warm-up-out" >/dev/null
}

# pip install of one requirement into a fresh directory; $1 is sdist or wheel.
pip_install() {
  local mode=$1 requirement=$2 site=$3 source_options
  if [[ $mode == sdist ]]; then
    source_options=(--find-links /tmp/bench/sdists --no-binary :all: --no-build-isolation)
  else
    source_options=(--find-links /tmp/bench/wheels --only-binary :all:)
  fi
  in_root "$ROOT_PYTHON" -m pip install --no-index --no-cache-dir --no-deps \
    --disable-pip-version-check --no-input "${source_options[@]}" \
    --target "/tmp/bench/$site" "$requirement"
}

check_import() {
  local site=$1 module=$2
  in_root "$ROOT_PYTHON" -c "import sys; sys.path.insert(0, '/tmp/bench/$site'); import $module" \
    || die "import $module failed from $site"
}

# One row of the timing table: name <tab> comma-separated samples in ms.
record() { printf '%s\t%s\n' "$1" "$2" >>"$WORK/timings.tsv"; }

edelweiss_build() {
  local sdist=$1 data=$2 out=$3
  EDELWEISS_NO_UPSTREAM=true EDELWEISS_LOG=warn "$BINARY" build "$sdist" --target "$TARGET" \
    --executor runc --rootfs "$ROOT" --data "$data" --out "$out"
}

sdist_of() {
  local name=$1 file
  for file in "$WORK"/sdists/*.tar.gz; do
    [[ $(basename "$file" | tr 'A-Z_' 'a-z-') == "$(echo "$name" | tr 'A-Z_' 'a-z-')"-[0-9]* ]] \
      && { echo "$file"; return; }
  done
  die "no sdist for $name in $WORK/sdists"
}

bench_cli_builds() {
  local requirement=$1 name=${1%%==*} sdist samples=() round output wheel elapsed
  sdist=$(sdist_of "$name")
  for round in $(seq "$ROUNDS"); do
    output="$WORK/logs/$name-cold-$round.txt"
    elapsed=$(timed "$output" edelweiss_build "$sdist" "$WORK/cli-$name-$round" "$WORK/out-$name-$round")
    samples+=("$elapsed")
    grep -q '(Queued,' "$output" || die "cold build of $name was not queued: $(cat "$output")"
    log "$name cold edelweiss build, round $round: ${samples[-1]} ms"
  done
  record "$name cold_build" "$(IFS=,; echo "${samples[*]}")"
  wheel=$(sed -n 's/^wheel: \(.*\.whl\) (sha256 .*$/\1/p' "$WORK/logs/$name-cold-1.txt")
  [[ -f $wheel ]] || die "no wheel in the output of the build of $name"
  cp "$wheel" "$WORK/wheels/"
  printf '%s\t%s\t%s\t%s\n' "$name" "$(basename "$wheel")" "$(stat -c %s "$wheel")" \
    "$(sed -n 's/^wheel: .* (sha256 \(.*\))$/\1/p' "$WORK/logs/$name"-cold-*.txt | sort -u | wc -l)" \
    >>"$WORK/wheels.tsv"
  samples=()
  for round in $(seq "$HIT_ROUNDS"); do
    output="$WORK/logs/$name-hit-$round.txt"
    elapsed=$(timed "$output" edelweiss_build "$sdist" "$WORK/cli-$name-1" "$WORK/out-$name-1")
    samples+=("$elapsed")
    grep -q '(Cached,' "$output" \
      || die "second build of $name was not a cache hit (did the root's identity change?): $(cat "$output")"
  done
  log "$name cache-hit edelweiss build: ${samples[*]} ms"
  record "$name cached_build" "$(IFS=,; echo "${samples[*]}")"
}

bench_pip_start_up() {
  local samples=() round elapsed
  for round in $(seq "$ROUNDS"); do
    elapsed=$(timed "$WORK/logs/pip-version-$round.txt" in_root "$ROOT_PYTHON" -m pip --version)
    samples+=("$elapsed")
  done
  log "pip start-up: ${samples[*]} ms"
  record "pip_start_up" "$(IFS=,; echo "${samples[*]}")"
}

bench_pip() {
  local requirement=$1 module=$2 name=${1%%==*} sdist_samples=() wheel_samples=() round elapsed
  for round in $(seq "$ROUNDS"); do
    elapsed=$(timed "$WORK/logs/$name-pip-sdist-$round.txt" \
      pip_install sdist "$requirement" "site-$name-sdist-$round")
    sdist_samples+=("$elapsed")
    elapsed=$(timed "$WORK/logs/$name-pip-wheel-$round.txt" \
      pip_install wheel "$requirement" "site-$name-wheel-$round")
    wheel_samples+=("$elapsed")
    log "$name pip install, round $round: sdist ${sdist_samples[-1]} ms, wheel ${wheel_samples[-1]} ms"
  done
  check_import "site-$name-sdist-1" "$module"
  check_import "site-$name-wheel-1" "$module"
  record "$name pip_sdist" "$(IFS=,; echo "${sdist_samples[*]}")"
  record "$name pip_wheel" "$(IFS=,; echo "${wheel_samples[*]}")"
}

start_server() {
  cat >"$WORK/server.toml" <<EOF
[auth]
upload_tokens = ["$TOKEN"]

[build]
executor = "runc"

[[build.targets]]
name = "$TARGET"
builder = "$ROOT"
runtime = "$ROOT"
EOF
  EDELWEISS_LOG=warn "$BINARY" serve --config "$WORK/server.toml" --data "$WORK/server-data" \
    --listen 127.0.0.1:0 --no-upstream >"$WORK/server.out" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    SERVER_URL=$(sed -n 's/^edelweiss listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$WORK/server.out")
    [[ -n $SERVER_URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "edelweiss serve exited: $(cat "$WORK/server.log")"
    sleep 0.1
  done
  [[ -n $SERVER_URL ]] || die "edelweiss serve did not report its address"
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }

request_build() {
  local body=$1 output=$2
  curl -sS -o "$output" -w '%{http_code} %{time_total}' -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "$body" "$SERVER_URL/api/v1/builds"
}

bench_http() {
  local requirement=$1 name=${1%%==*} version=${1#*==} body id state deadline samples=() round
  local answer code seconds
  timed "$WORK/logs/$name-twine.txt" "$TWINE" upload --non-interactive --disable-progress-bar \
    --repository-url "$SERVER_URL/legacy/" -u __token__ -p "$TOKEN" "$(sdist_of "$name")" >/dev/null
  body=$(printf '{"project": "%s", "version": "%s", "target": "%s"}' "$name" "$version" "$TARGET")
  answer=$(request_build "$body" "$WORK/logs/$name-post-first.json")
  [[ ${answer%% *} == 202 ]] || die "POST for $name answered $answer: $(cat "$WORK/logs/$name-post-first.json")"
  id=$(json_field id <"$WORK/logs/$name-post-first.json")
  deadline=$((SECONDS + BUILD_TIMEOUT))
  while ((SECONDS < deadline)); do
    curl -fsS -H "Authorization: Bearer $TOKEN" -o "$WORK/logs/$name-build.json" \
      "$SERVER_URL/api/v1/builds/$id"
    state=$(json_field state <"$WORK/logs/$name-build.json")
    [[ $state == succeeded ]] && break
    [[ $state == failed ]] && die "server build of $name failed: $(json_field failure <"$WORK/logs/$name-build.json")"
    sleep 1
  done
  [[ $state == succeeded ]] || die "server build of $name did not finish in $BUILD_TIMEOUT s"
  record "$name server_build" "$(python3 -c '
import datetime, json, sys
record = json.load(sys.stdin)
parse = lambda text: datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
print(round((parse(record["finished_at"]) - parse(record["queued_at"])).total_seconds() * 1000))
' <"$WORK/logs/$name-build.json")"
  for round in $(seq "$HTTP_ROUNDS"); do
    answer=$(request_build "$body" "$WORK/logs/$name-post-hit.json")
    read -r code seconds <<<"$answer"
    [[ $code == 200 && $(json_field requested <"$WORK/logs/$name-post-hit.json") == cached ]] \
      || die "repeated POST for $name answered $answer: $(cat "$WORK/logs/$name-post-hit.json")"
    samples+=("$(awk -v seconds="$seconds" 'BEGIN { printf "%.3f", seconds * 1000 }')")
  done
  log "$name cache-hit POST: ${samples[*]:0:10} ... ms"
  record "$name cached_post" "$(IFS=,; echo "${samples[*]}")"
}

report() {
  local cpu
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
  echo "## Build farm (bench/farm.sh)"
  echo
  echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- Machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); load average $LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "- Command: \`$COMMAND_LINE\` (edelweiss $("$BINARY" --version 2>/dev/null | awk '{ print $2 }'), release build, tree $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo unknown))"
  echo "- Musl test root: \`$ROOT\` (CPython 3.13, gcc 12, libpq 15; a stand-in for python:3.13-alpine)"
  echo "- pip: \`python3.13 -m pip install --no-index --no-cache-dir --no-deps --target DIR\` inside bubblewrap over the read-only root, offline; from the sdist with \`--no-binary :all: --no-build-isolation\`, from the wheel with \`--only-binary :all:\`; the compiled module is imported afterwards"
  echo "- Builds: \`EDELWEISS_NO_UPSTREAM=true edelweiss build SDIST --target $TARGET --executor runc --rootfs ROOT --data DATA --out OUT\`; cold = fresh data directory each round (build step, auditwheel repair, smoke test); cache hit = the same call again on the first round's data directory"
  echo "- HTTP: \`edelweiss serve --no-upstream\` with the runc executor; sdist uploaded with twine; server build time = the record's \`queued_at\` to \`finished_at\` (one build); cache hit = \`curl\` POST /api/v1/builds answering 200 \`\"requested\": \"cached\"\`, curl's \`time_total\` with a new connection each time"
  [[ -n $WARM_UP ]] && echo "- Warm-up: $WARM_UP"
  echo "- Figures: median of $ROUNDS rounds (pip, cold builds), $HIT_ROUNDS (cached builds), $HTTP_ROUNDS (cached POSTs); min–max in brackets"
  echo
  python3 - "$WORK/timings.tsv" "$WORK/wheels.tsv" <<'EOF'
import statistics, sys

samples = {}
for line in open(sys.argv[1]):
    key, values = line.rstrip("\n").split("\t")
    samples[key] = [float(value) for value in values.split(",")]
wheels = {name: (filename, int(size), int(distinct)) for name, filename, size, distinct in
          (line.rstrip("\n").split("\t") for line in open(sys.argv[2]))}

def fmt(ms):
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"

def cell(key):
    values = samples[key]
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"

names = list(dict.fromkeys(key.split(" ")[0] for key in samples if " " in key))
print("| | " + " | ".join(names) + " |")
print("|---|" + "---:|" * len(names))
rows = [
    ("`pip install` from the sdist (compiling)", "pip_sdist"),
    ("`pip install` from edelweiss's wheel", "pip_wheel"),
]
for label, kind in rows:
    print(f"| {label} | " + " | ".join(cell(f"{name} {kind}") for name in names) + " |")
print("| pip's start-up alone (`pip --version`, no package) | " + " | ".join(
    cell("pip_start_up") for _ in names) + " |")
print("| **ratio sdist / wheel (medians)** | " + " | ".join(
    f"**{statistics.median(samples[name + ' pip_sdist']) / statistics.median(samples[name + ' pip_wheel']):.1f}×**"
    for name in names) + " |")
for label, kind in [
    ("cold `edelweiss build` (build, repair, smoke test)", "cold_build"),
    ("cold build through the server (queued → finished)", "server_build"),
    ("cache-hit `edelweiss build` (whole process)", "cached_build"),
    ("cache-hit `POST /api/v1/builds`", "cached_post"),
]:
    print(f"| {label} | " + " | ".join(cell(f"{name} {kind}") for name in names) + " |")
print("| wheel built | " + " | ".join(
    f"`{wheels[name][0]}` ({wheels[name][1] / 1e6:.2f} MB)" for name in names) + " |")
print("| distinct wheel sha256 over the cold builds | " + " | ".join(
    f"{wheels[name][2]} of {len(samples[name + ' cold_build'])}" for name in names) + " |")
EOF
}

# A copy, so that a concurrent `cargo build` cannot swap the binary in the middle of a run.
cp "$(edelweiss_binary)" "$WORK/edelweiss"
BINARY=$WORK/edelweiss
ROOT=$(musl_root)
[[ -x $ROOT$ROOT_PYTHON ]] || die "$ROOT is not a musl test root (no $ROOT_PYTHON)"
mkdir -p "$WORK"/{sdists,wheels,logs}
if [[ -n ${SDISTS:-} ]]; then
  cp "$SDISTS"/*.tar.gz "$WORK/sdists/"
else
  log "downloading ${PACKAGE_LIST[*]} sdists"
  python3 -m pip download --quiet --no-binary :all: --no-deps -d "$WORK/sdists" "${PACKAGE_LIST[@]}" >&2
fi
log "root $ROOT, work $WORK"
warm_up_fresh_root

for requirement in "${PACKAGE_LIST[@]}"; do
  bench_cli_builds "$requirement"
done
bench_pip_start_up
for index in "${!PACKAGE_LIST[@]}"; do
  bench_pip "${PACKAGE_LIST[$index]}" "${IMPORT_LIST[$index]}"
done
start_server
for requirement in "${PACKAGE_LIST[@]}"; do
  bench_http "$requirement"
done
report

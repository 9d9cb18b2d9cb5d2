#!/usr/bin/env bash
# Coverage benchmark: does the farm build what plain pip builds, for sdists a team might pin?
#
# For each pin of PINS (default bench/coverage-pins.txt: `NAME==VERSION BACKEND ROOT NOTE`):
#   - PyPI: the release must have an sdist and no wheel tagged for cp313 (or abi3) musllinux
#     (read from https://pypi.org/simple/NAME/ as PEP 691 JSON); a pin that does not qualify
#     is reported as such and still measured;
#   - pip: `pip wheel --no-deps --no-binary NAME NAME==VERSION` with the host's network in
#     bubblewrap over the read-only builder root (the base root, or its C++ layer for ROOT
#     cxx, with the layer's /etc/edelweiss/build.env sourced as the farm's build step does),
#     `auditwheel repair` there as the farm does, `pip install --target` of the repaired wheel
#     with its dependencies (network, same root), then, offline in the runtime root, an import
#     of every top-level module and every extension module in the wheel. "wheel" = all of that
#     worked; "broken" = pip made a wheel that does not repair, install or import (e.g. an
#     extension referencing a CPython function 3.13 removed); "failed" = no wheel;
#   - farm: `edelweiss build NAME==VERSION --executor runc` over the same builder root with the
#     runtime root for the smoke test, PyPI as the upstream, build requirements resolved
#     (resolve_build_requirements = true), one data directory shared by all pins (so the
#     mirror's cache of build requirements is shared, as on a server); the one-line failure
#     reason the CLI prints is recorded;
#   - fresh (only when STEPS names it, for pins the shared farm step did not build): the same
#     build in a data directory of its own, which tells a failure caused by what earlier
#     builds left in the shared one from a failure of the pin itself.
# Then prints a Markdown section: the table and the ratio farm wheels / pip's working wheels.
# Every step is capped in time and runs under `nice -n 19`; results are kept in OUT, and a pin
# whose step has a result there is skipped, so an interrupted run continues where it stopped
# (delete OUT/results/SLUG.pip or .farm to measure a step again).
#
# Usage: bench/coverage.sh > section.md       (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN   binary [target/release/edelweiss, built if missing]
#   PINS            pin list [bench/coverage-pins.txt]; ONLY="NAME==VERSION ..." a subset
#   OUT             results, logs, wheels and the farm's data [/tmp/edelweiss-coverage]
#   BUILDER_ROOT, RUNTIME_ROOT, CXX_ROOT, RUST_ROOT
#                   [what workers/musl-root/build prints, with --runtime, --cxx, --rust; with no
#                   --rust in this tree, ROOT rust pins run on the base root]
#   TIME_LIMIT      seconds per pip step and per farm container run [900]
#   STEPS           which steps run ["pypi pip farm"; add "fresh" for the step above]; the
#                   report covers every step with results
# Needs: bwrap, runc, timeout, python3 (host), network to PyPI; runs as root (runc).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
COMMAND_LINE="bench/coverage.sh"
for variable in PINS ONLY TIME_LIMIT STEPS; do
  [[ -n ${!variable:-} ]] && COMMAND_LINE="$variable=\"${!variable}\" $COMMAND_LINE"
done
PINS=${PINS:-$BENCH_DIR/coverage-pins.txt}
OUT=${OUT:-/tmp/edelweiss-coverage}
TIME_LIMIT=${TIME_LIMIT:-900}
STEPS=${STEPS:-pypi pip farm}
TARGET=cp313-musllinux_1_2_x86_64
PLATFORM=musllinux_1_2_x86_64
ROOT_PYTHON=/usr/local/bin/python3.13

log() { printf '[coverage.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in bwrap runc timeout python3; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -f $PINS ]] || die "no pin list at $PINS"
mkdir -p "$OUT"/{results,logs,pip,farm,fresh,fresh-data}
STARTED=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# A file-name-safe form of a pin.
slug() { tr -c 'A-Za-z0-9.=\n-' '_' <<<"$1" | sed 's/==/-/'; }

# One result: STATUS <tab> SECONDS <tab> REASON (one line).
record() {
  local file=$1 status=$2 seconds=$3 reason=${4:-}
  printf '%s\t%s\t%s\n' "$status" "$seconds" "$(tr '\t\n' '  ' <<<"$reason" | cut -c1-300)" >"$file"
}

# The first line of a build log that says why it failed: a compiler or linker error, a missing
# module or header, a Python or backend error; else the log's last non-empty line.
first_error() {
  python3 - "$1" <<'EOF'
import re, sys
lines = [line.rstrip() for line in open(sys.argv[1], errors="replace")]
patterns = [
    r"fatal error: .*", r"\berror: (?!subprocess-exited-with-error|metadata-generation-failed|"
    r"failed-wheel-build-for-install|command '.*' failed)[^\n]*",
    r"\bERROR: (?!Failed building wheel|Could not build wheels|Failed to build|Subproject )[^\n]*",
    r"\bundefined reference to .*", r"Error relocating .*", r"symbol not found.*",
    r"(ModuleNotFoundError|ImportError|RuntimeError|AttributeError|TypeError|NameError|"
    r"SyntaxError|FileNotFoundError|OSError|CalledProcessError|[A-Za-z]+Error): .*",
    r"requires Python .*", r"Could not find .*", r"No matching distribution .*",
]
for pattern in patterns:
    for line in lines:
        match = re.search(pattern, line)
        if match:
            print(match.group(0).strip()[:300])
            sys.exit()
rest = [line for line in lines if line.strip()]
print(rest[-1].strip()[:300] if rest else "no output")
EOF
}

# Roots, once: the base builder, the runtime, and the layers the pins ask for.
musl_root() {
  local flag=$1
  "$REPO_DIR/workers/musl-root/build" $flag | tail -n 1
}

builder_for() {
  case $1 in
    base) echo "$BUILDER_ROOT" ;;
    cxx) echo "$CXX_ROOT" ;;
    rust) echo "${RUST_ROOT:-$BUILDER_ROOT}" ;;
    *) die "unknown root $1" ;;
  esac
}

# The pins of PINS (or ONLY) as lines `pin backend root note`.
read_pins() {
  local line pin
  while read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    pin=${line%%[[:space:]]*}
    if [[ -n ${ONLY:-} ]] && ! grep -qw -- "$pin" <<<"$ONLY"; then continue; fi
    echo "$line"
  done <"$PINS"
}

# PyPI's word on a pin: "ok" or why it does not qualify.
check_pypi() {
  python3 - "$1" <<'EOF'
import json, re, sys, urllib.request

name, version = sys.argv[1].split("==")
normalized = re.sub(r"[-_.]+", "-", name).lower()
request = urllib.request.Request(f"https://pypi.org/simple/{normalized}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(request, timeout=60))["files"]

def of_release(filename):
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return re.sub(r"[-_.]+", "-", parts[0]).lower() == normalized and parts[1] == version
    stem = re.sub(r"\.(tar\.gz|zip|tar\.bz2)$", "", filename)
    project, _, release = stem.rpartition("-")
    return re.sub(r"[-_.]+", "-", project).lower() == normalized and release == version

def compiled_for_target(filename):
    tags = filename[:-4].split("-")[-3:]
    pythons, abis, platforms = (tag.split(".") for tag in tags)
    musl = any(re.fullmatch(r"musllinux_1_[0-2]_x86_64", p) for p in platforms)
    python = any(p in ("cp313", "py3") or (re.fullmatch(r"cp3\d+", p) and int(p[3:]) <= 13)
                 for p in pythons)
    return musl and python and any(a in ("cp313", "abi3") for a in abis)

release = [f["filename"] for f in files if of_release(f["filename"])]
sdists = [f for f in release if not f.endswith(".whl")]
compiled = [f for f in release if f.endswith(".whl") and compiled_for_target(f)]
if not sdists:
    print("no sdist on PyPI")
elif compiled:
    print(f"PyPI has {compiled[0]}")
else:
    print("ok")
EOF
}

# Runs a command for at most LIMIT seconds, niced, in a root with the host's network (pip needs
# PyPI), the pin's directory at /tmp/pin, read-only root, fresh /tmp. The roots have no
# resolv.conf and a read-only root cannot take a mount point: /etc is a tmpfs holding the
# root's entries and the host's resolv.conf.
in_root_online() {
  local limit=$1 root=$2 pin_dir=$3 entry etc=()
  shift 3
  for entry in "$root"/etc/*; do
    [[ $entry == */resolv.conf ]] || etc+=(--ro-bind "$entry" "/etc/${entry##*/}")
  done
  nice -n 19 timeout "$limit" bwrap --ro-bind "$root" / --tmpfs /etc "${etc[@]}" \
    --ro-bind /etc/resolv.conf /etc/resolv.conf --proc /proc --dev /dev --tmpfs /tmp \
    --bind "$pin_dir" /tmp/pin --unshare-pid --die-with-parent --clearenv \
    --setenv PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --setenv HOME /tmp/home --setenv TMPDIR /tmp --setenv PIP_NO_CACHE_DIR 1 \
    --setenv PIP_DISABLE_PIP_VERSION_CHECK 1 --setenv PIP_NO_INPUT 1 --chdir /tmp "$@"
}

in_runtime_offline() {
  local limit=$1 pin_dir=$2
  shift 2
  nice -n 19 timeout "$limit" bwrap --ro-bind "$RUNTIME_ROOT" / --proc /proc --dev /dev --tmpfs /tmp \
    --ro-bind "$pin_dir" /tmp/pin --unshare-net --unshare-pid --die-with-parent --clearenv \
    --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv HOME /tmp --chdir /tmp "$@"
}

# Every top-level module and every extension module of a wheel, as an import statement.
import_statement() {
  python3 - "$1" <<'EOF'
import re, sys, zipfile

modules = []
for name in zipfile.ZipFile(sys.argv[1]).namelist():
    parts = name.split("/")
    if parts[0].endswith((".dist-info", ".data", ".libs")):
        continue
    if len(parts) == 2 and parts[1] == "__init__.py":
        modules.append(parts[0])
    elif len(parts) == 1 and name.endswith(".py"):
        modules.append(name[:-3])
    elif name.endswith(".so"):
        modules.append(".".join(parts[:-1] + [parts[-1].split(".")[0]]))
modules = [m for m in dict.fromkeys(modules) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", m)]
print("; ".join(f"import {m}" for m in modules) or "raise SystemExit('no module in the wheel')")
EOF
}

pip_step() {
  local pin=$1 root_kind=$2 name=${1%%==*} dir log started status=0 wheel statement
  dir="$OUT/pip/$(slug "$pin")"
  log="$OUT/logs/$(slug "$pin").pip.log"
  rm -rf "$dir"
  mkdir -p "$dir"
  started=$SECONDS
  local builder
  builder=$(builder_for "$root_kind")
  # shellcheck disable=SC2016 # expanded inside the root
  in_root_online "$TIME_LIMIT" "$builder" "$dir" /bin/sh -c '
      set -e
      [ -f /etc/edelweiss/build.env ] && . /etc/edelweiss/build.env
      mkdir -p "$HOME"
      python3 -m pip wheel --no-deps --no-binary "$1" --wheel-dir /tmp/pin/dist "$2"' \
    sh "$name" "$pin" >"$log" 2>&1 || status=$?
  wheel=$(find "$dir/dist" -name '*.whl' 2>/dev/null | head -n 1)
  if ((status != 0)) || [[ -z $wheel ]]; then
    ((status == 124)) && record "$OUT/results/$(slug "$pin").pip" failed $((SECONDS - started)) "timed out after $TIME_LIMIT s" \
      || record "$OUT/results/$(slug "$pin").pip" failed $((SECONDS - started)) "$(first_error "$log")"
    return
  fi
  log="$OUT/logs/$(slug "$pin").pip-install.log"
  # shellcheck disable=SC2016
  in_root_online "$TIME_LIMIT" "$builder" "$dir" /bin/sh -c '
      set -e
      mkdir -p "$HOME" /tmp/pin/repaired
      case "$1" in
          *-none-any.whl) cp "$1" /tmp/pin/repaired/ ;;
          *) python3 -m auditwheel repair --plat "$2" --wheel-dir /tmp/pin/repaired "$1" ;;
      esac
      python3 -m pip install --target /tmp/pin/site /tmp/pin/repaired/*.whl' \
    sh "/tmp/pin/dist/$(basename "$wheel")" "$PLATFORM" >"$log" 2>&1 || status=$?
  if ((status != 0)); then
    record "$OUT/results/$(slug "$pin").pip" broken $((SECONDS - started)) "repair or install: $(first_error "$log")"
    return
  fi
  statement=$(import_statement "$(find "$dir/repaired" -name '*.whl' | head -n 1)")
  log="$OUT/logs/$(slug "$pin").pip-import.log"
  echo "$statement" >"$log"
  in_runtime_offline 300 "$dir" "$ROOT_PYTHON" -c \
    "import sys; sys.path.insert(0, '/tmp/pin/site'); $statement" >>"$log" 2>&1 || status=$?
  if ((status != 0)); then
    record "$OUT/results/$(slug "$pin").pip" broken $((SECONDS - started)) "import: $(first_error "$log")"
    return
  fi
  record "$OUT/results/$(slug "$pin").pip" wheel $((SECONDS - started)) "$(basename "$wheel")"
}

# farm_step PIN ROOT_KIND STEP DATA_DIR: STEP is farm or fresh.
farm_step() {
  local pin=$1 root_kind=$2 step=$3 data=$4 out log started status=0 wheel reason builder
  out="$OUT/$step/$(slug "$pin")"
  log="$OUT/logs/$(slug "$pin").$step.log"
  builder=$(builder_for "$root_kind")
  started=$SECONDS
  # The farm bounds each container run itself; this outer bound is for everything around them.
  EDELWEISS_LOG=warn nice -n 19 timeout $((3 * TIME_LIMIT)) "$BINARY" --config "$OUT/farm.toml" \
    build "$pin" --target "$TARGET" --executor runc --rootfs "$builder" \
    --runtime "$RUNTIME_ROOT" --data "$data" --out "$out" >"$log" 2>&1 || status=$?
  wheel=$(sed -n 's/^wheel: \(.*\.whl\) (sha256 .*$/\1/p' "$log")
  if ((status == 0)) && [[ -n $wheel ]]; then
    record "$OUT/results/$(slug "$pin").$step" wheel $((SECONDS - started)) "$(basename "$wheel")"
    return
  fi
  if ((status == 124)); then
    reason="timed out after $((3 * TIME_LIMIT)) s"
  else
    reason=$(sed -n 's/^Error: build [^ ]* failed ([A-Za-z]*): //p' "$log" | head -n 1)
    [[ -n $reason ]] || reason=$(grep -v '^ *$' "$log" | tail -n 1)
  fi
  record "$OUT/results/$(slug "$pin").$step" failed $((SECONDS - started)) "$reason"
}

report() {
  local cpu
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
  echo "## Coverage: the farm against plain pip (bench/coverage.sh)"
  echo
  echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- Machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), shared with other work; load average $LOAD_BEFORE at the start of this invocation, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "- Command: \`$COMMAND_LINE\` (edelweiss $("$BINARY" --version 2>/dev/null | awk '{ print $2 }'), release build, tree $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo unknown)); time limit $TIME_LIMIT s per step, everything under \`nice -n 19\`"
  echo "- Roots: builder \`$BUILDER_ROOT\`, runtime \`$RUNTIME_ROOT\`${CXX_ROOT:+, C++ layer \`$CXX_ROOT\`}${RUST_ROOT:+, Rust layer \`$RUST_ROOT\`}"
  python3 - "$PINS" "$OUT/results" "${ONLY:-}" "$((SECONDS - STARTED))" <<'EOF'
import os, re, sys

pins_file, results, only, wall = sys.argv[1], sys.argv[2], sys.argv[3].split(), int(sys.argv[4])
def slug(pin):
    return re.sub(r"[^A-Za-z0-9.=\-]", "_", pin).replace("==", "-", 1)
def result(pin, step):
    path = os.path.join(results, f"{slug(pin)}.{step}")
    if not os.path.exists(path):
        return ("not run", 0, "")
    status, seconds, reason = open(path).read().rstrip("\n").split("\t", 2)
    return (status, int(seconds), reason)
def cell(text):
    return text.replace("|", "\\|").replace("`", "'")

rows = []
for line in open(pins_file):
    if not line.strip() or line.startswith("#"):
        continue
    pin, backend, root, *_ = line.split()
    if only and pin not in only:
        continue
    rows.append((pin, backend, root, result(pin, "pypi"), result(pin, "pip"), result(pin, "farm"),
                 result(pin, "fresh")))
total = sum(r[4][1] + r[5][1] + r[6][1] for r in rows)
fresh = any(r[6][0] != "not run" for r in rows)
print(f"- Total build time of the {len(rows)} pins: {total / 60:.0f} min (pip and farm steps, as "
      f"recorded; this invocation's wall time {wall / 60:.0f} min)")
unqualified = [(r[0], r[3][0]) for r in rows if r[3][0] not in ("ok", "not run")]
print(f"- PyPI (simple API): {len(rows) - len(unqualified)} of {len(rows)} pins have an sdist "
      "and no cp313/abi3 musllinux wheel" + "".join(f"; {p}: {why}" for p, why in unqualified))
print()
fresh_header = (" farm, own data dir |", "---|") if fresh else ("", "")
print(f"| pin | backend | root | pip | farm |{fresh_header[0]} farm's reason (pip's, where pip failed too) | pip s | farm s |")
print(f"|---|---|---|---|---|{fresh_header[1]}---|---:|---:|")
for pin, backend, root, _, pip, farm, own in rows:
    reason = farm[2] if farm[0] != "wheel" else ""
    if own[0] not in ("not run", farm[0]):
        reason += f" (own data dir: {own[0]}{': ' + own[2] if own[0] != 'wheel' else ''})"
    if pip[0] != "wheel":
        reason = (reason + " — " if reason else "") + f"pip: {pip[2]}"
    own_cell = f" {own[0] if own[0] != 'not run' else '—'} |" if fresh else ""
    print(f"| {pin} | {backend} | {root} | {pip[0]} | {farm[0]} |{own_cell} {cell(reason)} | {pip[1]} | {farm[1]} |")
working = [r for r in rows if r[4][0] == "wheel"]
both = [r for r in working if r[5][0] == "wheel"]
farm_total = sum(r[5][0] == "wheel" for r in rows)
print()
if working:
    print(f"**Farm wheels / pip's working wheels: {len(both)} / {len(working)} = "
          f"{100 * len(both) / len(working):.0f}%** (target ≥ 95%). pip: {len(working)} working, "
          f"{sum(r[4][0] == 'broken' for r in rows)} broken, {sum(r[4][0] == 'failed' for r in rows)} "
          f"failed; the farm built {farm_total} of {len(rows)}, "
          f"{sum(r[5][0] == 'wheel' and r[4][0] != 'wheel' for r in rows)} of them where pip had no working wheel.")
if fresh:
    own_built = [r for r in working if r[5][0] == "wheel" or r[6][0] == "wheel"]
    print(f"With each failed pin built again in a data directory of its own: {len(own_built)} / "
          f"{len(working)} = {100 * len(own_built) / len(working):.0f}%.")
gaps = [r for r in working if r[5][0] != "wheel"]
if gaps:
    print()
    print("Farm failures where pip made a working wheel:")
    for pin, *_, farm, own in gaps:
        print(f"- {pin}: {cell(farm[2])}" + (f" (own data dir: {own[0]})" if own[0] != "not run" else ""))
EOF
}

# A copy, so that a concurrent `cargo build` cannot swap the binary in the middle of a run.
cp "$(edelweiss_binary)" "$OUT/edelweiss"
BINARY=$OUT/edelweiss
BUILDER_ROOT=${BUILDER_ROOT:-$(musl_root "")}
RUNTIME_ROOT=${RUNTIME_ROOT:-$(musl_root --runtime)}
[[ -x $BUILDER_ROOT$ROOT_PYTHON ]] || die "$BUILDER_ROOT is not a musl test root"
if [[ -z ${CXX_ROOT:-} ]] && read_pins | awk '$3 == "cxx"' | grep -q .; then
  CXX_ROOT=$(musl_root --cxx)
fi
if [[ -z ${RUST_ROOT:-} ]] && grep -q -- '--rust' "$REPO_DIR/workers/musl-root/build"; then
  RUST_ROOT=$(musl_root --rust)
fi
cat >"$OUT/farm.toml" <<EOF
[build]
executor = "runc"
time_limit_seconds = $TIME_LIMIT
resolve_build_requirements = true
EOF
log "builder $BUILDER_ROOT, runtime $RUNTIME_ROOT, results in $OUT"

while read -r pin _ root_kind _; do
  base=$OUT/results/$(slug "$pin")
  if [[ $STEPS == *pypi* && ! -f $base.pypi ]]; then
    record "$base.pypi" "$(check_pypi "$pin" 2>&1 | tail -n 1)" 0
  fi
  if [[ $STEPS == *pip* && ! -f $base.pip ]]; then
    log "$pin: pip"
    pip_step "$pin" "$root_kind"
    log "$pin: pip $(cut -f1,2 "$base.pip" | tr '\t' ' ') s"
  fi
  if [[ $STEPS == *farm* && ! -f $base.farm ]]; then
    log "$pin: farm"
    farm_step "$pin" "$root_kind" farm "$OUT/data"
    log "$pin: farm $(cut -f1,2 "$base.farm" | tr '\t' ' ') s"
  fi
  if [[ $STEPS == *fresh* && -f $base.farm && $(cut -f1 "$base.farm") != wheel && ! -f $base.fresh ]]; then
    log "$pin: farm, own data directory"
    farm_step "$pin" "$root_kind" fresh "$OUT/fresh-data/$(slug "$pin")"
    log "$pin: farm, own data directory: $(cut -f1,2 "$base.fresh" | tr '\t' ' ') s"
  fi
done < <(read_pins)
report

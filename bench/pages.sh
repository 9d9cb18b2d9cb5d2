#!/usr/bin/env bash
# Page benchmark: the simple-API pages edelweiss serves most, mirrored and local, against
# nginx serving static copies of the same bytes and against the other Python index servers,
# side by side in one run. Loopback only, except part `uv`.
#
# 1. `wrk`: a mirrored project of $WRK_FILES wheels (issue #15's table). nginx serves the
#    upstream: a pre-rendered JSON and HTML page (bench/pages_bench.py tree), chosen by
#    Accept. edelweiss mirrors it (page_ttl_seconds one day, so every request is served from
#    its cache), and so do proxpi (gunicorn, 2 workers) and devpi-server (an index of type
#    mirror whose mirror_url is nginx). wrk -t1 -c$WRK_CONNECTIONS, $ROUNDS rounds of
#    $DURATION, the rows alternating within each round:
#      - nginx, the upstream's static page (the issue's baseline);
#      - edelweiss, the mirrored page as JSON with no Accept-Encoding, with pip's
#        (gzip, deflate) and with uv's (gzip, deflate, zstd);
#      - nginx, a static copy of edelweiss's own JSON page, identity and gzip (gzip_static),
#        so the bytes and the coding are the same as edelweiss's;
#      - proxpi and devpi-server, asked for JSON with no Accept-Encoding (as issue #15's
#        table was measured) and as pip asks (pip's Accept and Accept-Encoding); each page
#        is checked first: it must list the $WRK_FILES wheels.
# 2. `local`: a local project of $WRK_FILES small wheels (bench/make_wheels.py), put in with
#    `edelweiss add`: edelweiss's page against nginx serving a static copy of its bytes
#    (identity and gzip), and pypiserver (gunicorn, 2 workers) serving the same wheel files
#    from its package directory (pypiserver cannot mirror, so it has no place in part 1).
# 3. `big`: a project of $BIG_FILES files, local (written into the index by
#    bench/fill_index.rs, as `edelweiss add` would take hours for one project of that many)
#    and mirrored (an nginx page of that many entries, merge_projects so an upload can join
#    it): the first request, warm requests as pip and uv make them, the first request after
#    an upload to that project ($WRITES rounds, pip's and uv's request each), and the
#    server's memory after.
# 4. `uv` (needs the network, not in the default PARTS): `uv pip compile --no-cache` of
#    bench/uv-requirements.in for musllinux, Python 3.13 (as the project's clients compile),
#    straight against $PYPI and through edelweiss mirroring it (default configuration, a
#    fresh data directory): one compile each to warm up (edelweiss fills its mirror), then
#    $UV_RUNS of each, alternating. The pins must agree.
#
# Usage: bench/pages.sh > tables.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN   server binary [cargo's release build, brought up to date]
#   FILL_INDEX_BIN  bench/fill_index.rs built [cargo's release build of the example]
#   WRK_FILES [1000]  BIG_FILES [40000]  ROUNDS [3]  DURATION [10s]  WARMUP [2s]
#   WRK_CONNECTIONS [32]  WARM_REQUESTS [20]  WRITES [5]  NGINX_WORKERS [2]
#   PARTS           a subset of "wrk local big uv" ["wrk local big"]
#   OTHERS          the other servers of parts 1 and 2, a subset of "proxpi devpi pypiserver"
#                   [all three]; "" for edelweiss and nginx alone
#   BENCH_VENV      venv for the other servers, made and filled with pip if missing
#                   [~/.cache/edelweiss/bench-venv]
#   UV [~/.cache/edelweiss/tools/venv/bin/uv, from .ci/setup]  UV_RUNS [5]
#   PYPI [https://pypi.org/simple/]
#   KEEP=1          keep the temporary directory
# Needs: wrk, nginx (Debian: nginx-light), python3, curl, zstd; for OTHERS, PyPI (pip).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
WRK_FILES=${WRK_FILES:-1000}
BIG_FILES=${BIG_FILES:-40000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
WARM_REQUESTS=${WARM_REQUESTS:-20}
WRITES=${WRITES:-5}
NGINX_WORKERS=${NGINX_WORKERS:-2}
PARTS=${PARTS:-wrk local big}
OTHERS=${OTHERS-proxpi devpi pypiserver}
BENCH_VENV=${BENCH_VENV:-$HOME/.cache/edelweiss/bench-venv}
UV=${UV:-$HOME/.cache/edelweiss/tools/venv/bin/uv}
UV_RUNS=${UV_RUNS:-5}
PYPI=${PYPI:-https://pypi.org/simple/}
# The other servers, pinned: the versions of issue #15's table.
OTHER_PACKAGES=(proxpi==1.3.1 devpi-server==6.20.3 "pypiserver[cache]==2.4.2" gunicorn==23.0.0)
TOKEN=bench-upload-token-0123456789
JSON_ACCEPT="application/vnd.pypi.simple.v1+json"
PIP_ACCEPT="application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
PIP_ENCODING="gzip, deflate"
HELPER=("python3" "$BENCH_DIR/pages_bench.py")

log() { printf '[pages.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in wrk nginx python3 curl zstd; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install -y wrk nginx-light curl python3 zstd)"
done

make_work_dir pages
chmod 755 "$WORK"
RESULTS=$WORK/results.jsonl
EDELWEISS_PID="" NGINX_PID="" EDELWEISS_URL="" NGINX_URL=""
OTHER_PIDS=()
stop_others() {
  local pid
  for pid in "${OTHER_PIDS[@]}"; do stop "$pid"; done
  OTHER_PIDS=()
}
UV_TMPDIR=""
trap 'stop "$EDELWEISS_PID"; stop "$NGINX_PID"; stop_others; [[ $UV_TMPDIR == /dev/shm/* ]] && rm -rf "$UV_TMPDIR"; if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi' EXIT
trap 'exit 130' INT TERM

start_nginx() {
  local port dir=$WORK/nginx
  port=$(free_port)
  mkdir -p "$dir/tmp" "$dir/root"
  cat >"$dir/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types {
        application/vnd.pypi.simple.v1+json json;
        text/html html;
    }
    charset utf-8;
    # A .gz file next to a page is sent to clients that accept gzip, as it is.
    gzip_static on;
    gzip_vary on;
    map \$http_accept \$page_format {
        default html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" json;
    }
    server {
        listen 127.0.0.1:$port;
        root $dir/root;
        location / { try_files \${uri}index.\$page_format =404; }
    }
}
EOF
  nginx -t -q -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >&2
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >&2 &
  NGINX_PID=$!
  NGINX_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -sS -o /dev/null "$NGINX_URL/" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nginx does not answer at $NGINX_URL"
}

# start_edelweiss DATA_DIR CONFIG [serve arguments...]
start_edelweiss() {
  local data=$1 config=$2
  shift 2
  EDELWEISS_UPLOAD_TOKENS=$TOKEN EDELWEISS_LOG=warn "$BINARY" serve --data "$data" \
    --config "$config" --listen 127.0.0.1:0 "$@" >"$WORK/edelweiss.out" 2>>"$WORK/edelweiss.log" &
  EDELWEISS_PID=$!
  for _ in $(seq 100); do
    EDELWEISS_URL=$(sed -n 's/^edelweiss listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$WORK/edelweiss.out")
    [[ -n $EDELWEISS_URL ]] && break
    kill -0 "$EDELWEISS_PID" 2>/dev/null || die "edelweiss exited: $(tail "$WORK/edelweiss.log")"
    sleep 0.1
  done
  [[ -n $EDELWEISS_URL ]] || die "edelweiss did not report its address"
  wait_for_http "$EDELWEISS_URL/healthz"
}

stop_edelweiss() { stop "$EDELWEISS_PID"; EDELWEISS_PID=""; }

# wrk_row LABEL URL VERSUS [header...]: one wrk run, recorded unless LABEL is "warmup", in
# the table $TABLE, compared with the row VERSUS. Without an Accept header, JSON's.
wrk_row() {
  local label=$1 url=$2 versus=$3 duration=$DURATION output header headers=()
  shift 3
  [[ $label == warmup ]] && duration=$WARMUP
  local accept=(-H "Accept: $JSON_ACCEPT")
  for header in "$@"; do
    headers+=(-H "$header")
    [[ $header == "Accept: "* ]] && accept=()
  done
  headers+=("${accept[@]}")
  output=$WORK/wrk-$RANDOM.txt
  wrk -t1 -c"$WRK_CONNECTIONS" -d"$duration" --timeout 10s --latency \
    -s "$BENCH_DIR/wrk_report.lua" "${headers[@]}" "$url" >"$output"
  [[ $label == warmup ]] || "${HELPER[@]}" wrk "$label" "$output" "$TABLE" "$versus" >>"$RESULTS"
}

# run_rows ROW...: each row "label|url|versus|header|header", once to warm up, then $ROUNDS
# rounds of all rows in turn.
run_rows() {
  local row label url versus round fields
  for row in "$@"; do
    IFS='|' read -r -a fields <<<"$row"
    wrk_row warmup "${fields[1]}" "" "${fields[@]:3}"
  done
  for round in $(seq "$ROUNDS"); do
    log "$TABLE: wrk round $round of $ROUNDS"
    for row in "$@"; do
      IFS='|' read -r -a fields <<<"$row"
      label=${fields[0]} url=${fields[1]} versus=${fields[2]:-}
      wrk_row "$label" "$url" "$versus" "${fields[@]:3}"
    done
  done
}

# static_copy URL PATH: nginx's copy of a JSON page at PATH/ under its root, identity and (if
# the server sends it) gzip, byte for byte.
static_copy() {
  local url=$1 path=$2 copy
  mkdir -p "$WORK/nginx/root$path"
  copy=$WORK/nginx/root$path/index.json
  curl -fsS -H "Accept: $JSON_ACCEPT" -o "$copy" "$url"
  curl -fsS -H "Accept: $JSON_ACCEPT" -H "Accept-Encoding: gzip" -o "$copy.gz" "$url"
  if gzip -t "$copy.gz" 2>/dev/null; then
    log "$url: $(stat -c %s "$copy") bytes, gzip $(stat -c %s "$copy.gz")"
  else
    rm -f "$copy.gz" # a server that does not compress: nginx sends the identity copy
    log "$url: $(stat -c %s "$copy") bytes, not compressed"
  fi
  cmp -s "$copy" <(curl -fsS -H "Accept: $JSON_ACCEPT" "$NGINX_URL$path/") ||
    die "nginx's copy differs from $url"
}

# --- the other index servers, from PyPI into $BENCH_VENV ---------------------------------

wants() { [[ " $OTHERS " == *" $1 "* ]]; }

bench_venv() {
  if ! "$BENCH_VENV/bin/python" -m pip show -q proxpi devpi-server pypiserver gunicorn >/dev/null 2>&1; then
    log "installing ${OTHER_PACKAGES[*]} into $BENCH_VENV"
    python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/python" -m pip install -q "${OTHER_PACKAGES[@]}" >&2
  fi
  local version
  for package in proxpi devpi-server pypiserver gunicorn; do
    version=$("$BENCH_VENV/bin/python" -m pip show "$package" 2>/dev/null | sed -n 's/^Version: //p')
    echo "- $package $version (from PyPI, in $BENCH_VENV)"
  done
}

# other_rows NAME URL: sets OTHER_ROWS, two rows of wrk, JSON with no Accept-Encoding (as
# issue #15's table asked) and as pip asks, after checking that each page lists the wheels.
other_rows() {
  local label=$1 url=$2 sent
  sent=$("${HELPER[@]}" check "$url" "$WRK_FILES" identity) || die "$label: $sent"
  OTHER_ROWS=("$label, JSON asked, identity ($sent sent)|$url||Accept: $JSON_ACCEPT")
  sent=$("${HELPER[@]}" check "$url" "$WRK_FILES" pip) || die "$label: $sent"
  OTHER_ROWS+=("$label, as pip asks ($sent sent)|$url||Accept: $PIP_ACCEPT|Accept-Encoding: $PIP_ENCODING")
}

# The start_* functions below set OTHER_URL.
# start_gunicorn APP [env...]: gunicorn with 2 sync workers.
start_gunicorn() {
  local app=$1 port
  shift
  port=$(free_port)
  env "$@" "$BENCH_VENV/bin/gunicorn" --workers 2 --bind "127.0.0.1:$port" --log-level warning \
    "$app" >>"$WORK/others.log" 2>&1 &
  OTHER_PIDS+=($!)
  OTHER_URL=http://127.0.0.1:$port
  wait_for_http "$OTHER_URL/"
}

start_proxpi() {
  start_gunicorn proxpi.server:app PROXPI_INDEX_URL="$NGINX_URL/simple/" PROXPI_INDEX_TTL=86400 \
    PROXPI_CACHE_DIR="$WORK/proxpi" PROXPI_LOGGING_LEVEL=WARNING
}

# devpi-server: an index root/mirror of type mirror over nginx, made through its HTTP API
# (devpi-client is not needed for that).
start_devpi() {
  local dir=$WORK/devpi port url token
  port=$(free_port)
  "$BENCH_VENV/bin/devpi-init" --serverdir "$dir" --no-root-pypi --root-passwd bench >>"$WORK/others.log" 2>&1
  "$BENCH_VENV/bin/devpi-server" --serverdir "$dir" --listen "127.0.0.1:$port" \
    --mirror-cache-expiry 86400 >>"$WORK/others.log" 2>&1 &
  OTHER_PIDS+=($!)
  url=http://127.0.0.1:$port
  wait_for_http "$url/+api"
  token=$(curl -fsS -H 'Accept: application/json' -H 'Content-Type: application/json' \
    -d '{"user": "root", "password": "bench"}' "$url/+login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["password"])')
  curl -fsS -X PUT -H 'Accept: application/json' -H 'Content-Type: application/json' \
    -H "X-Devpi-Auth: $(printf 'root:%s' "$token" | base64 -w0)" \
    -d "{\"type\": \"mirror\", \"mirror_url\": \"$NGINX_URL/simple/\"}" \
    "$url/root/mirror" >/dev/null || die "devpi-server: cannot make the mirror index"
  OTHER_URL=$url
}

start_pypiserver() {
  start_gunicorn "pypiserver:app(roots=['$1'])"
}

machine_info() {
  echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)," \
    "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  echo "- Kernel: $(uname -sr); $(nginx -v 2>&1 | sed 's/^nginx version: //'); wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')"
}

part_wrk() {
  local project=mirrorbench page data=$WORK/data-wrk rows=()
  "${HELPER[@]}" tree "$WORK/nginx/root" "$project" "$WRK_FILES"
  "${HELPER[@]}" root "$WORK/nginx/root" "$project"
  printf '[mirror]\npage_ttl_seconds = 86400\n' >"$WORK/wrk.toml"
  start_edelweiss "$data" "$WORK/wrk.toml" --upstream "$NGINX_URL/simple/"
  page=$EDELWEISS_URL/simple/$project/
  # The static copy of edelweiss's page: the same bytes and, for gzip, the same coding.
  static_copy "$page" "/copy/simple/$project"
  local copy=$NGINX_URL/copy/simple/$project/
  local identity="nginx, static copy of edelweiss's page, identity"
  local gzipped="nginx, static copy of edelweiss's page, gzip (gzip_static)"
  rows=(
    "nginx, the upstream's static page (identity)|$NGINX_URL/simple/$project/|"
    "edelweiss, mirrored page, identity|$page|$identity"
    "edelweiss, mirrored page, pip's Accept-Encoding (gzip)|$page|$gzipped|Accept-Encoding: gzip, deflate"
    "edelweiss, mirrored page, uv's Accept-Encoding (zstd)|$page|$gzipped|Accept-Encoding: gzip, deflate, zstd"
    "$identity|$copy|"
    "$gzipped|$copy||Accept-Encoding: gzip, deflate"
  )
  if wants proxpi; then
    start_proxpi
    other_rows "proxpi 1.3.1, gunicorn 2 workers" "$OTHER_URL/index/$project/"
    rows+=("${OTHER_ROWS[@]}")
  fi
  if wants devpi; then
    start_devpi
    other_rows "devpi-server 6.20.3" "$OTHER_URL/root/mirror/+simple/$project/"
    rows+=("${OTHER_ROWS[@]}")
  fi
  TABLE="Mirrored $WRK_FILES-file page" run_rows "${rows[@]}"
  "${HELPER[@]}" memory "$EDELWEISS_PID" "after the wrk runs ($WRK_FILES-file mirrored page)" >>"$RESULTS"
  stop_edelweiss
  stop_others
}

part_local() {
  local project=benchproj wheels=$WORK/wheels data=$WORK/data-local-wrk rows=() page
  python3 "$BENCH_DIR/make_wheels.py" "$wheels" "$WRK_FILES" 1
  rm -f "$wheels"/benchbig-*
  "$BINARY" add --data "$data" "$wheels"/*.whl >"$WORK/add.log" 2>&1 ||
    die "edelweiss add: $(tail -n 5 "$WORK/add.log")"
  printf '' >"$WORK/local-wrk.toml"
  start_edelweiss "$data" "$WORK/local-wrk.toml" --no-upstream
  page=$EDELWEISS_URL/simple/$project/
  static_copy "$page" "/local-copy/simple/$project"
  local copy=$NGINX_URL/local-copy/simple/$project/
  local identity="nginx, static copy of edelweiss's local page, identity"
  local gzipped="nginx, static copy of edelweiss's local page, gzip (gzip_static)"
  rows=(
    "$identity|$copy|"
    "$gzipped|$copy||Accept-Encoding: gzip, deflate"
    "edelweiss, local page, identity|$page|$identity"
    "edelweiss, local page, pip's Accept-Encoding (gzip)|$page|$gzipped|Accept-Encoding: gzip, deflate"
    "edelweiss, local page, uv's Accept-Encoding (zstd)|$page|$gzipped|Accept-Encoding: gzip, deflate, zstd"
  )
  if wants pypiserver; then
    start_pypiserver "$wheels"
    other_rows "pypiserver 2.4.2, gunicorn 2 workers, the same wheels" "$OTHER_URL/simple/$project/"
    rows+=("${OTHER_ROWS[@]}")
  fi
  TABLE="Local $WRK_FILES-file page" run_rows "${rows[@]}"
  "${HELPER[@]}" memory "$EDELWEISS_PID" "after the wrk runs ($WRK_FILES-file local page)" >>"$RESULTS"
  stop_edelweiss
  stop_others
}

# uv_compile MODE URL OUT: one `uv pip compile` as the project's clients run it (tests/common's
# uv_compile_musl), with no cache, no configuration and no PIP_/UV_ settings of this shell;
# sets UV_SECONDS to "wall/cpu" (cpu: uv's user + system seconds). MODE `tests` runs it as the
# tests do; MODE `index` takes out two costs of the client that have nothing to do with the
# index: uv is given its interpreter (--python, the real binary behind python3) instead of
# querying every python on PATH (pyenv's shims take about 1 s here, and --no-cache keeps
# nothing of it), and its temporary cache goes to a tmpfs ($UV_TMPDIR) instead of a disk
# where deleting it at exit takes about 0.6 s (one unlink of 4 ms per page and metadata file).
uv_compile() {
  local mode=$1 url=$2 out=$3 clean=() extra=() settings=()
  mapfile -t clean < <(env | sed -n 's/^\(\(PIP\|UV\)_[A-Za-z0-9_]*\)=.*/\1/p')
  [[ $mode == index ]] && extra=(--python "$UV_PYTHON") settings=("TMPDIR=$UV_TMPDIR")
  rm -f "$out" # uv takes an existing output file's pins as preferences
  UV_SECONDS=$(env "${clean[@]/#/--unset=}" "${settings[@]}" UV_NO_CONFIG=1 UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never \
    /usr/bin/time -f '%e/%U/%S' -o /dev/stdout "$UV" pip compile --no-cache --quiet --no-header \
    "${extra[@]}" --python-platform x86_64-unknown-linux-musl --python-version 3.13 --index-url "$url" \
    -o "$out" "$BENCH_DIR/uv-requirements.in" 2>>"$WORK/uv.log" | awk -F/ '{ printf "%s/%.2f", $1, $2 + $3 }') ||
    die "uv pip compile against $url: $(tail -n 5 "$WORK/uv.log")"
  [[ -s $out ]] || die "uv pip compile against $url wrote nothing: $(tail -n 5 "$WORK/uv.log")"
}

# requests_by_route URL: edelweiss's request counters, "route=count ..." summed over status.
requests_by_route() {
  curl -fsS "$1/metrics" | awk -F'"' '/^edelweiss_http_requests_total\{/ { split($0, w, " "); n[$2] += w[2] }
    END { for (r in n) printf "%s=%d ", r, n[r] }'
}

upstream_bytes() {
  curl -fsS "$1/metrics" | awk '/^edelweiss_upstream_bytes_fetched_total/ { s += $NF } END { print s + 0 }'
}

part_uv() {
  [[ -x $UV ]] || die "$UV not found: run .ci/setup (uv is in .ci/client-requirements.txt)"
  UV_PYTHON=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
  UV_TMPDIR=$WORK/uv-tmp
  [[ -d /dev/shm ]] && UV_TMPDIR=$(mktemp -d /dev/shm/edelweiss-uv-bench.XXXXXX)
  mkdir -p "$UV_TMPDIR"
  echo "- uv: $("$UV" --version); requirements: bench/uv-requirements.in" \
    "($(grep -c '^[a-z]' "$BENCH_DIR/uv-requirements.in") lines); mode index: --python $UV_PYTHON," \
    "TMPDIR=$UV_TMPDIR ($(stat -f -c %T "$UV_TMPDIR"))"
  printf '' >"$WORK/uv.toml"
  start_edelweiss "$WORK/data-uv" "$WORK/uv.toml" --upstream "$PYPI"
  local mirror=$EDELWEISS_URL/simple/ mode run requests_before upstream_before
  declare -A runs
  log "uv: warming up (edelweiss fills its mirror)"
  uv_compile index "$PYPI" "$WORK/direct.txt"
  uv_compile index "$mirror" "$WORK/through.txt"
  echo "- cold compile through edelweiss (its mirror empty), mode index: ${UV_SECONDS%/*} s"
  uv_compile tests "$PYPI" "$WORK/direct.txt"
  uv_compile tests "$mirror" "$WORK/through.txt"
  requests_before=$(requests_by_route "$EDELWEISS_URL")
  upstream_before=$(upstream_bytes "$EDELWEISS_URL")
  for run in $(seq "$UV_RUNS"); do
    log "uv: run $run of $UV_RUNS"
    for mode in index tests; do
      uv_compile "$mode" "$PYPI" "$WORK/direct.txt"
      runs[$mode-direct]+=" $UV_SECONDS"
      uv_compile "$mode" "$mirror" "$WORK/through.txt"
      runs[$mode-through]+=" $UV_SECONDS"
    done
  done
  echo "- edelweiss's requests by route (all statuses) after the warm-up compiles: $requests_before"
  echo "- and after $((2 * UV_RUNS)) more: $(requests_by_route "$EDELWEISS_URL")"
  echo "- file bytes edelweiss fetched from the upstream during the measured compiles:" \
    $(($(upstream_bytes "$EDELWEISS_URL") - upstream_before))
  diff -u "$WORK/direct.txt" "$WORK/through.txt" >&2 || die "the pins differ between PyPI and edelweiss"
  echo "- uv pins: $(grep -c '==' "$WORK/direct.txt"), the same both ways"
  local direct="straight against $PYPI"
  # shellcheck disable=SC2086 # the runs are words
  {
    "${HELPER[@]}" compile "$direct, mode index" "" ${runs[index-direct]}
    "${HELPER[@]}" compile "through edelweiss mirroring it, mode index" "$direct, mode index" ${runs[index-through]}
    "${HELPER[@]}" compile "$direct, mode tests" "" ${runs[tests-direct]}
    "${HELPER[@]}" compile "through edelweiss mirroring it, mode tests" "$direct, mode tests" ${runs[tests-through]}
  } >>"$RESULTS"
  stop_edelweiss
}

# big_page LABEL PROJECT: the measurements of part 2 against the running server.
big_page() {
  local label=$1 project=$2 path=/simple/$2/
  local started
  started=$(now_ms)
  "${HELPER[@]}" latency "$EDELWEISS_URL" "$path" "$label, first request" 1 pip >>"$RESULTS"
  log "$label: first request done ($(($(now_ms) - started)) ms with the client's checks)"
  for coding in identity pip uv; do
    "${HELPER[@]}" latency "$EDELWEISS_URL" "$path" "$label, warm" "$WARM_REQUESTS" "$coding" >>"$RESULTS"
  done
  "${HELPER[@]}" after_write "$EDELWEISS_URL" "$TOKEN" "$project" "$WRITES" "$label" >>"$RESULTS"
  "${HELPER[@]}" memory "$EDELWEISS_PID" "after serving the $label" >>"$RESULTS"
}

# The helper that writes a project of many files into an index at once (bench/fill_index.rs).
fill_index_binary() {
  if [[ -n ${FILL_INDEX_BIN:-} ]]; then
    echo "$FILL_INDEX_BIN"
    return
  fi
  log "building the bench_fill_index example"
  (cd "$REPO_DIR" && nice -n 10 cargo build --release --example bench_fill_index >&2)
  echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/examples/bench_fill_index"
}

part_big() {
  "$(fill_index_binary)" "$WORK/data-local" benchproj "$BIG_FILES" >&2
  printf '' >"$WORK/local.toml"
  start_edelweiss "$WORK/data-local" "$WORK/local.toml" --no-upstream
  "${HELPER[@]}" memory "$EDELWEISS_PID" "started, $BIG_FILES files held" >>"$RESULTS"
  big_page "local $BIG_FILES-file page" benchproj
  stop_edelweiss

  "${HELPER[@]}" tree "$WORK/nginx/root" bigmirror "$BIG_FILES"
  printf '[mirror]\npage_ttl_seconds = 86400\nmerge_projects = ["bigmirror"]\n' >"$WORK/mirror.toml"
  start_edelweiss "$WORK/data-mirror" "$WORK/mirror.toml" --upstream "$NGINX_URL/simple/"
  big_page "mirrored $BIG_FILES-file page" bigmirror
  stop_edelweiss
}

BINARY=$(edelweiss_binary)
machine_info
echo "- Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- edelweiss binary: $BINARY (modified $(date -u -r "$BINARY" '+%Y-%m-%d %H:%M UTC'))"
[[ -n $OTHERS && " $PARTS " == *" wrk "* || -n $OTHERS && " $PARTS " == *" local "* ]] && bench_venv
start_nginx
mkdir -p "$WORK/nginx/root/simple"
for part in $PARTS; do
  "part_$part"
done
echo "- Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"${HELPER[@]}" report "$RESULTS"

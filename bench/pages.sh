#!/usr/bin/env bash
# Page benchmark: the simple-API pages edelweiss serves most, mirrored and local, against
# nginx serving static pages, in one run. Loopback only.
#
# 1. A mirrored project of $WRK_FILES wheels (issue #15's table). nginx serves the upstream:
#    a pre-rendered JSON and HTML page (bench/pages_bench.py tree), chosen by Accept.
#    edelweiss mirrors it (page_ttl_seconds one day, so every request is served from its
#    cache). wrk -t1 -c$WRK_CONNECTIONS, $ROUNDS rounds of $DURATION, alternating:
#      - nginx, the upstream's static page (the issue's baseline);
#      - edelweiss, the mirrored page as JSON with no Accept-Encoding, with pip's
#        (gzip, deflate) and with uv's (gzip, deflate, zstd);
#      - nginx, a static copy of edelweiss's own JSON page, identity and gzip (gzip_static),
#        so the bytes and the coding are the same as edelweiss's.
# 2. A project of $BIG_FILES files, local (written into the index by bench/fill_index.rs,
#    as `edelweiss add` would take hours for one project of that many) and mirrored (an nginx
#    page of that many entries, merge_projects so an upload can join it): the first request,
#    warm requests as pip and uv make them, the first request after an upload to that
#    project ($WRITES rounds, pip's and uv's request each), and the server's memory after.
#
# Usage: bench/pages.sh > tables.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN   server binary [cargo's release build, brought up to date]
#   FILL_INDEX_BIN  bench/fill_index.rs built [cargo's release build of the example]
#   WRK_FILES [1000]  BIG_FILES [40000]  ROUNDS [3]  DURATION [10s]  WARMUP [2s]
#   WRK_CONNECTIONS [32]  WARM_REQUESTS [20]  WRITES [5]  NGINX_WORKERS [2]
#   PARTS           a subset of "wrk big" [both]
#   KEEP=1          keep the temporary directory
# Needs: wrk, nginx (Debian: nginx-light), python3, curl, zstd.
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
PARTS=${PARTS:-wrk big}
TOKEN=bench-upload-token-0123456789
JSON_ACCEPT="application/vnd.pypi.simple.v1+json"
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
trap 'stop "$EDELWEISS_PID"; stop "$NGINX_PID"; if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi' EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_http() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing answers at $1"
}

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

# wrk_row LABEL URL [header...]: one wrk run, recorded unless LABEL is "warmup".
wrk_row() {
  local label=$1 url=$2 duration=$DURATION output
  shift 2
  [[ $label == warmup ]] && duration=$WARMUP
  local headers=(-H "Accept: $JSON_ACCEPT")
  for header in "$@"; do headers+=(-H "$header"); done
  output=$WORK/wrk-$RANDOM.txt
  wrk -t1 -c"$WRK_CONNECTIONS" -d"$duration" --timeout 10s --latency \
    -s "$BENCH_DIR/wrk_report.lua" "${headers[@]}" "$url" >"$output"
  [[ $label == warmup ]] || "${HELPER[@]}" wrk "$label" "$output" >>"$RESULTS"
}

machine_info() {
  echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)," \
    "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  echo "- Kernel: $(uname -sr); $(nginx -v 2>&1 | sed 's/^nginx version: //'); wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')"
}

part_wrk() {
  local project=mirrorbench page data=$WORK/data-wrk
  "${HELPER[@]}" tree "$WORK/nginx/root" "$project" "$WRK_FILES"
  printf '[mirror]\npage_ttl_seconds = 86400\n' >"$WORK/wrk.toml"
  start_edelweiss "$data" "$WORK/wrk.toml" --upstream "$NGINX_URL/simple/"
  page=$EDELWEISS_URL/simple/$project/
  # The static copy of edelweiss's page: the same bytes and, for gzip, the same coding.
  mkdir -p "$WORK/nginx/root/copy/simple/$project"
  local copy=$WORK/nginx/root/copy/simple/$project/index.json
  curl -fsS -H "Accept: $JSON_ACCEPT" -o "$copy" "$page"
  curl -fsS -H "Accept: $JSON_ACCEPT" -H "Accept-Encoding: gzip" -o "$copy.gz" "$page"
  if gzip -t "$copy.gz" 2>/dev/null; then
    log "edelweiss's page: $(stat -c %s "$copy") bytes, gzip $(stat -c %s "$copy.gz")"
  else
    rm -f "$copy.gz"  # a server that does not compress: nginx sends the identity copy
    log "edelweiss's page: $(stat -c %s "$copy") bytes, not compressed"
  fi
  cmp -s "$copy" <(curl -fsS -H "Accept: $JSON_ACCEPT" "$NGINX_URL/copy/simple/$project/") ||
    die "nginx's copy differs from edelweiss's page"
  local rows=(
    "nginx, the upstream's static page (identity)|$NGINX_URL/simple/$project/"
    "edelweiss, mirrored page, identity|$page"
    "edelweiss, mirrored page, pip's Accept-Encoding (gzip)|$page|Accept-Encoding: gzip, deflate"
    "edelweiss, mirrored page, uv's Accept-Encoding (zstd)|$page|Accept-Encoding: gzip, deflate, zstd"
    "nginx, static copy of edelweiss's page, identity|$NGINX_URL/copy/simple/$project/"
    "nginx, static copy of edelweiss's page, gzip (gzip_static)|$NGINX_URL/copy/simple/$project/|Accept-Encoding: gzip, deflate"
  )
  local row label url header
  for row in "${rows[@]}"; do
    IFS='|' read -r label url header <<<"$row"
    wrk_row warmup "$url" ${header:+"$header"}
  done
  for round in $(seq "$ROUNDS"); do
    log "wrk round $round of $ROUNDS"
    for row in "${rows[@]}"; do
      IFS='|' read -r label url header <<<"$row"
      wrk_row "$label" "$url" ${header:+"$header"}
    done
  done
  "${HELPER[@]}" memory "$EDELWEISS_PID" "after the wrk runs ($WRK_FILES-file mirrored page)" >>"$RESULTS"
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
start_nginx
mkdir -p "$WORK/nginx/root/simple"
for part in $PARTS; do
  "part_$part"
done
echo "- Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"${HELPER[@]}" report "$RESULTS"

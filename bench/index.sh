#!/usr/bin/env bash
# Index benchmark: edelweiss against nginx serving the same bytes as static files, in one
# run, so the figures that matter are the ratios edelweiss/nginx.
#
# Workloads (wrk, HTTP/1.1 keep-alive, loopback only):
#   - the project page of a project with $FILES files, as PEP 691 JSON and as HTML:
#     requests/s and p99 latency;
#   - one ~100 MB wheel downloaded over 1 and over $DOWNLOAD_CONNECTIONS connections: MB/s.
# nginx serves the pages edelweiss rendered (fetched from it, byte for byte, with the same
# content types) and a copy of the wheel, with sendfile on and access_log off.
#
# Usage: bench/index.sh > table.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN         server binary [target/release/edelweiss, built if missing]
#   FILES [1000]  BIG_BYTES [100000000]  ROUNDS [5]  DURATION [10s]  WARMUP [3s]
#   THREADS [2]  PAGE_CONNECTIONS [32]  DOWNLOAD_CONNECTIONS [4]  NGINX_WORKERS [2]
#   WORKLOADS             a subset of "json html download1 download" [all four]
#   KEEP=1                keep the temporary directory (data, nginx root, wrk outputs)
# Needs: wrk, nginx (Debian: apt-get install -y wrk nginx-light), python3, curl.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
FILES=${FILES:-1000}
BIG_BYTES=${BIG_BYTES:-100000000}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
PAGE_CONNECTIONS=${PAGE_CONNECTIONS:-32}
DOWNLOAD_CONNECTIONS=${DOWNLOAD_CONNECTIONS:-4}
NGINX_WORKERS=${NGINX_WORKERS:-2}
WORKLOADS=${WORKLOADS:-json html download1 download}
JSON_ACCEPT="application/vnd.pypi.simple.v1+json"
HTML_ACCEPT="text/html"

log() { printf '[index.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install -y wrk nginx-light curl python3)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edelweiss-bench.XXXXXX")
# nginx workers drop privileges when started as root; they must be able to read the root.
chmod 755 "$WORK"
EDELWEISS_PID=""
NGINX_PID=""


cleanup() {
  stop "$EDELWEISS_PID"
  stop "$NGINX_PID"
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


start_edelweiss() {
  local binary=$1
  EDELWEISS_LOG=warn "$binary" serve --data "$WORK/data" --listen 127.0.0.1:0 --no-upstream \
    >"$WORK/edelweiss.out" 2>"$WORK/edelweiss.log" &
  EDELWEISS_PID=$!
  for _ in $(seq 100); do
    EDELWEISS_URL=$(sed -n 's/^edelweiss listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$WORK/edelweiss.out")
    [[ -n $EDELWEISS_URL ]] && break
    kill -0 "$EDELWEISS_PID" 2>/dev/null || die "edelweiss exited: $(cat "$WORK/edelweiss.log")"
    sleep 0.1
  done
  [[ -n $EDELWEISS_URL ]] || die "edelweiss did not report its address"
  wait_for_http "$EDELWEISS_URL/healthz"
}

# Fetches one rendered page into the nginx root and checks its content type is one nginx
# will reproduce from the `types` table below.
copy_page() {
  local accept=$1 extension=$2 expected_type=$3 target="$WORK/nginx/root/simple/benchproj/index.$2"
  local content_type
  content_type=$(curl -fsS -H "Accept: $accept" -o "$target" -w '%{content_type}' "$EDELWEISS_URL/simple/benchproj/")
  [[ $content_type == "$expected_type" ]] || die "edelweiss sent $extension page as '$content_type'"
}

write_nginx_config() {
  local port=$1 dir="$WORK/nginx"
  cat >"$dir/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    # Keep wrk's connections open for the whole run, as edelweiss (actix) does.
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types {
        application/vnd.pypi.simple.v1+json json;
        text/html html;
        application/octet-stream whl;
    }
    # Appends "; charset=utf-8" to text/html, as edelweiss sends it.
    charset utf-8;
    # The same negotiation the benchmark exercises: JSON when asked for, HTML otherwise.
    map \$http_accept \$page_format {
        default html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" json;
    }
    server {
        listen 127.0.0.1:$port;
        root $dir/root;
        location /simple/ { try_files \${uri}index.\$page_format =404; }
        location /files/ { }
    }
}
EOF
}

start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$WORK/nginx/tmp"
  write_nginx_config "$port"
  nginx -t -q -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >&2
  nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >&2 &
  NGINX_PID=$!
  NGINX_URL="http://127.0.0.1:$port"
  wait_for_http "$NGINX_URL/simple/benchproj/"
}

# Both servers must answer each workload with the same status, type and bytes.
check_same() {
  local path=$1 accept=$2 name
  for name in edelweiss nginx; do
    local url
    [[ $name == edelweiss ]] && url=$EDELWEISS_URL || url=$NGINX_URL
    curl -fsS -H "Accept: $accept" -o "$WORK/check.$name" -w '%{content_type}\n' "$url$path" >"$WORK/check.$name.type"
  done
  cmp -s "$WORK/check.edelweiss" "$WORK/check.nginx" || die "$path ($accept): bodies differ"
  cmp -s "$WORK/check.edelweiss.type" "$WORK/check.nginx.type" ||
    die "$path ($accept): content types differ: $(cat "$WORK/check.edelweiss.type") vs $(cat "$WORK/check.nginx.type")"
}

# CPU time (user + system, in clock ticks) a server has used so far: the process, all its
# threads, and its direct children (nginx's workers).
server_cpu_ticks() {
  local pid=$1 total=0 process
  for process in "$pid" $(pgrep -P "$pid" || true); do
    # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    total=$((total + $(sed 's/^.*) //' "/proc/$process/stat" | awk '{ print $12 + $13 }')))
  done
  echo "$total"
}

# run_wrk SERVER WORKLOAD ROUND DURATION: one wrk run; appends a line to results.tsv unless
# ROUND is "warmup".
run_wrk() {
  local server=$1 workload=$2 round=$3 duration=$4 base pid path accept connections threads out
  if [[ $server == edelweiss ]]; then base=$EDELWEISS_URL pid=$EDELWEISS_PID; else base=$NGINX_URL pid=$NGINX_PID; fi
  case $workload in
    json) path=/simple/benchproj/ accept=$JSON_ACCEPT connections=$PAGE_CONNECTIONS threads=$THREADS ;;
    html) path=/simple/benchproj/ accept=$HTML_ACCEPT connections=$PAGE_CONNECTIONS threads=$THREADS ;;
    download1) path=$BIG_PATH accept="*/*" connections=1 threads=1 ;;
    download) path=$BIG_PATH accept="*/*" connections=$DOWNLOAD_CONNECTIONS threads=$THREADS ;;
  esac
  out="$WORK/wrk.$server.$workload.$round"
  local ticks_before ticks_after
  ticks_before=$(server_cpu_ticks "$pid")
  wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s --latency \
    -s "$BENCH_DIR/wrk_report.lua" -H "Accept: $accept" "$base$path" >"$out"
  ticks_after=$(server_cpu_ticks "$pid")
  awk -v ticks=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { print "server_cpu_seconds=" ticks / hz }' >>"$out"
  local status_errors
  status_errors=$(sed -n 's/^errors_status=//p' "$out")
  [[ $status_errors == 0 ]] || die "$server $workload: $status_errors non-2xx responses (see $out)"
  [[ $round == warmup ]] && return
  python3 - "$out" "$server" "$workload" "$round" >>"$WORK/results.tsv" <<'EOF'
import sys
path, server, workload, round_ = sys.argv[1:]
values = dict(line.strip().split("=", 1) for line in open(path) if "=" in line and line[0].isalpha())
seconds = int(values["duration_us"]) / 1e6
errors = sum(int(values[key]) for key in values if key.startswith("errors_"))
print(server, workload, round_, int(values["requests"]) / seconds, int(values["p99_us"]) / 1000,
      int(values["bytes"]) / seconds / 1e6, errors, values["server_cpu_seconds"], values["requests"],
      values["bytes"], sep="\t")
EOF
  log "$(tail -n 1 "$WORK/results.tsv" | awk -F'\t' '{ printf "%-9s %-9s round %s: %.0f req/s, p99 %.2f ms, %.0f MB/s, %d socket errors, server CPU %.1f s", $1, $2, $3, $4, $5, $6, $7, $8 }')"
}

machine_info() {
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)," \
    "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  echo "- Kernel: $(uname -sr); $(nginx -v 2>&1 | sed 's/^nginx version: //'); wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')"
  echo "- Load average before the runs: $load"
}

print_table() {
  python3 - "$WORK/results.tsv" "$1" "$2" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
def runs(server, workload):
    return [r for r in rows if r[0] == server and r[1] == workload]
def median(server, workload, column):
    return statistics.median(float(r[column]) for r in runs(server, workload))
def cpu_cost(server, workload, per_bytes):
    """Server CPU seconds over all rounds, per 1,000 requests or per GB (10^9 bytes) sent."""
    done = runs(server, workload)
    cpu = sum(float(r[7]) for r in done)
    work = sum(int(r[9]) for r in done) / 1e9 if per_bytes else sum(int(r[8]) for r in done) / 1e3
    return cpu / work
downloads = f"{sys.argv[2]} connections"
big = f"{int(sys.argv[3]) / 1e6:.0f} MB download"
# (label, workload, column, better, target ratio): column 3 req/s, 4 p99 ms, 5 MB/s.
metrics = [
    ("JSON page, requests/s", "json", 3, "higher", 1.0),
    ("JSON page, p99 latency (ms)", "json", 4, "lower", 1.0),
    ("HTML page, requests/s", "html", 3, "higher", 1.0),
    ("HTML page, p99 latency (ms)", "html", 4, "lower", 1.0),
    (f"{big}, 1 connection, MB/s", "download1", 5, "higher", 0.9),
    (f"{big}, {downloads}, MB/s", "download", 5, "higher", 0.9),
]
print("| Workload | edelweiss | nginx | edelweiss / nginx | Target | Met |")
print("|---|---:|---:|---:|---|---|")
for label, workload, column, better, target in metrics:
    if not runs("edelweiss", workload):
        continue
    ours, theirs = median("edelweiss", workload, column), median("nginx", workload, column)
    ratio = ours / theirs
    if better == "higher":
        goal, met = f"≥ {target:.2f}", ratio >= target
    else:
        goal, met = f"≤ {1 / target:.2f}", ratio <= 1 / target
    fmt = "{:,.2f}" if column == 4 else "{:,.0f}"
    print(f"| {label} | {fmt.format(ours)} | {fmt.format(theirs)} | {ratio:.2f} | {goal} | {'yes' if met else 'no'} |")
print()
print("Server CPU time (user + system, all threads and workers) per unit of work, over all rounds:")
print()
print("| Workload | edelweiss | nginx | edelweiss / nginx |")
print("|---|---:|---:|---:|")
costs = [
    ("JSON page, CPU s per 1,000 requests", "json", False),
    ("HTML page, CPU s per 1,000 requests", "html", False),
    (f"{big}, 1 connection, CPU s per GB", "download1", True),
    (f"{big}, {downloads}, CPU s per GB", "download", True),
]
for label, workload, per_bytes in costs:
    if not runs("edelweiss", workload):
        continue
    ours, theirs = cpu_cost("edelweiss", workload, per_bytes), cpu_cost("nginx", workload, per_bytes)
    ratio = f"{ours / theirs:.1f}" if theirs > 0 else "n/a"
    print(f"| {label} | {ours:.3f} | {theirs:.3f} | {ratio} |")
for r in rows:
    if int(r[6]) != 0:
        print(f"\nSocket errors: {r[0]} {r[1]} round {r[2]}: {r[6]}")
EOF
}

main() {
  local binary
  binary=$(edelweiss_binary)
  local before
  before=$(machine_info)
  local binary_line
  binary_line="- edelweiss binary: $binary (modified $(date -u -r "$binary" '+%Y-%m-%d %H:%M UTC'))"

  log "generating $FILES wheels and one $BIG_BYTES-byte wheel in $WORK/wheels"
  python3 "$BENCH_DIR/make_wheels.py" "$WORK/wheels" "$FILES" "$BIG_BYTES"
  log "ingesting with edelweiss add"
  local started=$SECONDS
  "$binary" add --data "$WORK/data" "$WORK"/wheels/*.whl >"$WORK/add.log" 2>&1 || die "add failed: $(tail "$WORK/add.log")"
  local ingest_seconds=$((SECONDS - started))

  start_edelweiss "$binary"
  log "edelweiss at $EDELWEISS_URL"
  mkdir -p "$WORK/nginx/root/simple/benchproj"
  copy_page "$JSON_ACCEPT" json "$JSON_ACCEPT"
  copy_page "$HTML_ACCEPT" html "text/html; charset=utf-8"
  local page_files
  page_files=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$WORK/nginx/root/simple/benchproj/index.json")
  [[ $page_files == "$FILES" ]] || die "the JSON page lists $page_files files, expected $FILES"
  BIG_PATH=$(curl -fsS -H "Accept: $JSON_ACCEPT" "$EDELWEISS_URL/simple/benchbig/" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["url"])')
  [[ $BIG_PATH == /files/* ]] || die "unexpected file URL $BIG_PATH"
  mkdir -p "$WORK/nginx/root$(dirname "$BIG_PATH")"
  curl -fsS -o "$WORK/nginx/root$BIG_PATH" "$EDELWEISS_URL$BIG_PATH"
  local digest
  digest=$(basename "$(dirname "$BIG_PATH")")
  [[ $(sha256sum "$WORK/nginx/root$BIG_PATH" | cut -d' ' -f1) == "$digest" ]] || die "downloaded file does not hash to $digest"

  start_nginx
  log "nginx at $NGINX_URL"
  check_same /simple/benchproj/ "$JSON_ACCEPT"
  check_same /simple/benchproj/ "$HTML_ACCEPT"
  check_same "$BIG_PATH" "*/*"

  local workloads workload server round order
  read -r -a workloads <<<"$WORKLOADS"
  for workload in "${workloads[@]}"; do
    [[ $workload =~ ^(json|html|download1|download)$ ]] || die "unknown workload $workload"
  done
  log "warm-up: $WARMUP per workload and server"
  for workload in "${workloads[@]}"; do
    for server in edelweiss nginx; do run_wrk "$server" "$workload" warmup "$WARMUP"; done
  done
  : >"$WORK/results.tsv"
  for round in $(seq "$ROUNDS"); do
    # Alternate which server goes first so drift in background load does not favour one.
    ((round % 2)) && order=(edelweiss nginx) || order=(nginx edelweiss)
    for workload in "${workloads[@]}"; do
      for server in "${order[@]}"; do run_wrk "$server" "$workload" "$round" "$DURATION"; done
    done
  done

  local json_bytes html_bytes big_bytes
  json_bytes=$(stat -c %s "$WORK/nginx/root/simple/benchproj/index.json")
  html_bytes=$(stat -c %s "$WORK/nginx/root/simple/benchproj/index.html")
  big_bytes=$(stat -c %s "$WORK/nginx/root$BIG_PATH")
  echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "$before"
  echo "- Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$binary_line"
  echo "- Command: \`${EDELWEISS_BIN:+EDELWEISS_BIN=$EDELWEISS_BIN }ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP" \
    "THREADS=$THREADS PAGE_CONNECTIONS=$PAGE_CONNECTIONS DOWNLOAD_CONNECTIONS=$DOWNLOAD_CONNECTIONS" \
    "NGINX_WORKERS=$NGINX_WORKERS WORKLOADS='$WORKLOADS' bench/index.sh\`"
  echo "- Content: project page with $FILES files (JSON $json_bytes bytes, HTML $html_bytes bytes);" \
    "download of one $big_bytes-byte wheel; ingest of $((FILES + 1)) files took ${ingest_seconds}s"
  echo "- Figures: median of $ROUNDS rounds; MB/s = 10^6 bytes/s"
  echo
  print_table "$DOWNLOAD_CONNECTIONS" "$big_bytes"
}

main "$@"

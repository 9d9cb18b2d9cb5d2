#!/usr/bin/env bash
# Replica benchmark: one edelweiss against two behind a load balancer, both on PostgreSQL
# (metadata_url) and one blob directory per setup, measured in one run.
#
#   one: a replica, its records in database A, its blobs in directory A, asked directly;
#   one-lb: the same replica behind nginx (keep-alive to the replica), which isolates what
#        the balancer itself costs;
#   two: two replicas on database B and directory B, behind nginx (round robin, keep-alive
#        to the replicas).
#
# Workloads, the same for both setups:
#   - upload: $FILES small wheels and one wheel of $BIG_BYTES, POSTed to /legacy/ by
#     $UPLOAD_PARALLEL curl processes at once: files/s and MB/s;
#   - the project page of the $FILES wheels as PEP 691 JSON, wrk -t$THREADS -c$PAGE_CONNECTIONS:
#     requests/s and p99 latency;
#   - the big wheel downloaded over $DOWNLOAD_CONNECTIONS connections: MB/s.
# Page and download rounds alternate between the setups, $ROUNDS each; cells are medians.
# Uploads go to "one" directly and to "two" through its balancer, once each.
# The blob directory of "two" is a file:// store both replicas write, which one host allows
# for a benchmark; a real deployment shares an S3 bucket instead (README, "PostgreSQL").
#
# Usage: bench/replicas.sh > table.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN        server binary [target/release/edelweiss, built if missing]
#   EDELWEISS_BENCH_POSTGRES  a role that may create databases
#                        [the test server of .ci/setup: postgres://edelweiss_test:edelweiss_test@127.0.0.1:5433/postgres]
#   FILES [200]  BIG_BYTES [50000000]  UPLOAD_PARALLEL [4]  ROUNDS [3]  DURATION [10s]
#   THREADS [2]  PAGE_CONNECTIONS [32]  DOWNLOAD_CONNECTIONS [4]
#   KEEP=1               keep the temporary directory
# Needs: wrk, nginx, psql, curl, python3 (Debian: wrk nginx-light postgresql-client curl).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
FILES=${FILES:-200}
BIG_BYTES=${BIG_BYTES:-50000000}
UPLOAD_PARALLEL=${UPLOAD_PARALLEL:-4}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
PAGE_CONNECTIONS=${PAGE_CONNECTIONS:-32}
DOWNLOAD_CONNECTIONS=${DOWNLOAD_CONNECTIONS:-4}
POSTGRES=${EDELWEISS_BENCH_POSTGRES:-postgres://edelweiss_test:edelweiss_test@127.0.0.1:5433/postgres}
TOKEN=bench-upload-token-0123456789
JSON_ACCEPT="application/vnd.pypi.simple.v1+json"

log() { printf '[replicas.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in wrk nginx psql curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edelweiss-replicas-bench.XXXXXX")
PIDS=()
DATABASES=()

cleanup() {
  local pid database
  for pid in "${PIDS[@]}"; do stop "$pid"; done
  wait 2>/dev/null || true
  for database in "${DATABASES[@]}"; do
    psql -q -d "$POSTGRES" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# new_database NAME: a fresh database on the server; prints its URL.
new_database() {
  local name="edelweiss_bench_$1_$$"
  psql -q -d "$POSTGRES" -c "CREATE DATABASE $name" >/dev/null || die "cannot create $name on $POSTGRES"
  DATABASES+=("$name")
  python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$POSTGRES" "$name"
}

# start_replica NAME DATABASE_URL BLOB_DIR PORT
start_replica() {
  local name=$1 database=$2 blobs=$3 port=$4
  mkdir -p "$WORK/$name" "$blobs"
  EDELWEISS_LOG=warn EDELWEISS_METADATA_URL=$database EDELWEISS_STORAGE_URL="file://$blobs" \
    EDELWEISS_UPLOAD_TOKENS=$TOKEN \
    "$BINARY" serve --data "$WORK/$name/data" --listen "127.0.0.1:$port" --no-upstream \
    >"$WORK/$name/out" 2>"$WORK/$name/log" &
  PIDS+=($!)
  wait_for_http "http://127.0.0.1:$port/healthz"
}

# start_balancer NAME PORT REPLICA_PORT...
start_balancer() {
  local name=$1 port=$2 dir="$WORK/$1" replica servers=""
  shift 2
  for replica in "$@"; do servers+="        server 127.0.0.1:$replica;"$'\n'; done
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream replicas {
$servers        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >&2 &
  PIDS+=($!)
  wait_for_http "http://127.0.0.1:$port/healthz"
}

# upload BASE_URL: every wheel of $WORK/wheels, $UPLOAD_PARALLEL at a time; prints
# "files seconds bytes".
upload() {
  local base=$1 started ended bytes count
  count=$(find "$WORK/wheels" -name '*.whl' | wc -l)
  bytes=$(find "$WORK/wheels" -name '*.whl' -printf '%s\n' | awk '{ s += $1 } END { print s }')
  started=$(now_ms)
  find "$WORK/wheels" -name '*.whl' -print0 |
    xargs -0 -P "$UPLOAD_PARALLEL" -I{} curl -fsS -o /dev/null -u "__token__:$TOKEN" \
      -F ":action=file_upload" -F "protocol_version=1" -F "content=@{}" "$base/legacy/" ||
    die "an upload to $base failed"
  ended=$(now_ms)
  echo "$count $(((ended - started))) $bytes"
}

# measure SETUP WORKLOAD ROUND: one wrk run, appended to results.tsv.
measure() {
  local setup=$1 workload=$2 round=$3 base path connections out
  case $setup in
    one) base=$ONE_URL ;;
    one-lb) base=$ONE_LB_URL ;;
    two) base=$TWO_URL ;;
  esac
  case $workload in
    page) path=/simple/benchproj/ connections=$PAGE_CONNECTIONS ;;
    download) path=$BIG_PATH connections=$DOWNLOAD_CONNECTIONS ;;
  esac
  out="$WORK/wrk.$setup.$workload.$round"
  wrk -t"$THREADS" -c"$connections" -d"$DURATION" --timeout 10s --latency \
    -s "$BENCH_DIR/wrk_report.lua" -H "Accept: $JSON_ACCEPT" "$base$path" >"$out"
  [[ $(sed -n 's/^errors_status=//p' "$out") == 0 ]] || die "$setup $workload: non-2xx responses (see $out)"
  awk -F= -v setup="$setup" -v workload="$workload" '
    { v[$1] = $2 }
    END {
      seconds = v["duration_us"] / 1e6
      printf "%s\t%s\t%.1f\t%.2f\t%.1f\n", setup, workload, v["requests"] / seconds, v["p99_us"] / 1000, v["bytes"] / seconds / 1e6
    }' "$out" >>"$WORK/results.tsv"
}

BINARY=$(edelweiss_binary)
python3 "$BENCH_DIR/make_wheels.py" "$WORK/wheels" "$FILES" "$BIG_BYTES" >&2

ONE_PORT=$(free_port) TWO_A=$(free_port) TWO_B=$(free_port) LB_PORT=$(free_port) ONE_LB_PORT=$(free_port)
start_replica one "$(new_database one)" "$WORK/blobs-one" "$ONE_PORT"
TWO_DATABASE=$(new_database two)
start_replica two-a "$TWO_DATABASE" "$WORK/blobs-two" "$TWO_A"
start_replica two-b "$TWO_DATABASE" "$WORK/blobs-two" "$TWO_B"
start_balancer nginx-two "$LB_PORT" "$TWO_A" "$TWO_B"
start_balancer nginx-one "$ONE_LB_PORT" "$ONE_PORT"
ONE_URL="http://127.0.0.1:$ONE_PORT"
ONE_LB_URL="http://127.0.0.1:$ONE_LB_PORT"
TWO_URL="http://127.0.0.1:$LB_PORT"

log "uploading $FILES wheels and one of $BIG_BYTES bytes to each setup"
read -r UP_ONE_FILES UP_ONE_MS UP_BYTES <<<"$(upload "$ONE_URL")"
read -r UP_TWO_FILES UP_TWO_MS _ <<<"$(upload "$TWO_URL")"

BIG_PATH=$(curl -fsS -H "Accept: $JSON_ACCEPT" "$ONE_URL/simple/benchbig/" |
  python3 -c 'import json, sys, urllib.parse as u; print(u.urlsplit(json.load(sys.stdin)["files"][0]["url"]).path)')
for setup_url in "$ONE_URL" "$TWO_URL"; do
  listed=$(curl -fsS -H "Accept: $JSON_ACCEPT" "$setup_url/simple/benchproj/" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["files"]))')
  [[ $listed == "$FILES" ]] || die "$setup_url lists $listed of $FILES wheels"
done

for round in $(seq "$ROUNDS"); do
  for setup in one one-lb two; do
    log "round $round: $setup"
    measure "$setup" page "$round"
    measure "$setup" download "$round"
  done
done

cell() { # setup workload column
  awk -F'\t' -v s="$1" -v w="$2" -v c="$3" '$1 == s && $2 == w { print $c }' "$WORK/results.tsv" | median
}

cat <<EOF
Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).
Command: FILES=$FILES BIG_BYTES=$BIG_BYTES UPLOAD_PARALLEL=$UPLOAD_PARALLEL ROUNDS=$ROUNDS DURATION=$DURATION bench/replicas.sh

| workload | one replica | one replica behind nginx | two replicas behind nginx | two / one behind nginx |
|---|---:|---:|---:|---:|
EOF
awk -v a="$((UP_ONE_FILES * 1000))" -v b="$UP_ONE_MS" -v c="$((UP_TWO_FILES * 1000))" -v d="$UP_TWO_MS" \
  -v bytes="$UP_BYTES" -v parallel="$UPLOAD_PARALLEL" 'BEGIN {
  one = a / b; two = c / d
  printf "| upload, files/s (%d parallel) | %.1f | — | %.1f | (two / one: %.2f) |\n", parallel, one, two, two / one
  printf "| upload, MB/s | %.1f | — | %.1f | (two / one: %.2f) |\n", bytes / b / 1000, bytes / d / 1000, b / d
}'
for workload in page download; do
  one_rps=$(cell one "$workload" 3) lb_rps=$(cell one-lb "$workload" 3) two_rps=$(cell two "$workload" 3)
  one_p99=$(cell one "$workload" 4) lb_p99=$(cell one-lb "$workload" 4) two_p99=$(cell two "$workload" 4)
  one_mbs=$(cell one "$workload" 5) lb_mbs=$(cell one-lb "$workload" 5) two_mbs=$(cell two "$workload" 5)
  if [[ $workload == page ]]; then
    awk -v a="$one_rps" -v l="$lb_rps" -v b="$two_rps" -v c="$one_p99" -v m="$lb_p99" -v d="$two_p99" 'BEGIN {
      printf "| JSON page, requests/s | %.0f | %.0f | %.0f | %.2f |\n", a, l, b, b / l
      printf "| JSON page, p99 ms | %.2f | %.2f | %.2f | %.2f |\n", c, m, d, d / m }'
  else
    awk -v a="$one_mbs" -v l="$lb_mbs" -v b="$two_mbs" 'BEGIN {
      printf "| download, MB/s | %.0f | %.0f | %.0f | %.2f |\n", a, l, b, b / l }'
  fi
done

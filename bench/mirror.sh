#!/usr/bin/env bash
# Mirror benchmark: edelweiss in front of a local upstream (tests/upstream/server.py, run
# through bench/mirror_upstream.py with TCP_NODELAY so small pages do not wait 40 ms for a
# delayed ACK), so the figures are edelweiss's own costs, not the network's.
#
# Workloads (loopback only; the client downloads one file or page at a time over one
# keep-alive connection and checks every body's sha256 after timing it):
#   - downloads of the same $FILES wheels ($MIN_BYTES..$MAX_BYTES, random payload):
#     directly from the upstream (baseline); through edelweiss cold (a fresh data dir, so
#     each file streams from the upstream while it is hashed and stored); warm (from
#     edelweiss's store); warm again with the upstream stopped; cold and warm again with a
#     client that acknowledges every read at once (TCP_QUICKACK), which removes the ~40 ms
#     stalls of Nagle's algorithm on the server against the client's delayed ACK. $ROUNDS
#     rounds, each with fresh data dirs.
#   - JSON project pages: the upstream directly (also the stock server, to show the
#     delayed-ACK stall); edelweiss's first fetch of $PAGE_REQUESTS
#     fresh projects (miss, upstream 200); the same page $PAGE_REQUESTS times from cache
#     (TTL one day); and with TTL 0, where every request revalidates (upstream 304). The
#     cached and revalidated pages are also run under wrk with $WRK_CONNECTIONS connections,
#     next to /healthz as the floor of a request that does no page work.
# The upstream's request counts are checked: each file fetched once, none after that, and
# one conditional request per revalidated page.
#
# Usage: bench/mirror.sh > table.md        (progress goes to stderr)
# Environment (defaults in brackets):
#   EDELWEISS_BIN   server binary [target/release/edelweiss, built if missing]
#   FILES [20]  MIN_BYTES [2000000]  MAX_BYTES [5000000]  ROUNDS [5]
#   PAGE_REQUESTS [200]  WRK_DURATION [5s]  WRK_CONNECTIONS [4]
#   KEEP=1          keep the temporary directory (tree, data dirs, logs, raw timings)
# Needs: python3, wrk (Debian: apt-get install -y wrk), curl.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
FILES=${FILES:-20}
MIN_BYTES=${MIN_BYTES:-2000000}
MAX_BYTES=${MAX_BYTES:-5000000}
ROUNDS=${ROUNDS:-5}
PAGE_REQUESTS=${PAGE_REQUESTS:-200}
WRK_DURATION=${WRK_DURATION:-5s}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-4}
JSON_ACCEPT="application/vnd.pypi.simple.v1+json"
HELPER=("python3" "$BENCH_DIR/mirror_bench.py")

log() { printf '[mirror.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in python3 wrk curl; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install -y wrk curl python3)"
done

EDELWEISS_BIN=${EDELWEISS_BIN:-$REPO_DIR/target/release/edelweiss}
if [[ ! -x $EDELWEISS_BIN ]]; then
  log "building $EDELWEISS_BIN"
  (cd "$REPO_DIR" && nice -n 10 cargo build --release >&2)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edelweiss-mirror-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
UPSTREAM_PID="" EDELWEISS_PID="" UPSTREAM_URL="" EDELWEISS_URL=""

stop() { # pid: stops a process this script started
  [[ -n $1 ]] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup() {
  stop "$EDELWEISS_PID"
  stop "$UPSTREAM_PID"
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_line() { # file prefix: prints the rest of the first line starting with prefix
  local line
  for _ in $(seq 1 100); do
    line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    if [[ -n $line ]]; then printf '%s\n' "${line#"$2"}"; return 0; fi
    sleep 0.1
  done
  die "no '$2' line in $1 after 10 s: $(cat "$1" "$1.err" 2>/dev/null)"
}

start_upstream() { # [server script]: bench/mirror_upstream.py (TCP_NODELAY) unless given
  python3 "${1:-$BENCH_DIR/mirror_upstream.py}" --root "$WORK/tree" --mode json \
    >"$WORK/upstream.out" 2>"$WORK/upstream.out.err" &
  UPSTREAM_PID=$!
  UPSTREAM_URL=$(wait_for_line "$WORK/upstream.out" "listening on ")
}

stop_upstream() { stop "$UPSTREAM_PID"; UPSTREAM_PID=""; rm -f "$WORK/upstream.out"; }

start_edelweiss() { # data_dir config_file
  "$EDELWEISS_BIN" serve --config "$2" --data "$1" --listen 127.0.0.1:0 \
    --upstream "$UPSTREAM_URL/simple/" >"$WORK/edelweiss.out" 2>>"$WORK/edelweiss.log" &
  EDELWEISS_PID=$!
  EDELWEISS_URL=$(wait_for_line "$WORK/edelweiss.out" "edelweiss listening on ")
}

stop_edelweiss() { stop "$EDELWEISS_PID"; EDELWEISS_PID=""; rm -f "$WORK/edelweiss.out"; }

upstream_count() { # key in the upstream's /_stats
  curl -fsS "$UPSTREAM_URL/_stats" | python3 -c "import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))" "$1"
}

upstream_file_requests() {
  curl -fsS "$UPSTREAM_URL/_stats" |
    python3 -c "import json,sys; print(sum(v for k, v in json.load(sys.stdin).items() if k.startswith('/files/') and ' ' not in k))"
}

expect() { # what actual expected
  [[ $2 == "$3" ]] || die "$1: expected $3, got $2"
}

run_wrk() { # label url
  local output=$WORK/wrk-$RANDOM.txt
  wrk -t1 -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --latency -H "Accept: $JSON_ACCEPT" "$2" >"$output"
  "${HELPER[@]}" wrk "$1" "$WRK_CONNECTIONS" "$output" >>"$RESULTS"
}

# Each TTL is a config file: EDELWEISS_PAGE_TTL_SECONDS, although config/edelweiss.toml names
# it, is not read (src/config.rs's ENVIRONMENT table has no such entry).
printf '[mirror]\npage_ttl_seconds = 86400\n' >"$WORK/cache.toml"
printf '[mirror]\npage_ttl_seconds = 0\n' >"$WORK/revalidate.toml"

log "writing the upstream tree in $WORK/tree"
"${HELPER[@]}" tree "$WORK/tree" "$FILES" "$MIN_BYTES" "$MAX_BYTES" "$PAGE_REQUESTS"

for round in $(seq 1 "$ROUNDS"); do
  log "downloads, round $round of $ROUNDS"
  start_upstream
  "${HELPER[@]}" urls "$UPSTREAM_URL" mirrorbench >"$WORK/urls-upstream.txt"
  "${HELPER[@]}" download "$WORK/urls-upstream.txt" "direct from the upstream (baseline)" >>"$RESULTS"
  for client in default quickack; do
    label="" && [[ $client == quickack ]] && label=", client TCP_QUICKACK"
    before=$(upstream_file_requests)
    start_edelweiss "$WORK/data-$round-$client" "$WORK/cache.toml"
    "${HELPER[@]}" urls "$EDELWEISS_URL" mirrorbench >"$WORK/urls-edelweiss.txt"
    "${HELPER[@]}" download "$WORK/urls-edelweiss.txt" "cold: edelweiss, from the upstream$label" "$client" >>"$RESULTS"
    expect "upstream file requests after the cold run" "$(($(upstream_file_requests) - before))" "$FILES"
    "${HELPER[@]}" download "$WORK/urls-edelweiss.txt" "warm: edelweiss, from its store$label" "$client" >>"$RESULTS"
    expect "upstream file requests after the warm run" "$(($(upstream_file_requests) - before))" "$FILES"
    if [[ $client == default ]]; then
      stop_upstream
      "${HELPER[@]}" download "$WORK/urls-edelweiss.txt" "warm: edelweiss, upstream stopped" >>"$RESULTS"
      start_upstream
    fi
    stop_edelweiss
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK/data-$round-$client"
  done
  stop_upstream
done

log "pages"
start_upstream "$REPO_DIR/tests/upstream/server.py"
"${HELPER[@]}" pages "$UPSTREAM_URL" "the upstream directly, stock server.py (Nagle on)" "$PAGE_REQUESTS" mirrorbench >>"$RESULTS"
stop_upstream
mapfile -t fresh < <(for number in $(seq 0 $((PAGE_REQUESTS - 1))); do printf 'pagebench-%03d\n' "$number"; done)
start_upstream
"${HELPER[@]}" pages "$UPSTREAM_URL" "the upstream directly" "$PAGE_REQUESTS" mirrorbench >>"$RESULTS"
start_edelweiss "$WORK/data-pages" "$WORK/cache.toml"
"${HELPER[@]}" pages "$EDELWEISS_URL" "edelweiss, first fetch (miss, upstream 200)" 1 "${fresh[@]}" >>"$RESULTS"
expect "upstream 200s for the first fetches" "$(upstream_count "/simple/${fresh[0]}/ 200")" 1
"${HELPER[@]}" pages "$EDELWEISS_URL" "warm-up" 1 mirrorbench >/dev/null
page_requests=$(upstream_count /simple/mirrorbench/)
"${HELPER[@]}" pages "$EDELWEISS_URL" "edelweiss, from cache (TTL 1 day)" "$PAGE_REQUESTS" mirrorbench >>"$RESULTS"
run_wrk "edelweiss, from cache (TTL 1 day)" "$EDELWEISS_URL/simple/mirrorbench/"
run_wrk "edelweiss, /healthz (the HTTP floor: no page work)" "$EDELWEISS_URL/healthz"
expect "upstream page requests while serving from cache" "$(upstream_count /simple/mirrorbench/)" "$page_requests"
stop_edelweiss
start_edelweiss "$WORK/data-pages" "$WORK/revalidate.toml"
not_modified=$(upstream_count "/simple/mirrorbench/ 304")
"${HELPER[@]}" pages "$EDELWEISS_URL" "edelweiss, revalidated (TTL 0, upstream 304)" "$PAGE_REQUESTS" mirrorbench >>"$RESULTS"
expect "upstream 304s while revalidating" "$(($(upstream_count "/simple/mirrorbench/ 304") - not_modified))" "$PAGE_REQUESTS"
run_wrk "edelweiss, revalidated (TTL 0, upstream 304)" "$EDELWEISS_URL/simple/mirrorbench/"
stop_edelweiss
stop_upstream

"${HELPER[@]}" report "$RESULTS"

# shellcheck shell=bash
# Shared by the bench scripts; they define log, die and REPO_DIR before sourcing this.

# Stops a process this script started: TERM, up to 5 s, then KILL.
stop() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# The release binary: EDELWEISS_BIN, or cargo's, brought up to date (cargo does nothing when
# it is; a stale binary would bench old code and old embedded recipes).
edelweiss_binary() {
  if [[ -n ${EDELWEISS_BIN:-} ]]; then
    [[ -x $EDELWEISS_BIN ]] || die "EDELWEISS_BIN=$EDELWEISS_BIN is not executable"
    echo "$EDELWEISS_BIN"
    return
  fi
  local binary="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/edelweiss"
  log "building $binary"
  (cd "$REPO_DIR" && nice -n 10 cargo build --release --bin edelweiss >&2)
  echo "$binary"
}

# A TCP port free on the loopback now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for URL to answer 2xx; dies otherwise.
wait_for_http() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing answers at $1"
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Median of whitespace- or comma-separated numbers on stdin.
median() { tr -s ', ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# A temporary work directory in WORK, removed at exit unless KEEP=1.
make_work_dir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/edelweiss-$1-bench.XXXXXX")
  trap 'if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi' EXIT
}

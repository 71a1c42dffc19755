#!/usr/bin/env bash
# Where the write p99 goes: the same 10 s of `POST issuedApiKeys` (or of
# 1000-key batch imports) at one connection (server pinned to core 0, wrk to
# core 1) against a SQLite file on each directory given, e.g.
#
#   bench/load/issue_disk.sh /var/tmp/talos-issue /dev/shm/talos-issue
#   BENCH_MODE=import BENCH_BASE_KEYS=1000000 bench/load/issue_disk.sh /var/tmp/t /dev/shm/t
#
# A disk directory next to a tmpfs one separates the server's own time from
# the storage's (WAL writes, checkpoints and their fsyncs).
#
# Knobs: BENCH_MODE (issue | import, default issue), BENCH_RUNS (runs per
# directory, default 1), BENCH_BASE_KEYS (default 0: a fresh file each run;
# N: a file with N issued keys, seeded once through the store port into
# /var/tmp/talos-disk-base-N.db and copied in before each run),
# BENCH_LOG (a RUST_LOG for the server, e.g.
# info,talos::adapters::sql::sqlite=debug to see each checkpoint catch-up's
# `held_us` in $dir/server.log).
# Needs the release binary and load_tools (bench/load/run.sh builds both) and wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/talos-target}
TALOS=$CARGO_TARGET_DIR/release/talos
[ -x "$TALOS" ] || { echo "build first: cargo build --release --bin talos" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 DIR [DIR...]" >&2; exit 2; }
MODE=${BENCH_MODE:-issue}
RUNS=${BENCH_RUNS:-1}
BASE_KEYS=${BENCH_BASE_KEYS:-0}
case "$MODE" in
  issue) ARGS=(issue) ;;
  import) ARGS=(import 1000) ;;
  *) echo "BENCH_MODE must be issue or import" >&2; exit 2 ;;
esac
BASE=""
if [ "$BASE_KEYS" -gt 0 ]; then
  BASE=/var/tmp/talos-disk-base-$BASE_KEYS.db
  if [ ! -s "$BASE" ]; then
    TOOLS=$(load_tools_bin)
    rm -f "$BASE" "$BASE-wal" "$BASE-shm"
    "$TOOLS" seed "sqlite://$BASE" "$BASE_KEYS" "$BASE.keys" 1 >&2
    # One file to copy: fold the WAL in.
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()" "$BASE"
  fi
fi
PORT=14530
for dir in "$@"; do
  mkdir -p "$dir"
  for _ in $(seq 1 "$RUNS"); do
    rm -f "$dir/issue.db" "$dir/issue.db-wal" "$dir/issue.db-shm"
    [ -n "$BASE" ] && cp "$BASE" "$dir/issue.db"
    env -i PATH="$PATH" HOME="$HOME" RUST_LOG="${BENCH_LOG:-}" \
      TALOS_SECRETS_HMAC_CURRENT=bench-hmac-secret-0123456789abcdef-0123456789 \
      TALOS_DB_DSN="sqlite://$dir/issue.db?mode=rwc" \
      TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT=$PORT \
      TALOS_SERVE_METRICS_HOST=127.0.0.1 TALOS_SERVE_METRICS_PORT=$((PORT + 2)) \
      TALOS_CACHE_TYPE=memory TALOS_CREDENTIALS_ISSUER=bench-issuer \
      "$TALOS" serve >"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      curl -sf -o /dev/null "http://127.0.0.1:$((PORT + 2))/health/ready" && break
      sleep 0.1
    done
    taskset -a -cp 0 "$pid" >/dev/null
    printf '%-8s %-28s ' "$MODE" "$dir ($(df --output=fstype "$dir" | tail -n 1))"
    taskset -c 1 wrk -t1 -c1 -d10s -s bench/load/talos.lua "http://127.0.0.1:$PORT" -- "${ARGS[@]}" | grep RESULT
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$dir/issue.db" "$dir/issue.db-wal" "$dir/issue.db-shm"
done

#!/usr/bin/env bash
# Where the issue p99 goes: the same 10 s of `POST issuedApiKeys` at one
# connection (server pinned to core 0, wrk to core 1) against a fresh SQLite
# file on each directory given, e.g.
#
#   bench/load/issue_disk.sh /var/tmp/talos-issue /dev/shm/talos-issue
#
# A disk directory next to a tmpfs one separates the server's own time from
# the storage's (WAL writes and checkpoints). Needs the release binary
# (bench/load/run.sh builds it) and wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
TALOS=${CARGO_TARGET_DIR:-/var/tmp/talos-target}/release/talos
[ -x "$TALOS" ] || { echo "build first: cargo build --release --bin talos" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 DIR [DIR...]" >&2; exit 2; }
PORT=14530
for dir in "$@"; do
  mkdir -p "$dir"
  rm -f "$dir/issue.db" "$dir/issue.db-wal" "$dir/issue.db-shm"
  env -i PATH="$PATH" HOME="$HOME" \
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
  printf '%-28s ' "$dir ($(df --output=fstype "$dir" | tail -n 1))"
  taskset -c 1 wrk -t1 -c1 -d10s -s bench/load/talos.lua "http://127.0.0.1:$PORT" -- issue | grep RESULT
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$dir/issue.db" "$dir/issue.db-wal" "$dir/issue.db-shm"
done

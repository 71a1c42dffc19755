#!/usr/bin/env bash
# Profiles the talos server on the verify cache-hit path with perf:
#
#   bench/load/profile.sh [seconds]      # default 10 (BENCH_PERF_CALLGRAPH=dwarf for whole stacks)
#   BENCH_PROFILER=callgrind bench/load/profile.sh [seconds]   # default 40
#   BENCH_PROFILE_SERVER=bare ...        # the bare axum route instead of talos
#   BENCH_PROFILE_SERVER=proxy ...       # `talos proxy` (cache hits) in front of talos
#
# The callgrind mode runs the server under valgrind and prints the server's
# instructions per request (all its threads, user space, after the warm-up):
# a count that does not move with the VM's noise, for before/after figures
# (bench/RESULTS.md, evening round). Under valgrind, sha2 takes its portable
# path (no SHA extensions), so the HMAC counts ~10k instructions more than
# it costs natively; compare counts with each other, not with times.
#
# Seeds BENCH_KEYS (default 20000) keys into a temp SQLite db through the
# store port, starts `talos serve` (memory cache), warms the cache, then runs
# wrk (c=32, unpinned) while `perf record` samples the server. Prints the
# flat profile (top symbols) and leaves perf.data in the output dir.
# Needs the binaries built by bench/load/run.sh and `perf` (linux-perf).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/lib.sh
ROOT=$PWD
SECS=${1:-10}
KEYS=${BENCH_KEYS:-20000}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
SCRIPT_MODE=${BENCH_PROFILE_MODE:-verify}
TARGET=${BENCH_PROFILE_SERVER:-talos}
# Frame-pointer stacks (the default, `fp`) are cheap but break in code built
# without frame pointers; BENCH_PERF_CALLGRAPH=dwarf gives whole stacks (and
# inclusive costs per layer) at a lower sample rate.
PROFILER=${BENCH_PROFILER:-perf}
[ "$PROFILER" = callgrind ] && SECS=${1:-40}
CALLGRAPH=${BENCH_PERF_CALLGRAPH:-fp}
if [ "$CALLGRAPH" = fp ]; then FREQ=1999; else CALLGRAPH="$CALLGRAPH,32768"; FREQ=499; fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/talos-target}
OUT=${BENCH_OUT:-$ROOT/bench/load/results/profile-$(date -u +%Y%m%dT%H%M%SZ)}
WORK=$(mktemp -d /var/tmp/talos-prof.XXXXXX)
SECRET=bench-hmac-secret-0123456789abcdef-0123456789
mkdir -p "$OUT"
TALOS=${BENCH_TALOS_BIN:-$CARGO_TARGET_DIR/release/talos}
TOOLS=$(load_tools_bin)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

"$TOOLS" seed "sqlite://$WORK/p.db" "$KEYS" "$WORK/keys.txt" 1
VALGRIND=
[ "$PROFILER" = callgrind ] && VALGRIND="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out"
if [ "$TARGET" = bare ]; then
  # The baseline every ratio in bench/RESULTS.md refers to, on the same port.
  $VALGRIND "$TOOLS" bare 127.0.0.1:14460 >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 1500); do
    curl -sf -o /dev/null -d '{}' http://127.0.0.1:14460/v2alpha1/admin/apiKeys:verify && break
    sleep 0.2
  done
else
# With BENCH_PROFILE_SERVER=proxy, talos listens on 14470 (not profiled) and
# the proxy, profiled, on 14460.
PORT=14460 PORT_OPS=14462 TALOS_VALGRIND=$VALGRIND
[ "$TARGET" = proxy ] && PORT=14470 PORT_OPS=14472 TALOS_VALGRIND=
env -i PATH="$PATH" HOME="$HOME" TALOS_SECRETS_HMAC_CURRENT="$SECRET" \
  TALOS_DB_DSN="sqlite://$WORK/p.db" TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT=$PORT \
  TALOS_SERVE_METRICS_HOST=127.0.0.1 TALOS_SERVE_METRICS_PORT=$PORT_OPS \
  TALOS_CACHE_TYPE=memory TALOS_CACHE_ENABLED=true TALOS_CACHE_TTL=1h \
  TALOS_CREDENTIALS_ISSUER=bench-issuer TALOS_LOG_LEVEL="$LOG_LEVEL" \
  $TALOS_VALGRIND "$TALOS" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 1500); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT_OPS/health/ready" && break
  kill -0 "$SERVER" 2>/dev/null || { echo "talos exited:" >&2; tail -n 5 "$WORK/server.log" >&2; SERVER=; exit 1; }
  sleep 0.2
done
if [ "$TARGET" = proxy ]; then
  UPSTREAM=$SERVER
  cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    kill "$UPSTREAM" 2>/dev/null && wait "$UPSTREAM" 2>/dev/null
    rm -rf "$WORK"
  }
  TALOS_LOG_LEVEL="$LOG_LEVEL" $VALGRIND "$TALOS" proxy --upstream http://127.0.0.1:14470 \
    --listen 127.0.0.1:14460 --metrics-listen 127.0.0.1:14462 --cache-ttl 1h \
    --cache-max-size 1073741824 >"$WORK/proxy.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 1500); do
    curl -sf -o /dev/null http://127.0.0.1:14462/health/alive && break
    kill -0 "$SERVER" 2>/dev/null || { echo "proxy exited:" >&2; tail -n 5 "$WORK/proxy.log" >&2; SERVER=; exit 1; }
    sleep 0.2
  done
fi
# The proxy caches single verify answers only, so it is warmed one by one.
WARM_K=100
[ "$TARGET" = proxy ] && WARM_K=1
"$TOOLS" warm http://127.0.0.1:14460 "$WORK/keys.txt" "$WARM_K" "$KEYS" 4
fi
if [ "$PROFILER" = callgrind ]; then
  callgrind_control -z "$SERVER" >/dev/null 2>&1
  wrk -t1 -c4 -d"${SECS}s" --timeout 10s -s bench/load/talos.lua http://127.0.0.1:14460 -- "$SCRIPT_MODE" "$WORK/keys.txt" >"$OUT/wrk.txt" 2>&1
  callgrind_control -d "$SERVER" >/dev/null 2>&1
  sleep 2
  n=$(sed -nE 's/^RESULT requests=([0-9]+).*/\1/p' "$OUT/wrk.txt")
  total=$(callgrind_annotate "$OUT/callgrind.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "requests=$n instructions=$total per_request=$((total / n))" | tee "$OUT/instructions.txt"
  callgrind_annotate --inclusive=yes "$OUT/callgrind.out.1" 2>/dev/null | head -n 90 >"$OUT/top-inclusive.txt"
  echo "callgrind data: $OUT/callgrind.out.1 (callgrind_annotate --inclusive=yes)"
  exit 0
fi
wrk -t1 -c32 -d"$((SECS + 2))s" -s bench/load/talos.lua http://127.0.0.1:14460 -- "$SCRIPT_MODE" "$WORK/keys.txt" >"$OUT/wrk.txt" 2>&1 &
WRK=$!
sleep 1
perf record -F "$FREQ" --call-graph "$CALLGRAPH" -p "$SERVER" -o "$OUT/perf.data" -- sleep "$SECS" 2>"$OUT/perf-record.log"
wait "$WRK" || true
grep RESULT "$OUT/wrk.txt" || cat "$OUT/wrk.txt"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
  grep -E '^ +[0-9]' | head -n 60 | tee "$OUT/top-symbols.txt"
echo "perf data: $OUT/perf.data"

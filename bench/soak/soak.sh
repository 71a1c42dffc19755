#!/usr/bin/env bash
# Soak test for talos-rs (issue: hardening). Bounded, loopback only.
#
#   bench/soak/soak.sh            # 10 minutes
#   bench/soak/soak.sh 3          # 3 minutes
#   bench/soak/soak.sh --quick    # 1 minute, for a smoke run
#
# Builds the release binary, starts the server on a temp SQLite file with the
# memory cache, imports BENCH_SOAK_KEYS keys (default 10000) through the API,
# measures the maximum verify throughput (wrk, 10 s), then runs verify load at
# ~80 % of it with mixed admin traffic (issue, list, revoke) alongside for the
# whole duration. Resident memory is sampled every 10 s. Reports throughput,
# p50/p99/p999, errors and RSS at start (after a 30 s warm-up) and end, and
# fails if memory drifted more than 10 % or any request errored.
# Output: bench/soak/results/<stamp>.md (and the RSS samples as .tsv).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MIN=10
case "${1:-}" in
  --quick) MIN=1 ;;
  "") ;;
  *) MIN=$1 ;;
esac
KEYS=${BENCH_SOAK_KEYS:-10000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/talos-target}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench/soak/results
mkdir -p "$OUT"
WORK=$(mktemp -d /var/tmp/talos-soak.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet --bin talos
BIN=$CARGO_TARGET_DIR/release/talos
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
OPS=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
env -i PATH="$PATH" \
  TALOS_SECRETS_HMAC_CURRENT=soak-hmac-secret-0123456789abcdef-0123456789 \
  TALOS_CREDENTIALS_ISSUER=soak TALOS_DB_DSN="sqlite://$WORK/talos.db" \
  TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT="$PORT" \
  TALOS_SERVE_METRICS_HOST=127.0.0.1 TALOS_SERVE_METRICS_PORT="$OPS" \
  TALOS_CACHE_TYPE=memory TALOS_CACHE_ENABLED=true TALOS_LOG_LEVEL=warn \
  "$BIN" serve 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$OPS/health/ready" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"

# Seed keys through the API (imported keys: we know their raw values).
python3 - "$BASE" "$KEYS" "$WORK/keys.txt" <<'PY'
import json, sys, urllib.request
base, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [f"soak_key_{i:07d}_material" for i in range(n)]
for i in range(0, n, 1000):
    body = json.dumps({"requests": [{"raw_key": k, "name": "soak", "actor_id": f"soak-{j % 100}"}
                                    for j, k in enumerate(keys[i:i + 1000])]}).encode()
    req = urllib.request.Request(f"{base}/v2alpha1/admin/importedApiKeys:batchCreate", body,
                                 {"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
open(path, "w").write("\n".join(keys) + "\n")
PY

result() { grep '^RESULT' "$1" | sed 's/^RESULT //'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

echo "calibrating: 10 s of verify at 16 connections" >&2
wrk -t2 -c16 -d10s -s bench/soak/soak.lua "$BASE" -- verify "$WORK/keys.txt" 0 >"$WORK/cal.txt"
CAL=$(result "$WORK/cal.txt")
MAX=$(( $(field "$CAL" requests) * 1000000 / $(field "$CAL" duration_us) ))
TARGET=$(( MAX * 8 / 10 ))
# Two wrk threads over 16 connections, each pacing its requests at half the
# target rate on the monotonic clock (soak.lua).
PER_THREAD=$(( TARGET / 2 ))
echo "max ${MAX} req/s; soaking ${MIN} min at ~${TARGET} req/s (${PER_THREAD} req/s per wrk thread)" >&2

SECS=$(( MIN * 60 ))
wrk -t2 -c16 -d"${SECS}s" -s bench/soak/soak.lua "$BASE" -- verify "$WORK/keys.txt" "$PER_THREAD" >"$WORK/verify.txt" &
W1=$!
wrk -t1 -c2 -d"${SECS}s" -s bench/soak/soak.lua "$BASE" -- admin 50 >"$WORK/admin.txt" &
W2=$!
: >"$OUT/$STAMP-rss.tsv"
START_RSS=
for (( t = 0; t < SECS; t += 10 )); do
  sleep 10
  r=$(rss)
  echo -e "$((t + 10))\t$r" >>"$OUT/$STAMP-rss.tsv"
  if [ "$((t + 10))" -eq 30 ] || { [ -z "$START_RSS" ] && [ "$SECS" -lt 30 ]; }; then START_RSS=$r; fi
done
wait $W1 $W2 || true
END_RSS=$(rss)
START_RSS=${START_RSS:-$END_RSS}
V=$(result "$WORK/verify.txt"); A=$(result "$WORK/admin.txt")
RPS=$(( $(field "$V" requests) * 1000000 / $(field "$V" duration_us) ))
ARPS=$(( $(field "$A" requests) * 1000000 / $(field "$A" duration_us) ))
DRIFT=$(python3 -c "print(f'{($END_RSS-$START_RSS)*100/$START_RSS:+.1f}')")
ERRS=$(( $(field "$V" errors) + $(field "$V" non2xx) + $(field "$A" errors) + $(field "$A" non2xx) ))
{
  echo "# Soak $STAMP"
  echo
  echo "- command: \`bench/soak/soak.sh ${1:-}\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load avg at end $(cut -d' ' -f1 /proc/loadavg)"
  echo "- keys: $KEYS imported; memory cache on; SQLite; server log level warn"
  echo "- calibrated max verify: $MAX req/s; target 80 %: $TARGET req/s; achieved $(( RPS * 100 / (MAX > 0 ? MAX : 1) )) % of max"
  echo
  echo "| stream | req/s | p50 µs | p99 µs | p999 µs | errors | non-2xx |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| verify | $RPS | $(field "$V" p50) | $(field "$V" p99) | $(field "$V" p999) | $(field "$V" errors) | $(field "$V" non2xx) |"
  echo "| admin (issue/list/revoke) | $ARPS | $(field "$A" p50) | $(field "$A" p99) | $(field "$A" p999) | $(field "$A" errors) | $(field "$A" non2xx) |"
  echo
  echo "RSS after warm-up: ${START_RSS} KiB; at the end: ${END_RSS} KiB; drift ${DRIFT} % (limit ±10 %)."
} | tee "$OUT/$STAMP.md"
python3 -c "import sys; sys.exit(0 if abs($END_RSS-$START_RSS)*100 <= 10*$START_RSS else 1)" || { echo "FAIL: memory drifted more than 10 %" >&2; exit 1; }
[ "$ERRS" -eq 0 ] || { echo "FAIL: $ERRS failed requests" >&2; exit 1; }

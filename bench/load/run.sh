#!/usr/bin/env bash
# HTTP load harness for talos-rs. One command:
#
#   bench/load/run.sh            # full run: 1M keys, 10 s per measurement
#   bench/load/run.sh --quick    # 20k keys, 3 s per measurement
#
# It builds the release binary and the load helpers, seeds keys through the
# key-store port (SQLite files and a fresh PostgreSQL database — never
# through the HTTP API), starts talos (and a bare axum route, and the edge
# proxy) on loopback, and drives each scenario with wrk + bench/load/talos.lua
# at each connection count, with the server pinned to core 0 and wrk to
# core 1, then unpinned. Server CPU per request comes from
# /proc/<pid>/stat (utime+stime) deltas divided by the requests wrk counted.
#
# Knobs (environment): BENCH_KEYS (keys in the main SQLite db), BENCH_PG_KEYS,
# BENCH_SMALL_KEYS (list baseline, 10000), BENCH_PROXY_KEYS (keys warmed into
# the proxy, default min(KEYS,100000)), BENCH_DURATION (s), BENCH_CONNS
# ("1 32"), BENCH_PINS ("pinned unpinned"), BENCH_SCENARIOS (comma list, see
# `want` calls below; default all), BENCH_ROUNDS and BENCH_PAIRED_CONNS
# (rounds and connection counts of the `hit_paired` scenario, default 5 and
# 32), BENCH_LIST_ROUNDS (rounds of `list_paired`, default 3), BENCH_LOG_LEVEL (server log level,
# default info = the server default), BENCH_OUT (results dir),
# TALOS_TEST_POSTGRES_URL (admin DSN, default postgres://postgres@127.0.0.1:5432/test).
#
# Output: $BENCH_OUT/results.tsv (one row per measurement) and
# $BENCH_OUT/results.md (table with ratios to the bare route).
set -euo pipefail

cd "$(dirname "$0")/../.."
. bench/load/lib.sh
ROOT=$PWD
QUICK=${BENCH_QUICK:-0}
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then DEF_KEYS=20000; DEF_DUR=3; else DEF_KEYS=1000000; DEF_DUR=10; fi
KEYS=${BENCH_KEYS:-$DEF_KEYS}
PG_KEYS=${BENCH_PG_KEYS:-$KEYS}
SMALL_KEYS=${BENCH_SMALL_KEYS:-10000}
PROXY_KEYS=${BENCH_PROXY_KEYS:-$(( KEYS < 100000 ? KEYS : 100000 ))}
DUR=${BENCH_DURATION:-$DEF_DUR}
CONNS=${BENCH_CONNS:-"1 32"}
PINS=${BENCH_PINS:-"pinned unpinned"}
ONLY=${BENCH_SCENARIOS:-all}
ROUNDS=${BENCH_ROUNDS:-5}
LIST_ROUNDS=${BENCH_LIST_ROUNDS:-3}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
PG_ADMIN=${TALOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/talos-target}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/bench/load/results/$STAMP}
LOGS=$OUT/logs
WORK=$(mktemp -d /var/tmp/talos-load.XXXXXX)
LUA=$ROOT/bench/load/talos.lua
# Must equal benches/common/mod.rs SECRET (the seeder mints keys with it).
SECRET=bench-hmac-secret-0123456789abcdef-0123456789
NPROC=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
PG_DB=talos_bench_$$
PG_CREATED=
PIDS=()
mkdir -p "$OUT" "$LOGS"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
want() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$PG_CREATED" ]; then
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }

# ------------------------------------------------------------------ build
log "building release binary and load helpers (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --bin talos 2>&1 | tail -n 2 >&2
TALOS=$CARGO_TARGET_DIR/release/talos
TOOLS=$(load_tools_bin)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' (+ uncommitted src changes)')"
  echo "command: bench/load/run.sh $*"
  echo "knobs: KEYS=$KEYS PG_KEYS=$PG_KEYS SMALL_KEYS=$SMALL_KEYS PROXY_KEYS=$PROXY_KEYS DUR=${DUR}s CONNS='$CONNS' PINS='$PINS' LOG_LEVEL=$LOG_LEVEL SCENARIOS=$ONLY"
  echo "machine: nproc=$NPROC, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "wrk: $(wrk -v 2>&1 | head -n 1)"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

printf 'scenario\tconns\tpin\trps\tmean_us\tp50_us\tp99_us\tp999_us\tcpu_us_per_req\trequests\tstatus_errors\tsocket_errors\tloadavg1\n' > "$OUT/results.tsv"

# ---------------------------------------------------------------- helpers
wait_ready() { # url name pid
  local i
  for i in $(seq 1 600); do
    if curl -sf -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then
      echo "$2 exited during startup:" >&2; tail -n 20 "$LOGS/$2.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "$2 not ready after 120 s" >&2; tail -n 20 "$LOGS/$2.log" >&2; exit 1
}

# start_talos NAME DSN CACHE PORT [TALOS_X=Y ...] → sets SERVER_PID. Metrics on PORT+2.
start_talos() {
  local name=$1 dsn=$2 cache=$3 port=$4 enabled=true
  shift 4
  [ "$cache" = noop ] && enabled=false
  env -i PATH="$PATH" HOME="$HOME" \
    TALOS_SECRETS_HMAC_CURRENT="$SECRET" TALOS_DB_DSN="$dsn" \
    TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT="$port" \
    TALOS_SERVE_METRICS_HOST=127.0.0.1 TALOS_SERVE_METRICS_PORT=$((port + 2)) \
    TALOS_CACHE_TYPE="$cache" TALOS_CACHE_ENABLED=$enabled TALOS_CACHE_TTL=1h \
    TALOS_CACHE_MEMORY_MAX_SIZE=4294967296 \
    TALOS_CREDENTIALS_ISSUER=bench-issuer TALOS_LOG_LEVEL="$LOG_LEVEL" \
    "$@" "$TALOS" serve >>"$LOGS/$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ready "http://127.0.0.1:$((port + 2))/health/ready" "$name" "$SERVER_PID"
  log "$name ready (pid $SERVER_PID, $dsn, cache $cache)"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# RSS, and its anonymous part: SQLite's read connections map the database
# file, and RSS counts the mapped pages once per connection that touched
# them (page cache, shared and reclaimable); RssAnon is the process's own.
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
anon_mib() { awk '/RssAnon/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# measure SCENARIO URL PID LOGNAME -- lua args...
measure() {
  local scen=$1 url=$2 pid=$3 logname=$4 pin c t0 t1 line out
  shift 5
  out=$WORK/wrk.out
  for pin in $PINS; do
    local load=(wrk)
    if [ "$pin" = pinned ]; then
      taskset -a -cp 0 "$pid" >/dev/null
      load=(taskset -c 1 wrk)
    else
      taskset -a -cp "0-$((NPROC - 1))" "$pid" >/dev/null
    fi
    for c in $CONNS; do
      local la
      la=$(cut -d' ' -f1 /proc/loadavg)
      t0=$(cpu_ticks "$pid")
      "${load[@]}" -t1 -c"$c" -d"${DUR}s" --timeout 10s -s "$LUA" "$url" -- "$@" >"$out" 2>&1 || true
      t1=$(cpu_ticks "$pid")
      line=$(grep '^RESULT' "$out" || true)
      if [ -z "$line" ]; then
        log "$scen c=$c $pin: wrk produced no result"; cat "$out" >&2; continue
      fi
      local requests rps mean p50 p99 p999 se so cpu
      requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
      rps=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
      mean=$(sed -E 's/.* mean_us=([0-9.]+).*/\1/' <<<"$line")
      p50=$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")
      p99=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
      p999=$(sed -E 's/.* p999_us=([0-9]+).*/\1/' <<<"$line")
      se=$(sed -E 's/.* status_errors=([0-9]+).*/\1/' <<<"$line")
      so=$(sed -E 's/.* socket_errors=([0-9]+).*/\1/' <<<"$line")
      cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN {printf "%.1f", n ? d * 1e6 / hz / n : 0}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scen" "$c" "$pin" "$rps" "$mean" "$p50" "$p99" "$p999" "$cpu" "$requests" "$se" "$so" "$la" >>"$OUT/results.tsv"
      log "$(printf '%-22s c=%-3s %-8s %9.0f req/s  p50 %6s us  p99 %7s us  p999 %7s us  cpu %6s us/req  errors %s/%s  load %s' \
        "$scen" "$c" "$pin" "$rps" "$p50" "$p99" "$p999" "$cpu" "$se" "$so" "$la")"
      # Keep the per-request access logs from filling the disk.
      [ -n "$logname" ] && : >"$LOGS/$logname.log"
    done
  done
  taskset -a -cp "0-$((NPROC - 1))" "$pid" >/dev/null
}

# Asserts that a verify through BASE of the first credential in FILE is valid.
check_valid() { # base file [expected Ory-Talos-Cache]
  local cred resp
  cred=$(shuf -n 1 "$2")
  resp=$(curl -si "$1/v2alpha1/admin/apiKeys:verify" -d "{\"credential\":\"$cred\"}")
  grep -q '"is_valid":true' <<<"$resp" || { echo "verify via $1 is not valid:" >&2; echo "$resp" >&2; exit 1; }
  if [ -n "${3:-}" ]; then
    grep -qi "ory-talos-cache: $3" <<<"$resp" || { echo "expected cache $3 via $1:" >&2; echo "$resp" >&2; exit 1; }
  fi
}

warm() { # base file k count concurrency
  log "warming $1 with $4 keys ($3 per request)"
  "$TOOLS" warm "$1" "$2" "$3" "$4" "$5" 2>&1 | tee -a "$OUT/run.log" >&2
}

seed() { # dsn n file concurrency
  log "seeding $2 keys into $(sed -E 's#://[^@]*@#://#' <<<"$1") through the store port"
  "$TOOLS" seed "$1" "$2" "$3" "$4" 2>&1 | tee -a "$OUT/run.log" >&2
}

# -------------------------------------------------------------- scenarios
MAIN_DB=$WORK/main.db
MAIN_KEYS=$WORK/keys_main.txt
seed "sqlite://$MAIN_DB" "$KEYS" "$MAIN_KEYS" 1

# The bare route: the baseline every ratio refers to.
"$TOOLS" bare 127.0.0.1:14400 >>"$LOGS/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 1 100); do curl -s -o /dev/null -X POST -d '{}' http://127.0.0.1:14400/v2alpha1/admin/apiKeys:verify && break; sleep 0.1; done
measure bare http://127.0.0.1:14400 "$BARE_PID" "" -- verify "$MAIN_KEYS"
stop "$BARE_PID"

NEED_CACHED=0
for s in hit hit_paired batch100 jwt list_1m issue import1000 proxy; do want $s && NEED_CACHED=1; done
if [ "$NEED_CACHED" = 1 ]; then
  JWKS=$("$TALOS" jwk generate eddsa --kid bench-ed25519 --jwks)
  start_talos sqlite_memcache "sqlite://$MAIN_DB" memory 14420 \
    TALOS_CREDENTIALS_DERIVED_TOKENS_JWT_SIGNING_KEYS_URLS="base64://$(printf '%s' "$JWKS" | base64 -w0)"
  CACHED_PID=$SERVER_PID
  BASE=http://127.0.0.1:14420
  check_valid "$BASE" "$MAIN_KEYS"
  if want hit || want hit_paired || want batch100 || want proxy; then
    log "RSS before warm-up: $(rss_mib "$CACHED_PID") MiB (anonymous $(anon_mib "$CACHED_PID") MiB)"
    warm "$BASE" "$MAIN_KEYS" 100 "$KEYS" 4
    log "RSS after caching $KEYS keys: $(rss_mib "$CACHED_PID") MiB (anonymous $(anon_mib "$CACHED_PID") MiB)"
    echo "server RSS after caching $KEYS keys: $(rss_mib "$CACHED_PID") MiB, of which anonymous (the process's own memory): $(anon_mib "$CACHED_PID") MiB" >>"$OUT/meta.txt"
    check_valid "$BASE" "$MAIN_KEYS" HIT
  fi
  if want hit; then
    measure verify_hit "$BASE" "$CACHED_PID" sqlite_memcache -- verify "$MAIN_KEYS"
  fi
  # The same cache hits alternated with the bare route, round by round, both
  # servers up the whole time: the VM's stalls move the bare route's p99
  # between 1 and 15 ms from one minute to the next, so one bare measurement
  # at the start of the run cannot settle a p99 ratio. Summarised per round
  # and as medians in paired.md.
  if want hit_paired; then
    "$TOOLS" bare 127.0.0.1:14400 >>"$LOGS/bare.log" 2>&1 &
    PAIRED_BARE=$!
    PIDS+=("$PAIRED_BARE")
    for _ in $(seq 1 100); do curl -s -o /dev/null -X POST -d '{}' http://127.0.0.1:14400/v2alpha1/admin/apiKeys:verify && break; sleep 0.1; done
    CONNS_SAVED=$CONNS
    CONNS=${BENCH_PAIRED_CONNS:-32}
    for r in $(seq 1 "$ROUNDS"); do
      measure "paired_bare_$r" http://127.0.0.1:14400 "$PAIRED_BARE" "" -- verify "$MAIN_KEYS"
      measure "paired_hit_$r" "$BASE" "$CACHED_PID" sqlite_memcache -- verify "$MAIN_KEYS"
    done
    CONNS=$CONNS_SAVED
    stop "$PAIRED_BARE"
  fi
  if want batch100; then
    measure batch_verify_100 "$BASE" "$CACHED_PID" sqlite_memcache -- batch "$MAIN_KEYS" 100
  fi
  if want jwt; then
    : >"$WORK/jwts.txt"
    for _ in $(seq 1 20); do
      curl -sf "$BASE/v2alpha1/admin/apiKeys:derive" \
        -d "{\"credential\":\"$(shuf -n 1 "$MAIN_KEYS")\",\"algorithm\":\"TOKEN_ALGORITHM_JWT\",\"ttl\":\"1h\"}" |
        jq -r .token.token >>"$WORK/jwts.txt"
    done
    check_valid "$BASE" "$WORK/jwts.txt"
    measure derived_jwt_eddsa "$BASE" "$CACHED_PID" sqlite_memcache -- verify "$WORK/jwts.txt"
  fi
  if want list_1m; then
    measure "list_page50_at_$KEYS" "$BASE" "$CACHED_PID" sqlite_memcache -- list "page_size=50"
    measure "list_actor_page10_at_$KEYS" "$BASE" "$CACHED_PID" sqlite_memcache -- list "page_size=10&filter=actor_id%3D%22user-7%22"
  fi
  if want proxy; then
    head -n "$PROXY_KEYS" "$MAIN_KEYS" >"$WORK/keys_proxy.txt"
    "$TALOS" proxy --upstream "$BASE" --listen 127.0.0.1:14440 --metrics-listen 127.0.0.1:14441 \
      --cache-ttl 1h --cache-max-size 4294967296 >>"$LOGS/proxy.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_ready http://127.0.0.1:14441/health/alive proxy "$PROXY_PID"
    warm http://127.0.0.1:14440 "$WORK/keys_proxy.txt" 1 "$PROXY_KEYS" 8
    check_valid http://127.0.0.1:14440 "$WORK/keys_proxy.txt" HIT
    up0=$(cpu_ticks "$CACHED_PID")
    measure proxy_hit http://127.0.0.1:14440 "$PROXY_PID" proxy -- verify "$WORK/keys_proxy.txt"
    log "upstream CPU during the proxy runs: $(( ($(cpu_ticks "$CACHED_PID") - up0) * 1000 / CLK_TCK )) ms"
    stop "$PROXY_PID"
  fi
  if want issue; then
    measure issue "$BASE" "$CACHED_PID" sqlite_memcache -- issue
  fi
  if want import1000; then
    CONNS_SAVED=$CONNS
    CONNS="1"
    measure batch_import_1000 "$BASE" "$CACHED_PID" sqlite_memcache -- import 1000
    CONNS=$CONNS_SAVED
  fi
  stop "$CACHED_PID"
fi

if want miss_sqlite; then
  start_talos sqlite_noop "sqlite://$MAIN_DB" noop 14420
  check_valid http://127.0.0.1:14420 "$MAIN_KEYS" SKIP
  measure verify_miss_sqlite http://127.0.0.1:14420 "$SERVER_PID" sqlite_noop -- verify "$MAIN_KEYS"
  stop "$SERVER_PID"
fi

if want miss_pg; then
  psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
  PG_CREATED=1
  # Seeding speed only; reset before the server starts.
  psql "$PG_ADMIN" -qc "ALTER DATABASE $PG_DB SET synchronous_commit = off" >/dev/null
  PG_DSN="${PG_ADMIN%/*}/$PG_DB"
  seed "$PG_DSN" "$PG_KEYS" "$WORK/keys_pg.txt" 16
  psql "$PG_ADMIN" -qc "ALTER DATABASE $PG_DB RESET synchronous_commit" >/dev/null
  psql "$PG_DSN" -qc "VACUUM ANALYZE" >/dev/null
  start_talos pg_noop "$PG_DSN" noop 14430
  check_valid http://127.0.0.1:14430 "$WORK/keys_pg.txt" SKIP
  measure verify_miss_postgres http://127.0.0.1:14430 "$SERVER_PID" pg_noop -- verify "$WORK/keys_pg.txt"
  stop "$SERVER_PID"
fi

if want list_10k; then
  seed "sqlite://$WORK/small.db" "$SMALL_KEYS" "$WORK/keys_small.txt" 1
  start_talos sqlite_small "sqlite://$WORK/small.db" memory 14450
  measure "list_page50_at_$SMALL_KEYS" http://127.0.0.1:14450 "$SERVER_PID" sqlite_small -- list "page_size=50"
  measure "list_actor_page10_at_$SMALL_KEYS" http://127.0.0.1:14450 "$SERVER_PID" sqlite_small -- list "page_size=10&filter=actor_id%3D%22user-7%22"
  stop "$SERVER_PID"
fi

# The list target compares one page's time at 1M keys with its time at 10k.
# Measured minutes apart (list_1m, then list_10k above), the ratio moves by
# ±30 % between runs: the VM drifts, and the 1M server has by then cached 1M
# keys and served every earlier scenario. Here both servers start fresh with
# the same settings and stay up, and each round measures the 1M server and
# then the 10k one, query by query. Summarised per round and as medians in
# list_paired.md.
if want list_paired; then
  [ -s "$WORK/small.db" ] || seed "sqlite://$WORK/small.db" "$SMALL_KEYS" "$WORK/keys_small.txt" 1
  start_talos list_big "sqlite://$MAIN_DB" memory 14460
  BIG_PID=$SERVER_PID
  start_talos list_small "sqlite://$WORK/small.db" memory 14470
  SMALL_PID=$SERVER_PID
  # Cell by cell (query, pin, connections), so the two halves of a ratio
  # are taken 10 s apart.
  PINS_SAVED=$PINS
  CONNS_SAVED=$CONNS
  for r in $(seq 1 "$LIST_ROUNDS"); do
    for q in "page50 page_size=50" "actor10 page_size=10&filter=actor_id%3D%22user-7%22"; do
      set -- $q
      for PINS in $PINS_SAVED; do
        for CONNS in $CONNS_SAVED; do
          measure "listpair_big_${1}_$r" http://127.0.0.1:14460 "$BIG_PID" list_big -- list "$2"
          measure "listpair_small_${1}_$r" http://127.0.0.1:14470 "$SMALL_PID" list_small -- list "$2"
        done
      done
    done
  done
  PINS=$PINS_SAVED
  CONNS=$CONNS_SAVED
  stop "$BIG_PID"
  stop "$SMALL_PID"
fi

# ----------------------------------------------------------------- report
awk -F'\t' '
  NR == 1 { next }
  $1 == "bare" { brps[$2 FS $3] = $4; bp99[$2 FS $3] = $7 }
  { row[NR] = $0 }
  END {
    print "| scenario | conns | pin | req/s | p50 µs | p99 µs | p999 µs | server CPU µs/req | req/s ÷ bare | p99 ÷ bare | errors | load avg |"
    print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 2; i <= NR; i++) {
      split(row[i], f, FS)
      k = f[2] FS f[3]
      r = (k in brps && brps[k] > 0) ? sprintf("%.2f", f[4] / brps[k]) : "–"
      p = (k in bp99 && bp99[k] > 0) ? sprintf("%.2f", f[7] / bp99[k]) : "–"
      printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], f[6], f[7], f[8], f[9], r, p, f[11] + f[12], f[13]
    }
  }' "$OUT/results.tsv" >"$OUT/results.md"
# The median of a space-separated list; shared by the paired summaries.
AWK_MEDIAN='
    function median(list, n,   a, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }'
if grep -q '^paired_hit_' "$OUT/results.tsv"; then
  awk -F'\t' "$AWK_MEDIAN"'
    $1 ~ /^paired_bare_/ { r = substr($1, 13); k = $2 FS $3; brps[r FS k] = $4; bp99[r FS k] = $7 }
    $1 ~ /^paired_hit_/  { r = substr($1, 12); k = $2 FS $3; hrps[r FS k] = $4; hp99[r FS k] = $7; keys[k] = 1; rounds[r] = 1 }
    END {
      print "| conns | pin | round | bare req/s | hit req/s | req/s ÷ bare | bare p99 µs | hit p99 µs | p99 ÷ bare |"
      print "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
      for (k in keys) {
        split(k, kk, FS); rr = ""; pr = ""
        for (r = 1; r in rounds; r++) {
          if (!((r FS k) in brps) || !((r FS k) in hrps)) continue
          x = hrps[r FS k] / brps[r FS k]; y = hp99[r FS k] / bp99[r FS k]
          rr = rr " " x; pr = pr " " y
          printf "| %s | %s | %d | %.0f | %.0f | %.2f | %s | %s | %.2f |\n", kk[1], kk[2], r, brps[r FS k], hrps[r FS k], x, bp99[r FS k], hp99[r FS k], y
        }
        printf "| %s | %s | **median** | | | **%.2f** | | | **%.2f** |\n", kk[1], kk[2], median(rr), median(pr)
      }
    }' "$OUT/results.tsv" >"$OUT/paired.md"
  { echo; cat "$OUT/paired.md"; } >>"$OUT/results.md"
fi
if grep -q '^listpair_' "$OUT/results.tsv"; then
  # time ratio = 10k req/s ÷ 1M req/s (one connection: mean page time at 1M
  # ÷ at 10k); the target is <= 1.2.
  awk -F'\t' -v big="$KEYS" -v small="$SMALL_KEYS" "$AWK_MEDIAN"'
    $1 ~ /^listpair_/ {
      n = split($1, p, "_"); side = p[2]; r = p[n]; q = p[3]
      k = q FS $2 FS $3; rps[side FS r FS k] = $4; p50[side FS r FS k] = $6
      cells[k] = 1; rounds[r] = 1
    }
    END {
      printf "| query | conns | pin | round | req/s at %s | req/s at %s | page time ratio | p50 µs at %s | p50 µs at %s | p50 ratio |\n", big, small, big, small
      print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
      for (k in cells) {
        split(k, kk, FS); tr = ""; pr = ""
        for (r = 1; r in rounds; r++) {
          b = "big" FS r FS k; s = "small" FS r FS k
          if (!(b in rps) || !(s in rps) || rps[b] == 0 || p50[s] == 0) continue
          x = rps[s] / rps[b]; y = p50[b] / p50[s]
          tr = tr " " x; pr = pr " " y
          printf "| %s | %s | %s | %d | %.0f | %.0f | %.2f | %s | %s | %.2f |\n", kk[1], kk[2], kk[3], r, rps[b], rps[s], x, p50[b], p50[s], y
        }
        printf "| %s | %s | %s | **median** | | | **%.2f** | | | **%.2f** |\n", kk[1], kk[2], kk[3], median(tr), median(pr)
      }
    }' "$OUT/results.tsv" >"$OUT/list_paired.md"
  { echo; cat "$OUT/list_paired.md"; } >>"$OUT/results.md"
fi
log "done: $OUT/results.md"
cat "$OUT/results.md"

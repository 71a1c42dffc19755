#!/usr/bin/env bash
# Fuzzes the parsers with cargo-fuzz (libFuzzer), one target after another.
#
#   scripts/fuzz.sh [SECONDS]     fuzz each target for SECONDS (default 60)
#   scripts/fuzz.sh 0             regression only: run every committed seed
#                                 (fuzz/corpus/<target>) once, no fuzzing
#   FUZZ_RUNS=N scripts/fuzz.sh   fuzz each target for exactly N executions
#   FUZZ_TARGETS="filter v1_key"  only these targets (default: all)
#
# Targets live in fuzz/fuzz_targets; each says what it asserts. New inputs
# found while fuzzing go to a working corpus outside the tree
# ($FUZZ_WORK_DIR, default /var/tmp/talos-fuzz-corpus/<target>); the
# committed seeds in fuzz/corpus/<target> are read, never written. A crash
# leaves its input in fuzz/artifacts/<target>/ and makes the script fail.
#
# The committed seeds are kept small: after a long run, refresh them with
# libFuzzer's merge on edge coverage only, e.g. for one target
#   T=/var/tmp/talos-fuzz-target/x86_64-unknown-linux-gnu/release
#   mkdir /tmp/min && $T/filter -merge=1 -use_counters=0 -use_cmp=0 \
#       /tmp/min fuzz/corpus/filter /var/tmp/talos-fuzz-corpus/filter
# and copy /tmp/min into fuzz/corpus/filter (keeping the seed-* files that
# fuzz/make_seeds.py writes). `cargo test --test prop` replays them all.
#
# The machine has only a stable toolchain; cargo-fuzz needs -Z flags, so
# RUSTC_BOOTSTRAP=1 lets stable rustc/cargo accept them. Targets are built
# without a sanitizer (`-s none`): the fuzzed code is safe Rust, so
# AddressSanitizer would add cost and no findings; debug assertions and
# overflow checks stay on (cargo-fuzz's default).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
FUZZ_RUNS="${FUZZ_RUNS:-}"
ALL_TARGETS="credential_route v1_key filter page_token macaroon wire_json"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"
WORK="${FUZZ_WORK_DIR:-/var/tmp/talos-fuzz-corpus}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/talos-fuzz-target}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
CARGO_FUZZ_VERSION=0.13.2

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [seconds-per-target]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

FUZZ_FLAGS=(-s none --target-dir "$CARGO_TARGET_DIR")

echo "==> building fuzz targets (target dir $CARGO_TARGET_DIR)"
build_start=$(date +%s)
cargo fuzz build "${FUZZ_FLAGS[@]}"
echo "    built in $(( $(date +%s) - build_start ))s"

summary=()
passed=0
failed=0
for t in $TARGETS; do
    seeds="fuzz/corpus/$t"
    mkdir -p "$seeds" "$WORK/$t"
    log="$WORK/$t.log"
    if [[ -n "$FUZZ_RUNS" ]]; then
        mode="runs=$FUZZ_RUNS"
        args=(-runs="$FUZZ_RUNS")
        dirs=("$WORK/$t" "$seeds")
    elif [[ "$SECONDS_PER_TARGET" == 0 ]]; then
        # libFuzzer with -runs=0 executes every corpus input once and stops.
        mode="regression"
        args=(-runs=0)
        dirs=("$seeds")
    else
        mode="${SECONDS_PER_TARGET}s"
        args=(-max_total_time="$SECONDS_PER_TARGET")
        dirs=("$WORK/$t" "$seeds")
    fi
    echo "==> fuzz $t ($mode)"
    start=$(date +%s%N)
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "${dirs[@]}" -- \
        "${args[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
        passed=$((passed + 1))
    else
        status=FAILED
        failed=$((failed + 1))
        tail -n 40 "$log"
    fi
    elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    summary+=("$(printf '%-17s %-7s %12s execs %6d.%01ds %9s exec/s' "$t" "$status" "$execs" \
        $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$rate")")
done

echo
echo "==> fuzz summary ($mode; logs in $WORK/<target>.log)"
printf '    %s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[[ "$failed" == 0 ]]

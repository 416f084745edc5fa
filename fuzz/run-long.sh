#!/usr/bin/env bash
# Long fuzzing campaigns.
#
#   fuzz/run-long.sh [SECONDS_PER_TARGET] [TARGET...]
#
# With nightly Rust and cargo-fuzz installed, runs `cargo fuzz run TARGET` for the budget
# (libFuzzer, coverage-guided; corpus in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET).
# Otherwise runs the bounded tests (stable) in a loop, a fresh random seed each round, until
# the budget is spent; each round prints its seed and executions, and a failure stops with
# the input saved in fuzz/artifacts/TARGET/ (replay with FUZZ_REPLAY=FILE).
#
# Environment: FUZZ_ROUND_SECONDS (one round's budget per target in the stable loop, default
# 60), CARGO_TARGET_DIR as usual. Run from anywhere inside the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(compile differential internal_differential artifact wasi_paths policy)

if cargo +nightly fuzz --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        echo "== cargo fuzz run $t for ${budget}s"
        # -s none: the engine's trap handling owns SIGSEGV (guard pages), which ASan would take.
        cargo +nightly fuzz run "$t" -s none -- -max_total_time="$budget" -timeout=20 -rss_limit_mb=8192
    done
    exit 0
fi

echo "cargo-fuzz (nightly) not available: looping the bounded tests with fresh seeds"
round=${FUZZ_ROUND_SECONDS:-60}
cargo test -p fuzz --lib --no-run
for t in "${targets[@]}"; do
    end=$((SECONDS + budget))
    while [ $SECONDS -lt $end ]; do
        seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
        left=$((end - SECONDS))
        [ $left -lt $round ] && secs=$left || secs=$round
        echo "== $t: seed $seed, ${secs}s"
        FUZZ_SEED=$seed FUZZ_SECONDS=$secs cargo test -q -p fuzz --lib -- --exact "targets::$t::tests::fuzz_$t" --nocapture
    done
done

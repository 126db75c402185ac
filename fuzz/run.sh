#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a time budget each (default 60 s): the parsers of outside
# data (Secrets' PEM, CA answers, DNS answers, HTTP-01 requests, durations). Not part of
# tests/run.sh: it takes minutes. Exits non-zero on the first crash; libFuzzer writes the input to
# fuzz/artifacts/<target>/. The grown corpus is kept in fuzz/corpus/<target>/ (minimized with
# `cargo fuzz cmin` before committing).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The toolchain here is stable Rust:
# RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes, and `-s none` builds without a
# sanitizer (ferrocert has no unsafe parsing code; a panic is what we look for). Overflow checks
# and debug assertions stay on in the release build cargo-fuzz makes ([profile.release] in
# fuzz/Cargo.toml, the same as `cargo fuzz build --debug-assertions`): without them an arithmetic
# overflow on hostile input wraps silently and the fuzzer cannot see it.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
for target in $(cargo fuzz list); do
  echo "[fuzz] $target for ${seconds}s"
  cargo fuzz run -s none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|INFO: Running|==[0-9]+==|thread .* panicked|SUMMARY)' || true
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "[fuzz] $target crashed: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done

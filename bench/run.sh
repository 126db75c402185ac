#!/usr/bin/env bash
# Runs the benchmark (issue 7) at full size: builds the controller and the harness in release mode,
# starts the local environment configured for benchmarking (Pebble with PEBBLE_VA_NOSLEEP=1,
# authorization reuse off, nonce rejection at its default, and the deadlock fix of bench/pebble.sh),
# runs every scenario, prints the table
# and writes bench/results/bench-<time>.{json,txt} (controller logs next to them).
#
# The environment is left as it was found: if one was running, it is stopped first (Pebble must
# start with the benchmark's settings) and started again, fresh, at the end.
#
# Arguments go to the harness, e.g. `bench/run.sh --sizes 100 --scenarios latency,throughput`
# (`--help` lists them). Ports and the rest of the environment follow tests/env/ (override them the
# same way, e.g. APISERVER_PORT=...).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin ferrocert --bin ferrocert-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

was_running=no
if [ -f .testenv/run/kube-apiserver.pid ] && kill -0 "$(cat .testenv/run/kube-apiserver.pid)" 2>/dev/null; then
  was_running=yes
  echo "[bench] stopping the running environment to restart it with the benchmark's Pebble settings" >&2
  tests/env/down.sh
fi
original_cache=${FERROCERT_CACHE-}
restore() {
  tests/env/down.sh
  if [ "$was_running" = yes ]; then
    if [ -n "$original_cache" ]; then export FERROCERT_CACHE=$original_cache; else unset FERROCERT_CACHE; fi
    env -u PEBBLE_AUTHZREUSE tests/env/up.sh > /dev/null
  fi
}
trap restore EXIT

# Pebble with a deadlock fix (see bench/pebble.sh); the other binaries are the test environment's.
FERROCERT_CACHE=$(bench/pebble.sh)
export FERROCERT_CACHE
export PEBBLE_VA_NOSLEEP=1
export PEBBLE_AUTHZREUSE=0
unset PEBBLE_WFE_NONCEREJECT  # Pebble's default: 5% of good nonces rejected.
tests/env/up.sh > /dev/null
# shellcheck disable=SC1091
source .testenv/env.sh

"$target_dir/release/ferrocert-bench" --controller-bin "$target_dir/release/ferrocert" "$@"

#!/usr/bin/env bash
# Runs `cargo test --workspace --release` RUNS times while another process keeps every core
# busy, and counts the runs that failed. Each failed run's log is kept under
# target/contention/ for reading. This is how flakes that only show under load are found; it
# is not part of .ci/run (20 runs take about 15 minutes here).
#
# Usage: ci/contention.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
out=target/contention
mkdir -p "$out"
cargo test --workspace --release --no-run >/dev/null 2>&1

# One busy loop per core, at normal priority, for as long as the runs last.
hogs=()
for _ in $(seq "$(nproc)"); do
  ( while :; do :; done ) &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT

failed=0
for i in $(seq "$runs"); do
  if cargo test --workspace --release >"$out/run-$i.log" 2>&1; then
    rm -f "$out/run-$i.log"
    printf 'run %d/%d: ok\n' "$i" "$runs"
  else
    failed=$((failed + 1))
    printf 'run %d/%d: FAILED (%s)\n' "$i" "$runs" "$out/run-$i.log"
    grep -E '^test .* FAILED$|panicked at' "$out/run-$i.log" | head -5 || true
  fi
done
printf '%d of %d runs failed under contention\n' "$failed" "$runs"
[ "$failed" -eq 0 ]

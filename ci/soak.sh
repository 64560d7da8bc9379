#!/usr/bin/env bash
# A soak: examples/soak.rs's mixed load (spawns, foreign wakes, timers, file reads, aborts,
# panics, dropped futures, the blocking pool) for DURATION seconds, split evenly between the
# io_uring driver and the fallback driver. Each run asserts at its end that no task was lost,
# every drop-counting guard was dropped once, and descriptors and resident memory are flat.
#
# Usage: ci/soak.sh DURATION   (seconds; CI runs 60)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:?usage: ci/soak.sh DURATION (seconds)}"
half=$(( duration / 2 > 0 ? duration / 2 : 1 ))
cargo build --release --example soak
for driver in uring fallback; do
  printf -- '--- soak: %s driver, %s s\n' "$driver" "$half"
  WEFT_IO_DRIVER=$driver target/release/examples/soak --seconds "$half"
done
echo "soak passed"

#!/usr/bin/env bash
# Runs every example once (they are documentation and must not rot). The comparison runs
# in its smallest form; its full run is a benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --examples
for src in examples/*.rs; do
  name=$(basename "$src" .rs)
  case "$name" in
    compare) args=(--quick --filter single) ;;
    timer_memory) args=(weft) ;;
    soak) args=(--seconds 2) ;;
    pattern_op) args=(single ready callback 1 1000) ;;
    *) args=() ;;
  esac
  printf -- '--- example %s\n' "$name"
  timeout 300 "target/release/examples/$name" "${args[@]}" >/dev/null
done
echo "every example ran"

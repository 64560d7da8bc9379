#!/usr/bin/env bash
# Model-checks the task state machine (runtime/src/task/loom_tests.rs), the callback gather
# (runtime/src/callback/gather.rs), the wake paths of
# weft::sync (runtime/src/sync/loom_tests.rs) and the park/unpark
# handshake (reactor/src/driver.rs) with loom. A separate target dir keeps the `--cfg loom`
# build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release -p weft-runtime -p weft-reactor --lib loom

#!/usr/bin/env bash
# Model-checks with loom: the task state machine (runtime/src/task/loom_tests.rs), the
# callback gather (runtime/src/callback/gather.rs), the wake paths of weft::sync
# (runtime/src/sync/loom_tests.rs), the scheduler's idle accounting
# (runtime/src/scheduler/idle.rs), the local queue's overflow into the global queue at the
# loom capacity (runtime/src/scheduler/queue.rs), the thread parker's park/unpark
# (reactor/src/driver.rs) and the ring's AWAKE/PARKED/NOTIFIED handshake with an abstract
# eventfd (reactor/src/uring/handshake.rs). Every model's name contains `loom`. A separate target dir keeps the `--cfg loom`
# build from invalidating the normal one. `--cfg loom` changes every crate's flags, so this
# build shares nothing with the others; it skips the release profile's line tables.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom CARGO_PROFILE_RELEASE_DEBUG=false \
  cargo test --release -p weft-runtime -p weft-reactor --lib loom

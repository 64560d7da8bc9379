#!/usr/bin/env bash
# Runs the unsafe-heavy integration tests of weft-runtime (stress, shutdown, abort, panic,
# callback)
# under valgrind's memcheck: invalid reads/writes, use of freed task cells, and definite
# leaks (a task cell, future or output nobody frees) fail the run.
#
# The counts are scaled down with WEFT_STRESS_SCALE (default here 0.01: 1 M tasks -> 10 k),
# and the tests' hang limits raised with WEFT_TEST_WATCHDOG_SCALE (default here 10x), since
# everything runs ~50x slower under valgrind.
# It uses the release build the examples and benches use (the release profile keeps line
# tables, for readable valgrind stacks), and builds only the test targets it runs, with the
# workspace's features (`--workspace`, not `-p weft-runtime`, whose features differ), so no
# dependency is built twice.
#
# Usage: ci/valgrind.sh [extra test-harness args, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind is not installed" >&2
  exit 1
fi

export WEFT_STRESS_SCALE="${WEFT_STRESS_SCALE:-0.01}"
export WEFT_TEST_WATCHDOG_SCALE="${WEFT_TEST_WATCHDOG_SCALE:-10}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
# Workers park on a condition variable, not on io_uring: under valgrind (3.19 here) a
# worker waiting in io_uring_enter for another thread's wake-up stops the whole process
# (seen here: every thread asleep, one in io_cqring_wait; the same hang as liburing#657 and
# KDE bug 463859, valgrind's scheduler apparently not releasing its lock around that
# syscall). Memcheck could not follow the kernel's writes into the rings anyway.
export WEFT_IO_DRIVER="${WEFT_IO_DRIVER:-fallback}"

# callback: deferred closures behind task headers (task/deferred.rs), timer wakers and the
# composite helpers' shared state. sync_*: the oneshot cells, the mpsc buffers and the
# wait lists of the locks, with drop-counting payloads.
# lib: weft-runtime's own unit tests of the callback helpers' blocks (`callback::`: the
# gather and its held claims, the sequence hand-off, the race, the batch arena).
read -r -a TESTS <<< "${WEFT_VALGRIND_TESTS:-stress shutdown abort panic callback sync_oneshot sync_mpsc sync_mutex sync_semaphore sync_misc lib}"

# Build, and map each test target's name to its executable. One JSON object per line; the
# test targets are the artifacts with "kind":["test"] and a non-null executable.
targets=()
for t in "${TESTS[@]}"; do
  if [[ "$t" == lib ]]; then targets+=(--lib); else targets+=(--test "$t"); fi
done
json="$(cargo test --workspace --release --no-run --message-format=json "${targets[@]}")"

declare -A exe=()
list_tests() {
  if command -v jq >/dev/null; then
    jq -r 'select(.reason == "compiler-artifact" and .executable != null
                  and (.target.kind | index("test")))
           | [.target.name, .executable] | @tsv'
  else
    # cargo writes "target":{"kind":[...],...,"name":"..."...} before "executable":"...".
    grep '"reason":"compiler-artifact"' | grep '"kind":\["test"\]' |
      sed -n 's/.*"target":{[^}]*"name":"\([^"]*\)".*"executable":"\([^"]*\)".*/\1\t\2/p'
  fi
}
while IFS=$'\t' read -r name path; do
  exe["$name"]="$path"
done < <(printf '%s\n' "$json" | list_tests)
# The runtime's unit-test executable: its lib target's, built with `"test":true`.
lib_exe="$(printf '%s\n' "$json" | grep '"reason":"compiler-artifact"' | grep '"name":"weft_runtime"' |
  grep '"test":true' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
if [[ -n "$lib_exe" ]]; then exe[lib]="$lib_exe"; fi

status=0
for t in "${TESTS[@]}"; do
  bin="${exe[$t]:-}"
  if [[ -z "$bin" ]]; then
    echo "valgrind.sh: no test executable for '$t'" >&2
    exit 1
  fi
  filter=()
  if [[ "$t" == lib ]]; then filter=(callback::); fi
  printf '\n=== valgrind: %s (%s)\n' "$t" "$bin"
  # --fair-sched: the tests hand work between threads that spin-wait briefly.
  if valgrind \
      --error-exitcode=1 \
      --leak-check=full \
      --errors-for-leak-kinds=definite \
      --show-leak-kinds=definite \
      --fair-sched=yes \
      --quiet \
      "$bin" --test-threads=2 "${filter[@]}" "$@"; then
    echo "=== valgrind: $t: clean"
  else
    rc=$?
    # valgrind exits 1 (--error-exitcode) for memory errors and leaks; otherwise it passes
    # on the test binary's own status (101: a test failed; 124: the hang guard fired).
    case $rc in
      1) why="memcheck errors" ;;
      101) why="test failures (no memcheck errors)" ;;
      124) why="a test hung (no memcheck errors)" ;;
      *) why="exit $rc" ;;
    esac
    echo "=== valgrind: $t: FAILED: $why" >&2
    status=1
  fi
done

if [[ $status -ne 0 ]]; then
  echo "valgrind.sh: errors found" >&2
else
  echo "valgrind.sh: all clean"
fi
exit $status

#!/usr/bin/env bash
# hyper "hello" on weft against the same server on tokio (examples/http_bench.rs, release,
# 2 workers each), loaded with `wrk -t1 -c64 -d5s` alternately weft, tokio, weft, tokio...
# (3 rounds by default), printing requests/s, p99 latency and each server's CPU time per
# request (user + system, from /proc: less distorted by other load than the rates) side by
# side, and the median ratios; then, per weft round, the runtime's task polls, parks and
# ring submissions per request (`--stats` totals, read while the weft server is idle during
# tokio's round: counters, which load distorts far less than times). A benchmark, not a
# test: not part of .ci/run.
#
#   bash ci/http_bench.sh              # ROUNDS=3 DURATION=5s CONNECTIONS=64 WORKERS=2
#   ROUNDS=5 DURATION=10s bash ci/http_bench.sh
#   NICE=-20 ROUNDS=5 bash ci/http_bench.sh    # servers and wrk ahead of other load (root)
#   BIN=/path/to/http_bench bash ci/http_bench.sh   # a prebuilt binary (an A/B baseline): no build
#   STRACE=1 bash ci/http_bench.sh     # then one more round each under `strace -c -f`:
#                                      # each server's syscalls per request, by call
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-2}
NICE=${NICE:-}
# The prefix that runs the servers and wrk at $NICE (an exec, so `$!` is the server).
prio=()
if [ -n "$NICE" ]; then prio=(nice -n "$NICE"); fi

if ! command -v wrk >/dev/null; then
  # Debian's package; CI runs as root (as .ci/run installs valgrind).
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --example http_bench
  bin=target/release/examples/http_bench
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts a server on a kernel-chosen port; sets ${rt}_addr and ${rt}_pid. (Not in a
# subshell: the pid must reach `cleanup`.)
start() {
  local rt=$1 out="$tmp/$1.out" stats=()
  if [ "$rt" = weft ]; then stats=(--stats); fi
  ${prio[@]+"${prio[@]}"} "$bin" --runtime "$rt" --listen 127.0.0.1:0 --workers "$WORKERS" \
    ${stats[@]+"${stats[@]}"} >"$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$out"; then
      printf -v "${rt}_addr" '%s' "$(sed -n 's/^listening on //p' "$out")"
      printf -v "${rt}_pid" '%s' "$pid"
      return
    fi
    sleep 0.1
  done
  echo "the $rt server did not start:" >&2
  cat "$out" >&2
  exit 1
}

# A process's CPU time so far (user + system), in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# wrk's p99 ("99%  1.23ms") in microseconds.
p99_us() {
  awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
    if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 0
    printf "%.0f\n", v * m
  }' "$1"
}

# The weft server's latest totals line: "polls P parks K steals S ring_ops R".
weft_totals() {
  grep '^stats/total ' "$tmp/weft.out" | tail -n 1 | cut -d' ' -f2-
}

# Counter $1 of totals $3 minus totals $2, per request of wrk output $4.
per_req() {
  awk -v k="$1" -v a="$2" -v b="$3" '
    / requests in / {
      n = split(a, x, " "); split(b, y, " ")
      for (i = 1; i < n; i += 2) if (x[i] == k) { printf "%.2f\n", (y[i + 1] - x[i + 1]) / $1; exit }
    }' "$4"
}

rps() {
  awk '$1 == "Requests/sec:" { printf "%.0f\n", $2 }' "$1"
}

start weft
start tokio
echo "weft on $weft_addr, tokio on $tokio_addr; wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds${NICE:+, nice $NICE}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
# One short warm-up each (connections, page faults, the servers' first allocations).
${prio[@]+"${prio[@]}"} wrk -t1 -c"$CONNECTIONS" -d1s "http://$weft_addr/" >/dev/null
${prio[@]+"${prio[@]}"} wrk -t1 -c"$CONNECTIONS" -d1s "http://$tokio_addr/" >/dev/null
# The weft server's stats thread prints its totals once a second: let it print them idle.
sleep 1.2

ticks=$(getconf CLK_TCK)
# CPU microseconds per request of server $1 over round $2's wrk output.
cpu_us() {
  awk -v c="$1" -v t="$ticks" '/ requests in / { printf "%.1f\n", c * 1e6 / t / $1 }' "$2"
}

printf '%-6s %12s %12s %12s %12s %8s %8s %9s %9s\n' round weft_req/s tokio_req/s \
  weft_p99_us tokio_p99_us rps_x p99_x weft_cpu tokio_cpu
ratios=()
p99_ratios=()
cpu_ratios=()
counts=()
for round in $(seq "$ROUNDS"); do
  weft_before=$(weft_totals)
  for rt in weft tokio; do
    addr=${rt}_addr
    pid=${rt}_pid
    before=$(cpu_ticks "${!pid}")
    ${prio[@]+"${prio[@]}"} wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://${!addr}/" >"$tmp/$rt.$round"
    printf -v "${rt}_cpu" '%s' "$(cpu_us $(($(cpu_ticks "${!pid}") - before)) "$tmp/$rt.$round")"
  done
  # Read after tokio's round, while the weft server has been idle for its duration.
  weft_after=$(weft_totals)
  counts+=("$(printf '%-6s %10s %10s %10s' "$round" \
    "$(per_req polls "$weft_before" "$weft_after" "$tmp/weft.$round")" \
    "$(per_req ring_ops "$weft_before" "$weft_after" "$tmp/weft.$round")" \
    "$(per_req parks "$weft_before" "$weft_after" "$tmp/weft.$round")")")
  w=$(rps "$tmp/weft.$round")
  t=$(rps "$tmp/tokio.$round")
  wp=$(p99_us "$tmp/weft.$round")
  tp=$(p99_us "$tmp/tokio.$round")
  r=$(awk -v a="$w" -v b="$t" 'BEGIN { printf "%.3f", a / b }')
  pr=$(awk -v a="$wp" -v b="$tp" 'BEGIN { printf "%.3f", a / b }')
  cr=$(awk -v a="$weft_cpu" -v b="$tokio_cpu" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$r")
  p99_ratios+=("$pr")
  cpu_ratios+=("$cr")
  printf '%-6s %12s %12s %12s %12s %8s %8s %9s %9s\n' "$round" "$w" "$t" "$wp" "$tp" "$r" "$pr" \
    "$weft_cpu" "$tokio_cpu"
done

echo "weft per request (task polls, ring submissions, parks; tokio has no such counters):"
printf '%-6s %10s %10s %10s\n' round polls ring_ops parks
printf '%s\n' "${counts[@]}"
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median weft/tokio requests/s: $(median "${ratios[@]}")x (target >= 1.2)"
echo "median weft/tokio p99:        $(median "${p99_ratios[@]}")x (target <= 1.0)"
echo "median weft/tokio CPU/request: $(median "${cpu_ratios[@]}")x (server CPU µs per request)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

# Syscalls per request: a count, which load distorts far less than times (strace slows the
# server, so the batching of a traced round is not quite an untraced one's).
if [ -n "${STRACE:-}" ]; then
  if ! command -v strace >/dev/null; then
    apt-get update -qq && apt-get install -y -qq strace >/dev/null
  fi
  for rt in weft tokio; do
    addr=${rt}_addr
    pid=${rt}_pid
    strace -c -f -S calls -o "$tmp/$rt.strace" -p "${!pid}" 2>/dev/null &
    tracer=$!
    sleep 0.5
    ${prio[@]+"${prio[@]}"} wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://${!addr}/" >"$tmp/$rt.traced"
    kill -INT "$tracer"
    wait "$tracer" || true
    req=$(awk '/ requests in / { print $1 }' "$tmp/$rt.traced")
    # strace's table (sorted by calls): "% time seconds usecs/call calls [errors] syscall",
    # then "total"; the calls are field 4 on every line.
    awk -v rt="$rt" -v r="$req" '
      $NF == "total" { total = $4 }
      $1 ~ /^[0-9.]+$/ && $NF != "total" && n < 6 { line[++n] = sprintf("  %-18s %8.3f", $NF, $4 / r) }
      END {
        printf "%-6s syscalls per request: %.3f (%d requests)\n", rt, total / r, r
        for (i = 1; i <= n; i++) print line[i]
      }' "$tmp/$rt.strace"
  done
fi

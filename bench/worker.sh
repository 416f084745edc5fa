#!/usr/bin/env bash
# worker.sh -- jobs per second through one and two local `sandboxrun worker`s, for the hello
# module (examples/hello.wat), against direct `sandboxrun` runs of the same module (one at a
# time, and two at a time). Everything is local: a `nats-server -js` on a free 127.0.0.1 port,
# killed at the end.
#
# Usage:  cargo build --release && bench/worker.sh
#
# Environment (all optional):
#   SANDBOXRUN   the binary (default: target/x86_64-unknown-linux-gnu/release/sandboxrun)
#   JOBS         jobs per measurement (default: 300)
#   WORKER_JOBS  each worker's --jobs (default: the cores)
#
# How a worker measurement goes: a fresh NATS server; JOBS run jobs enqueued with
# `sandboxrun submit` (not timed: the workers are not started yet); then the workers start and
# the clock runs until the sum of their `sandboxrun_worker_jobs_done_total` (their --metrics
# pages) reaches JOBS. The workers' start (their server, their connection) is inside the time.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SANDBOXRUN=${SANDBOXRUN:-$ROOT/target/x86_64-unknown-linux-gnu/release/sandboxrun}
N=${JOBS:-300}
WORKER_JOBS=${WORKER_JOBS:-$(nproc)}
MODULE=$ROOT/examples/hello.wat
WORK=$(mktemp -d /tmp/sandboxrun-bench-worker.XXXXXX)
chmod 755 "$WORK"
export SANDBOXRUN_CACHE=$WORK/code-cache.sqlite
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v nats-server >/dev/null || { echo "worker.sh: needs nats-server (apt-get install nats-server)" >&2; exit 1; }
[ -x "$SANDBOXRUN" ] || { echo "worker.sh: no $SANDBOXRUN (cargo build --release, or set SANDBOXRUN)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; n, t0, t1 = map(float, sys.argv[1:]); print(f'{n / (t1 - t0):.1f} jobs/s ({t1 - t0:.2f} s)')" "$@"; }

# Direct runs (the code cache warmed first, as the workers' is by their first job).
"$SANDBOXRUN" "$MODULE" >/dev/null
t0=$(now)
for _ in $(seq "$N"); do "$SANDBOXRUN" "$MODULE" >/dev/null; done
t1=$(now)
echo "direct sandboxrun, one at a time:  $(rate "$N" "$t0" "$t1")"
t0=$(now)
seq "$N" | xargs -P 2 -I{} "$SANDBOXRUN" "$MODULE" >/dev/null
t1=$(now)
echo "direct sandboxrun, two at a time:  $(rate "$N" "$t0" "$t1")"

done_total() {
  local sum=0 port n
  for port in "$@"; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^sandboxrun_worker_jobs_done_total/ {s += $2} END {print s + 0}')
    sum=$((sum + n))
  done
  echo "$sum"
}

through_workers() {
  local workers=$1 dir="$WORK/nats-$1" port url
  port=$(free_port)
  url="nats://127.0.0.1:$port"
  nats-server -js -sd "$dir" -p "$port" -a 127.0.0.1 >/dev/null 2>&1 &
  local nats=$!
  PIDS+=("$nats")
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  for _ in $(seq "$N"); do "$SANDBOXRUN" submit --nats "$url" --run "$MODULE" >/dev/null; done
  local ports=() pids=()
  t0=$(now)
  for w in $(seq "$workers"); do
    local mport
    mport=$(free_port)
    ports+=("$mport")
    "$SANDBOXRUN" worker --nats "$url" --jobs "$WORKER_JOBS" --name "bench-$w" --cache-dir "$WORK/cache-$w" \
      --metrics "127.0.0.1:$mport" 2>/dev/null &
    pids+=($!)
    PIDS+=($!)
  done
  local deadline=$((SECONDS + 600))
  until [ "$(done_total "${ports[@]}" 2>/dev/null || echo 0)" -ge "$N" ]; do
    [ $SECONDS -lt $deadline ] || { echo "worker.sh: the workers did not finish" >&2; exit 1; }
    sleep 0.02
  done
  t1=$(now)
  echo "through $workers worker(s) (--jobs $WORKER_JOBS): $(rate "$N" "$t0" "$t1")"
  kill "${pids[@]}" "$nats" 2>/dev/null || true
  wait "${pids[@]}" "$nats" 2>/dev/null || true
}

through_workers 1
through_workers 2

#!/usr/bin/env bash
# Regenerates runner/link-order.txt, the order in which the linker places the functions of the
# sandboxrun binary (runner/build.rs passes it to rust-lld): the code a warm run touches first
# and together. Not part of the build; rerun after a dependency update or a large change to
# the warm path, then compare peak RSS (`sandboxrun -v`) before and after.
#
# Needs root (it drops the page cache and turns readahead off for a moment, so that every
# page of code a run touches faults once) and perf. It builds a profiling copy of the binary
# in which every function starts on its own page, so a fault names one function.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$HERE/..
WASM=${BENCH_WASM:-$HERE/build/wasm}
PROFILE_TARGET=${PROFILE_TARGET:-$ROOT/target/link-order}

# `--cfg no_prefault`: the copy must fault every page it uses, not map the old warm stretch ahead.
(cd "$ROOT" && CARGO_TARGET_DIR=$PROFILE_TARGET RUSTFLAGS="-C target-feature=+crt-static -C llvm-args=-align-all-functions=12 --cfg no_prefault" \
  CFLAGS="-falign-functions=4096" cargo build --release --bin sandboxrun)

TMP=$(mktemp -d)
chmod 755 "$TMP"  # run as root, sandboxrun runs the guest as uid 65534
dev=$(stat -c %d "$TMP")
ra=/sys/class/bdi/$((dev >> 8)):$((dev & 255))/read_ahead_kb
saved=$(cat "$ra")
trap 'echo "$saved" > "$ra"; rm -rf "$TMP"' EXIT
cp "$PROFILE_TARGET/x86_64-unknown-linux-gnu/release/sandboxrun" "$TMP/sandboxrun"
export SANDBOXRUN_CACHE=$TMP/cache.sqlite
mkdir "$TMP/data"
cat > "$TMP/policy.yaml" <<POLICY
version: 1
mounts:
  - { host: data, guest: /data, mode: ro }
env: { LANG: C }
limits: { memory: 64MiB, wall_time: 5s, cpu_time: 2s, output: 1MiB }
POLICY

# Warm runs first (their code leads the order): the default policy, a policy file, and a hit
# whose last use is old enough to be written (the cache's `touch`); then a cold run (a miss:
# compile and store), whose extra code follows.
age="import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('UPDATE artifacts SET last_used = 0'); c.commit()"
runs=("$TMP/sandboxrun $WASM/hello.wasm" "$TMP/sandboxrun -p $TMP/policy.yaml $WASM/hello.wasm"
      "$TMP/sandboxrun $WASM/hello.wasm" "$TMP/sandboxrun --cache $TMP/cold.sqlite $WASM/hello.wasm")
prepare=("true" "true" "python3 -c \"$age\" $SANDBOXRUN_CACHE" "true")
"$TMP/sandboxrun" "$WASM/hello.wasm" >/dev/null
echo 0 > "$ra"
for i in "${!runs[@]}"; do
  eval "${prepare[$i]}"
  sync
  echo 1 > /proc/sys/vm/drop_caches
  perf record -q -e page-faults -c 1 -d -o "$TMP/faults$i.data" ${runs[$i]} >/dev/null
done
# A run through a server (`sandboxrun serve`): the server, its slot and the prepared child
# are recorded together (perf follows forks), the client on its own.
perf record -q -e page-faults -c 1 -d -o "$TMP/faults-server.data" \
  "$TMP/sandboxrun" serve --socket "$TMP/server.sock" --pool 1 2>/dev/null &
perf_pid=$!
for _ in $(seq 100); do [ -S "$TMP/server.sock" ] && break; sleep 0.05; done
sleep 0.5
sync
echo 1 > /proc/sys/vm/drop_caches
perf record -q -e page-faults -c 1 -d -o "$TMP/faults-client.data" \
  "$TMP/sandboxrun" --server "$TMP/server.sock" "$WASM/hello.wasm" >/dev/null
sleep 0.5
pkill -TERM -f "$TMP/sandboxrun serve" || true
wait "$perf_pid" || true

# The warm runs' code between the two markers of runner/server/warm_text.rs, the cold run's after.
{
  for data in faults0 faults1 faults2 faults-server faults-client; do
    perf script -i "$TMP/$data.data" -F pid,addr --show-mmap-events 2>/dev/null
  done
  echo "--- cold"
  perf script -i "$TMP/faults3.data" -F pid,addr --show-mmap-events 2>/dev/null
} | python3 "$HERE/link_order.py" "$TMP/sandboxrun" > "$ROOT/runner/link-order.txt"
wc -l "$ROOT/runner/link-order.txt"

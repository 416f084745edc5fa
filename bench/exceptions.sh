#!/usr/bin/env bash
# Throwing and catching through a cleanup that rethrows (what C++ destructors compile to):
# exceptions/exnref.wat (catch_all_ref + throw_ref, wasi-sdk's encoding) and
# exceptions/legacy.wat (catch_all + rethrow, clang-19's -fwasm-exceptions), N throws each,
# under sandboxrun and Wasmtime in one hyperfine run (Wasmtime runs the standard encoding;
# its CLI needs `-W exceptions=y`).
# Needs: hyperfine, a release build of sandboxrun, a Wasmtime CLI.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SR=${SANDBOXRUN:-$HERE/../target/x86_64-unknown-linux-gnu/release/sandboxrun}
WASMTIME=${WASMTIME:-$HERE/programs/wasmtime}
N=${N:-500000}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'version: 1\nlimits: {memory: 64MiB}\n' > "$TMP/p.yaml"
hyperfine -N -w 1 -r "${RUNS:-5}" \
  -n "sandboxrun exnref" "$SR -p $TMP/p.yaml --invoke run $HERE/exceptions/exnref.wat $N" \
  -n "sandboxrun legacy" "$SR -p $TMP/p.yaml --invoke run $HERE/exceptions/legacy.wat $N" \
  -n "wasmtime exnref" "$WASMTIME run -W exceptions=y --invoke run $HERE/exceptions/exnref.wat $N"

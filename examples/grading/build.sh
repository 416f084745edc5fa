#!/usr/bin/env bash
# Rebuilds the example submissions and the interactor (*.c → *.wasm) with Debian's clang-19,
# lld-19 and wasi-libc: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
set -euo pipefail
cd "$(dirname "$0")"
for src in */submissions/*.c */output_validator/*.c; do
  clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -o "${src%.c}.wasm" "$src"
  echo "built ${src%.c}.wasm"
done

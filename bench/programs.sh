#!/usr/bin/env bash
# Real programs, start to end (issue #16; not a test): CPython `-c pass` and a small compute
# script, QuickJS, Yosys `-V` and a small synthesis, SQLite (one row, and 20,000 rows
# inserted, indexed and queried in memory), and the generated bigmod — sandboxrun
# (confinement on, code cache warm) beside `wasmtime run` (its cache warm) in one harness run,
# the runners interleaved (runloop.py); then each cold (sandboxrun --no-cache, wasmtime
# -C cache=n), and the peak memory of every process of one warm run: sandboxrun's supervisor
# and child, Wasmtime's process.
#
# Needs: a release build, the programs (./fetch_programs.sh), python3; BENCH_WASM (the
# workloads' build/wasm folder, ./build.sh) adds bigmod.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SR=${SANDBOXRUN:-$HERE/../target/x86_64-unknown-linux-gnu/release/sandboxrun}
P=${PROGRAMS:-$HERE/programs}
WASMTIME=${WASMTIME:-$P/wasmtime}
RUNS=${RUNS:-20}
COLD_RUNS=${COLD_RUNS:-2}
NOISE_MAX=${NOISE_MAX:-0.10}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Runs started by root run as nobody, who must read the mounted folder.
chmod 755 "$TMP"
export SANDBOXRUN_CACHE=$TMP/cache.sqlite
mkdir -p "$TMP/work"
cat > "$TMP/work/compute.py" <<'PY'
print(sum(i * i for i in range(300000)))
PY
cat > "$TMP/work/counter.v" <<'V'
module counter(input clk, input rst, output reg [7:0] q);
  always @(posedge clk) if (rst) q <= 0; else q <= q + 1;
endmodule
V
# -noabc: ABC writes its scripts under /tmp, which neither runner is given here.
printf 'read_verilog /work/counter.v\nsynth -top counter -noabc\nstat\n' > "$TMP/work/synth.ys"
cat > "$TMP/policy.yaml" <<YAML
version: 1
mounts:
  - {host: $TMP/work, guest: /work}
  - {host: $P/yosys-share, guest: /share}
limits: {memory: 2GiB, wall_time: 120s, cpu_time: 120s}
YAML

# name|module|arguments (no spaces inside an argument: runloop.py splits on whitespace)
programs=(
  "python_pass|$P/python.wasm|-c pass"
  "python_compute|$P/python.wasm|/work/compute.py"
  "quickjs|$P/quickjs.wasm|-e 1"
  "yosys_V|$P/yosys.wasm|-V"
  "yosys_synth|$P/yosys.wasm|-q -s /work/synth.ys"
)
[ -f "$P/sqlite.wasm" ] && programs+=("sqlite_1|$P/sqlite.wasm|1" "sqlite_20000|$P/sqlite.wasm|20000")
[ -n "${BENCH_WASM:-}" ] && programs+=("bigmod|$BENCH_WASM/bigmod.wasm|1")

sr() { echo "$SR ${3:-} -p $TMP/policy.yaml $1 $2"; }
wt() { echo "$WASMTIME run --dir $TMP/work::/work --dir $P/yosys-share::/share $1 $2"; }

echo "machine: $(nproc) cores, $(uname -r); $("$WASMTIME" --version); runs: $RUNS warm (interleaved), $COLD_RUNS cold"
warm=()
for entry in "${programs[@]}"; do
  IFS='|' read -r name module args <<<"$entry"
  # Fill both caches (and check both run it).
  $(sr "$module" "$args") >/dev/null 2>"$TMP/err" || echo "warning: sandboxrun $name failed: $(tail -1 "$TMP/err")"
  $(wt "$module" "$args") >/dev/null 2>&1 || echo "warning: wasmtime $name failed"
  warm+=("sandboxrun_$name=$(sr "$module" "$args")" "wasmtime_$name=$(wt "$module" "$args")")
done
python3 "$HERE/runloop.py" --runs "$RUNS" --warmup 2 --noise-max "$NOISE_MAX" --out-prefix "$TMP/warm" "${warm[@]}" >/dev/null

cold=()
for entry in "${programs[@]}"; do
  IFS='|' read -r name module args <<<"$entry"
  cold+=("sandboxrun_$name=$SR --no-cache -p $TMP/policy.yaml $module $args"
         "wasmtime_$name=$WASMTIME run -C cache=n --dir $TMP/work::/work --dir $P/yosys-share::/share $module $args")
done
python3 "$HERE/runloop.py" --runs "$COLD_RUNS" --warmup 0 --noise-max "$NOISE_MAX" --out-prefix "$TMP/cold" "${cold[@]}" >/dev/null

# Peak memory of one warm run: the supervisor's own (-v), the child's (report), Wasmtime's
# process (GNU time's maximum resident set).
for entry in "${programs[@]}"; do
  IFS='|' read -r name module args <<<"$entry"
  $(sr "$module" "$args" "-v --report $TMP/$name.report.json") 2>"$TMP/$name.log" >/dev/null || true
  /usr/bin/time -f %M -o "$TMP/$name.wasmtime_kib" $(wt "$module" "$args") >/dev/null 2>&1 || true
done

python3 - "$TMP" "${programs[@]}" <<'PY'
import json, re, statistics, sys
tmp, programs = sys.argv[1], [p.split("|")[0] for p in sys.argv[2:]]
def med(prefix, runner, name):
    with open(f"{tmp}/{prefix}__{runner}_{name}.json") as f:
        r = json.load(f)["results"][0]
    return statistics.median(r["times"]) * 1000
mib = lambda b: b / (1 << 20)
print("| program | wasmtime warm | sandboxrun warm | ratio | wasmtime cold | sandboxrun cold | supervisor peak | child peak | wasmtime peak |")
print("|---|---|---|---|---|---|---|---|---|")
for n in programs:
    w, s = med("warm", "wasmtime", n), med("warm", "sandboxrun", n)
    wc, sc = med("cold", "wasmtime", n), med("cold", "sandboxrun", n)
    log = open(f"{tmp}/{n}.log").read()
    sup = re.search(r"supervisor_peak_memory_bytes=(\d+)", log)
    child = json.load(open(f"{tmp}/{n}.report.json"))["peak_memory_bytes"]
    wt_kib = int(open(f"{tmp}/{n}.wasmtime_kib").read().split()[-1])
    print(f"| {n} | {w:.1f} ms | {s:.1f} ms | {s / w:.2f} | {wc:.0f} ms | {sc:.0f} ms | "
          f"{mib(int(sup.group(1))) if sup else float('nan'):.1f} MiB | {mib(child):.1f} MiB | {wt_kib / 1024:.1f} MiB |")
PY

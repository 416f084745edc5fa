#!/usr/bin/env bash
# bench.sh -- time the workloads built by build.sh under several runners and
# print markdown tables (also saved to $RESULTS/results.md).
#
# Usage:  ./build.sh && ./bench.sh
#
# Environment (all optional):
#   RUNNERS     runners for the workload table. Known runners:
#                 native          build/native/<w> (gcc -O2)
#                 native-clang    build/native-clang/<w> (clang -O2, the wasm compiler)
#                 wasmtime        wasmtime run, compiled-code cache on (warm)
#                 wasmtime-aot    wasmtime compile once, then run the .cwasm
#                 wasmtime-cold   wasmtime run -C cache=n (compiles every run)
#                 sandboxrun      sandboxrun -p policy.yaml (cache warm)
#                 sandboxrun-cold sandboxrun with its cache emptied before each run
#                 wasmi           wasmi interpreter (cargo install wasmi_cli; slow)
#               default: native native-clang wasmtime wasmtime-aot wasmtime-cold, plus
#               sandboxrun sandboxrun-cold when $SANDBOXRUN is on PATH
#   WORKLOADS   default: fib sieve matmul nbody sha256 fannkuch bintrees fileio fileio_1k
#   SECTIONS    default: "workloads startup compile rss"
#   RUNS, WARMUP                  runs / warmup runs per workload cell (default 7 / 1)
#   STARTUP_RUNS, STARTUP_WARMUP  for the startup/compile sections (default 30 / 3)
#   WASMTIME    wasmtime CLI     (default: wasmtime)
#   SANDBOXRUN  sandboxrun CLI   (default: sandboxrun)
#   WASMI       wasmi CLI        (default: wasmi; cargo install wasmi_cli)
#   SCRATCH     host dir for fileio, relative to this folder (default: scratch)
#   ARGS_<workload>  override a workload's arguments, e.g. ARGS_fib=30
#   RESULTS     output folder    (default: results/<UTC date-time>)
#   WAIT_IDLE, IDLE_TIMEOUT, NOISE_MAX, TRIES   load guard, see time_cmd
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"

WASMTIME=${WASMTIME:-wasmtime}
SANDBOXRUN=${SANDBOXRUN:-sandboxrun}
WASMI=${WASMI:-wasmi}
HYPERFINE=${HYPERFINE:-hyperfine}
PYTHON=${PYTHON:-python3}
TIME=${TIME_BIN:-/usr/bin/time}
POLICY=${POLICY:-policy.yaml}
SCRATCH=${SCRATCH:-scratch}
RUNS=${RUNS:-7}
WARMUP=${WARMUP:-1}
STARTUP_RUNS=${STARTUP_RUNS:-30}
STARTUP_WARMUP=${STARTUP_WARMUP:-3}
WORKLOADS=${WORKLOADS:-"fib sieve matmul nbody sha256 fannkuch bintrees fileio fileio_1k"}
SECTIONS=${SECTIONS:-"workloads startup compile rss"}
RESULTS=${RESULTS:-results/$(date -u +%Y%m%d-%H%M%S)}
# where sandboxrun keeps its SQLite code cache during the benchmark (see below)
export SANDBOXRUN_CACHE=${SANDBOXRUN_CACHE:-build/sandboxrun-cache.sqlite}

have() { command -v "$1" >/dev/null 2>&1; }
if [ -z "${RUNNERS:-}" ]; then
    RUNNERS="native native-clang wasmtime wasmtime-aot wasmtime-cold"
    have "$SANDBOXRUN" && RUNNERS="$RUNNERS sandboxrun sandboxrun-cold"
fi

# ---------------------------------------------------------------------------
# sandboxrun command templates -- EDIT HERE when sandboxrun's CLI settles.
# sandboxrun_cmd WASM ARGS...   prints the command line that runs WASM with
#   ARGS; policy.yaml mounts $SCRATCH read-write at /scratch.
# sandboxrun_clear_cache        prints a command (run by runloop.py/hyperfine before each
#   "sandboxrun-cold" run) that makes the next run a compile-cache miss. It
#   assumes sandboxrun takes its cache location from $SANDBOXRUN_CACHE; if it
#   grows a --no-cache flag instead, use that in a cold variant of the template.
# sandboxrun_compile_cmd WASM   prints a compile-only command (wasm -> cache,
#   no run) for the compile section, or nothing to skip it.
sandboxrun_cmd() {
    local wasm=$1
    shift
    echo "$SANDBOXRUN -p $POLICY $wasm $*"
}
sandboxrun_clear_cache() {
    echo "rm -f $SANDBOXRUN_CACHE $SANDBOXRUN_CACHE-journal"
}
sandboxrun_compile_cmd() {
    echo "$SANDBOXRUN compile $1"
}
# ---------------------------------------------------------------------------

# Program and arguments of each workload. @DIR@ stands for the scratch dir as
# the program sees it (host path natively, /scratch inside a sandbox).
# Native run time is ~1-3 s at these sizes on the reference machine.
workload_prog() {
    case $1 in
        fileio_*) echo fileio ;;
        *) echo "$1" ;;
    esac
}
workload_args() {
    local override="ARGS_$1"    # e.g. ARGS_fib=30 ./bench.sh to shrink a workload
    if [ -n "${!override:-}" ]; then
        echo "${!override}"
        return
    fi
    case $1 in
        fib) echo "43" ;;
        sieve) echo "64000000 3" ;;
        matmul) echo "1400" ;;
        nbody) echo "12000000 5" ;;
        sha256) echo "1024 400" ;;
        fannkuch) echo "11" ;;
        bintrees) echo "18" ;;
        fileio) echo "@DIR@ 64 64" ;;     # 64 MiB in 64 KiB chunks
        fileio_1k) echo "@DIR@ 64 1" ;;   # 64 MiB in 1 KiB chunks: per-call cost
        hello) echo "" ;;
        bigmod) echo "1" ;;
        *) echo "bench.sh: unknown workload $1" >&2; return 1 ;;
    esac
}

# runner_cmd RUNNER PROG ARGS...  prints the command line for one run
runner_cmd() {
    local runner=$1 prog=$2
    shift 2
    local args="$*" g="/scratch"
    case $runner in
        native)
            echo "build/native/$prog ${args//@DIR@/$SCRATCH}" ;;
        native-clang)
            echo "build/native-clang/$prog ${args//@DIR@/$SCRATCH}" ;;
        wasmtime)
            echo "$WASMTIME run --dir $SCRATCH::$g build/wasm/$prog.wasm ${args//@DIR@/$g}" ;;
        wasmtime-cold)
            echo "$WASMTIME run -C cache=n --dir $SCRATCH::$g build/wasm/$prog.wasm ${args//@DIR@/$g}" ;;
        wasmtime-aot)
            echo "$WASMTIME run --allow-precompiled --dir $SCRATCH::$g build/cwasm/$prog.cwasm ${args//@DIR@/$g}" ;;
        sandboxrun | sandboxrun-cold)
            sandboxrun_cmd "build/wasm/$prog.wasm" "${args//@DIR@/$g}" ;;
        wasmi)
            echo "$WASMI --dir $SCRATCH build/wasm/$prog.wasm ${args//@DIR@/$SCRATCH}" ;;
        *) echo "bench.sh: unknown runner $runner" >&2; return 1 ;;
    esac
}

# hyperfine --prepare command for a runner ("" = none)
runner_prepare() {
    case $1 in
        sandboxrun-cold) sandboxrun_clear_cache ;;
        *) echo "" ;;
    esac
}

runner_available() {
    case $1 in
        native) [ -x build/native/fib ] ;;
        native-clang) [ -x build/native-clang/fib ] ;;
        wasmtime*) have "$WASMTIME" ;;
        sandboxrun*) have "$SANDBOXRUN" ;;
        wasmi) have "$WASMI" ;;
        *) return 1 ;;
    esac
}

# run a command line once (no shell), stdout to $2
run_once() {
    local cmd=$1 out=$2
    local -a words
    read -ra words <<<"$cmd"
    "${words[@]}" >"$out" 2>"$out.err"
}

# ---- guarding against other load on the machine --------------------------
# Benchmarks on a small (2-core) machine are easily disturbed by anything
# else running. Before each cell we wait until the machine is idle; after it,
# we compare the machine's total busy CPU time during the cell with the CPU
# time hyperfine reports for our own runs. If others used more than
# NOISE_MAX (fraction of one core, default 0.10) on average, the cell is
# measured again (up to TRIES times, default 3); the last try is kept and its
# contention recorded in BASE.noise (shown with a dagger in the report).
WAIT_IDLE=${WAIT_IDLE:-1}          # 0 = never wait for an idle machine
IDLE_TIMEOUT=${IDLE_TIMEOUT:-1800} # seconds to wait before measuring anyway
NOISE_MAX=${NOISE_MAX:-0.10}
TRIES=${TRIES:-3}

cpu_ticks() { # busy and steal clock ticks of the whole machine since boot
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat
}

busy_cores() { # average number of busy cores over the next second
    local b0 s0 b1 s1
    read -r b0 s0 < <(cpu_ticks)
    sleep 1
    read -r b1 s1 < <(cpu_ticks)
    awk -v d=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", d / hz}'
}

wait_idle() {
    [ "$WAIT_IDLE" = 1 ] || return 0
    local waited=0 busy
    while busy=$(busy_cores) && awk -v b="$busy" -v m="$NOISE_MAX" 'BEGIN {exit !(b > m)}'; do
        [ "$waited" -eq 0 ] && echo "      (machine busy: $busy cores in use by others; waiting)"
        sleep 10
        waited=$((waited + 11))
        if [ "$waited" -ge "$IDLE_TIMEOUT" ]; then
            echo "      (still busy after ${waited}s; measuring anyway)"
            return 0
        fi
    done
    [ "$waited" -gt 0 ] && echo "      (idle again after ${waited}s)"
    return 0
}

# time_cmd BASE RUNS WARMUP PREPARE CMD  -> BASE.json (+ BASE.log, BASE.noise)
time_cmd() {
    local base=$1 runs=$2 warmup=$3 prepare=$4 cmd=$5
    local -a extra=()
    [ -n "$prepare" ] && extra=(--prepare "$prepare")
    echo "    $cmd"
    local try b0 s0 b1 s1 t0 t1 verdict
    for ((try = 1; try <= TRIES; try++)); do
        wait_idle
        read -r b0 s0 < <(cpu_ticks)
        t0=$(date +%s.%N)
        if ! "$HYPERFINE" -N --style basic --min-runs "$runs" --warmup "$warmup" "${extra[@]}" \
            --export-json "$base.json" "$cmd" >"$base.log" 2>&1; then
            echo fail >"$base.status"
            rm -f "$base.json"
            echo "      FAILED (see $base.log)"
            return 0
        fi
        t1=$(date +%s.%N)
        read -r b1 s1 < <(cpu_ticks)
        # prints a summary; exit status 1 if others used > NOISE_MAX cores
        if verdict=$("$PYTHON" - "$base.json" "$warmup" "$((b1 - b0))" "$((s1 - s0))" \
            "$t0" "$t1" "$(getconf CLK_TCK)" "$NOISE_MAX" "$base.noise" <<'PY'
import json, statistics, sys
path, warmup, busy, steal, t0, t1, hz, limit, noise_path = sys.argv[1:]
r = json.load(open(path))["results"][0]
t = r["times"]
ours = (r["user"] + r["system"]) * (len(t) + int(warmup))
wall = float(t1) - float(t0)
others = max(0.0, int(busy) / float(hz) - ours) / wall
stolen = int(steal) / float(hz) / wall
open(noise_path, "w").write("%.3f %.3f\n" % (others, stolen))
print("      median %.4f s  min %.4f  max %.4f  (n=%d)  others %.2f cores, steal %.2f"
      % (statistics.median(t), min(t), max(t), len(t), others, stolen))
# hyperfine's own work counts as "others"; only judge commands >= 20 ms
sys.exit(1 if others > float(limit) and statistics.median(t) >= 0.02 else 0)
PY
        ); then
            echo "$verdict"
            return 0
        fi
        echo "$verdict"
        [ "$try" -lt "$TRIES" ] && echo "      (disturbed by other load; measuring again)"
    done
    return 0
}

# check_output BASE RUNNER WORKLOAD CMD: run once, compare with native output
check_output() {
    local base=$1 runner=$2 w=$3 cmd=$4
    local prep
    prep=$(runner_prepare "$runner")
    if [ -n "$prep" ]; then
        local -a pw
        read -ra pw <<<"$prep"
        "${pw[@]}" || true
    fi
    if ! run_once "$cmd" "$base.out"; then
        echo fail >"$base.status"
        echo "      FAILED to run: $(head -c 300 "$base.out.err")"
        return 1
    fi
    if [ -f "$RESULTS/expected/$w.out" ] && ! cmp -s "$base.out" "$RESULTS/expected/$w.out"; then
        echo mismatch >"$base.status"
        echo "      OUTPUT MISMATCH: $(cat "$base.out") vs native $(cat "$RESULTS/expected/$w.out")"
    else
        echo ok >"$base.status"
    fi
    return 0
}

mkdir -p "$RESULTS/expected" "$SCRATCH" build/cwasm
# Started by root, sandboxrun runs as uid/gid 65534 (the policy's run_as): the rw mount must
# be writable by it.
if [ "$(id -u)" = 0 ]; then chown 65534:65534 "$SCRATCH"; fi

[ -f build/wasm/fib.wasm ] || { echo "bench.sh: run ./build.sh first" >&2; exit 1; }
active=""
for r in $RUNNERS; do
    if runner_available "$r"; then active="$active $r"; else echo "skipping runner $r (not found)"; fi
done
RUNNERS=${active# }
echo "runners: $RUNNERS"
echo "results: $RESULTS"

# ---- environment ----------------------------------------------------------
{
    echo "date:       $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:    $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "kernel:     $(uname -sr)"
    have "$WASMTIME" && echo "wasmtime:   $("$WASMTIME" --version)"
    have "$SANDBOXRUN" && echo "sandboxrun: $("$SANDBOXRUN" --version 2>/dev/null || echo '?')"
    have "$WASMI" && echo "wasmi:      $("$WASMI" --version 2>/dev/null || echo '?')"
    echo "wasm cc:    $(${WASM_CC:-clang-19} --version | head -1)"
    echo "native cc:  $(${NATIVE_CC:-gcc} --version | head -1)"
    echo "hyperfine:  $("$HYPERFINE" --version)"
    echo "runs:       $RUNS (+$WARMUP warmup) per workload cell, runners interleaved (runloop.py); >=$STARTUP_RUNS (+$STARTUP_WARMUP) per startup/compile cell (hyperfine -N)"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt"

# precompile .cwasm files for the aot runner
if [[ " $RUNNERS " == *" wasmtime-aot "* ]] || [[ " $SECTIONS " == *" startup "* ]]; then
    if have "$WASMTIME"; then
        for p in $(for w in $WORKLOADS hello bigmod; do workload_prog "$w"; done | sort -u); do
            "$WASMTIME" compile build/wasm/$p.wasm -o build/cwasm/$p.cwasm
        done
    fi
fi

# expected outputs come from the native build
for w in $WORKLOADS hello bigmod; do
    run_once "$(runner_cmd native "$(workload_prog "$w")" "$(workload_args "$w")")" \
        "$RESULTS/expected/$w.out" || echo "native $w failed"
done

# ---- section: workloads -----------------------------------------------------
# Timed with runloop.py: the runners' runs are interleaved round-robin so that
# drift in machine speed is shared by all runners of a workload.
if [[ " $SECTIONS " == *" workloads "* ]]; then
    d="$RESULTS/workloads"
    mkdir -p "$d"
    printf 'rows: %s\ncols: %s\n' "$WORKLOADS" "$RUNNERS" >"$d/order.txt"
    for w in $WORKLOADS; do
        prog=$(workload_prog "$w")
        args=$(workload_args "$w")
        echo "== $w"
        specs=()
        preps=()
        for r in $RUNNERS; do
            base="$d/${w}__$r"
            cmd=$(runner_cmd "$r" "$prog" "$args")
            echo "    $r: $cmd"
            # the check run also fills the code cache for cached runners
            check_output "$base" "$r" "$w" "$cmd" || continue
            specs+=("$r=$cmd")
            prep=$(runner_prepare "$r")
            [ -n "$prep" ] && preps+=(--prepare "$r=$prep")
        done
        [ ${#specs[@]} -gt 0 ] || continue
        "$PYTHON" runloop.py --runs "$RUNS" --warmup "$WARMUP" --noise-max "$NOISE_MAX" \
            --out-prefix "$d/$w" "${preps[@]}" "${specs[@]}"
    done
fi

# ---- section: startup ----------------------------------------------------------
if [[ " $SECTIONS " == *" startup "* ]]; then
    d="$RESULTS/startup"
    mkdir -p "$d"
    cols=""
    for c in native native-clang wasmtime-cold wasmtime wasmtime-aot sandboxrun-cold sandboxrun wasmi; do
        [[ " $RUNNERS " == *" $c "* ]] && cols="$cols $c"
    done
    printf 'rows: hello bigmod\ncols: %s\n' "$cols" >"$d/order.txt"
    for w in hello bigmod; do
        echo "== startup $w"
        for r in $cols; do
            base="$d/${w}__$r"
            cmd=$(runner_cmd "$r" "$w" "$(workload_args "$w")")
            check_output "$base" "$r" "$w" "$cmd" || continue
            time_cmd "$base" "$STARTUP_RUNS" "$STARTUP_WARMUP" "$(runner_prepare "$r")" "$cmd"
        done
    done
fi

# ---- section: compile only ------------------------------------------------------
if [[ " $SECTIONS " == *" compile "* ]]; then
    d="$RESULTS/compile"
    mkdir -p "$d"
    cols=""
    have "$WASMTIME" && cols="wasmtime-compile wasmtime-compile-1thread"
    [ -n "$(sandboxrun_compile_cmd build/wasm/hello.wasm)" ] && have "$SANDBOXRUN" && cols="$cols sandboxrun-compile"
    printf 'rows: bigmod sha256 hello\ncols: %s\n' "$cols" >"$d/order.txt"
    for w in bigmod sha256 hello; do
        echo "== compile $w ($(stat -c %s build/wasm/$w.wasm) bytes of wasm)"
        for c in $cols; do
            case $c in
                wasmtime-compile) cmd="$WASMTIME compile -C cache=n build/wasm/$w.wasm -o build/cwasm/$w.tmp.cwasm" ;;
                wasmtime-compile-1thread) cmd="$WASMTIME compile -C cache=n -C parallel-compilation=n build/wasm/$w.wasm -o build/cwasm/$w.tmp.cwasm" ;;
                sandboxrun-compile) cmd=$(sandboxrun_compile_cmd "build/wasm/$w.wasm") ;;
            esac
            prep=""
            [ "$c" = sandboxrun-compile ] && prep=$(sandboxrun_clear_cache)
            time_cmd "$d/${w}__$c" "$STARTUP_RUNS" "$STARTUP_WARMUP" "$prep" "$cmd"
        done
        rm -f build/cwasm/$w.tmp.cwasm
    done
fi

# ---- section: peak RSS ----------------------------------------------------------
if [[ " $SECTIONS " == *" rss "* ]]; then
    echo "== peak RSS (/usr/bin/time -v, one run each)"
    : >"$RESULTS/rss.tsv"
    for w in $WORKLOADS hello bigmod; do
        for r in $RUNNERS; do
            cmd=$(runner_cmd "$r" "$(workload_prog "$w")" "$(workload_args "$w")")
            prep=$(runner_prepare "$r")
            if [ -n "$prep" ]; then read -ra pw <<<"$prep"; "${pw[@]}" || true; fi
            read -ra words <<<"$cmd"
            if "$TIME" -v "${words[@]}" >/dev/null 2>"$RESULTS/rss.tmp"; then
                kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$RESULTS/rss.tmp")
            else
                kib=fail
            fi
            printf '%s\t%s\t%s\n' "$w" "$r" "$kib" >>"$RESULTS/rss.tsv"
        done
    done
    rm -f "$RESULTS/rss.tmp"
fi

"$PYTHON" report.py "$RESULTS" >"$RESULTS/results.md"
echo
cat "$RESULTS/results.md"

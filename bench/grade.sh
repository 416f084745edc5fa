#!/usr/bin/env bash
# Grading throughput (not a test): a problem with 200 tests (examples/grading/sum's statement,
# random inputs), the accepted C solution, the default checker, `--jobs 2`:
#   1. `sandboxrun grade` — tests per second, and the verdict table of 5 runs compared;
#   2. the same loop written by hand: one `sandboxrun` run and one `cmp` per test, 2 at a time.
# Needs: a release build (cargo build --release), python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SR=${SANDBOXRUN:-$HERE/../target/x86_64-unknown-linux-gnu/release/sandboxrun}
SUB=$HERE/../examples/grading/sum/submissions/ac.wasm
TESTS=${TESTS:-200}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"
export SANDBOXRUN_CACHE=$TMP/cache.sqlite
P=$TMP/problem
mkdir -p "$P/data/secret"
printf 'name: Sum\nlimits: {time_limit: 1, memory: 64}\n' > "$P/problem.yaml"
python3 - "$P/data/secret" "$TESTS" <<'EOF'
import random, sys
random.seed(1)
for i in range(int(sys.argv[2])):
    a, b = random.randint(-10**12, 10**12), random.randint(-10**12, 10**12)
    open(f"{sys.argv[1]}/{i:03}.in", "w").write(f"{a} {b}\n")
    open(f"{sys.argv[1]}/{i:03}.ans", "w").write(f"{a + b}\n")
EOF
chmod -R a+rX "$P"
"$SR" compile "$SUB" >/dev/null

echo "== sandboxrun grade, $TESTS tests, --jobs 2 (5 runs)"
for run in 1 2 3 4 5; do
  start=$(date +%s.%N)
  "$SR" grade --jobs 2 --format json "$P" "$SUB" > "$TMP/result-$run.json" || true
  end=$(date +%s.%N)
  python3 - "$TMP/result-$run.json" "$start" "$end" "$TESTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = float(sys.argv[3]) - float(sys.argv[2])
verdicts = [x["verdict"] for x in r["submissions"][0]["tests"]]
print(f"{t:.2f} s, {int(sys.argv[4]) / t:.0f} tests/s, verdicts: {dict((v, verdicts.count(v)) for v in set(verdicts))}")
EOF
done
python3 - "$TMP" <<'EOF'
import json, sys
tables = [[(x["id"], x["verdict"]) for x in json.load(open(f"{sys.argv[1]}/result-{i}.json"))["submissions"][0]["tests"]] for i in range(1, 6)]
print("verdict tables identical across the 5 runs:", all(t == tables[0] for t in tables))
EOF

echo "== by hand: one sandboxrun run and one cmp per test, 2 at a time"
printf 'version: 1\nlimits: {cpu_time: 1s, wall_time: 3s, memory: 64MiB}\n' > "$TMP/policy.yaml"
one() {
  local in=$1
  "$SR" -p "$TMP/policy.yaml" --stdin "$in" "$SUB" > "${in%.in}.out" && cmp -s "${in%.in}.out" "${in%.in}.ans"
}
export -f one
export SR SUB TMP
start=$(date +%s.%N)
ls "$P"/data/secret/*.in | xargs -P 2 -I{} bash -c 'one {}' || true
end=$(date +%s.%N)
python3 -c "t=$end-$start; print(f'{t:.2f} s, {$TESTS/t:.0f} tests/s')"

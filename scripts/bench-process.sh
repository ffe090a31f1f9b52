#!/usr/bin/env bash
# Whole-process timing of `plasmd run` on examples/hello: with the disk
# compile cache warm, beside Node.js's node:wasi running the same module in
# the same hyperfine run, and with an empty cache (the job runs on the
# interpreter and a detached `plasmd run --compile-only` fills the cache;
# each prepare step kills that compile and empties the cache, so no run
# overlaps the previous run's compile).
# Needs hyperfine (Debian package). Writes build/bench/process*.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
warm=$(mktemp -d)
empty=$(mktemp -d)
trap 'pkill -f "run --compile-only --data-dir $empty" || true; rm -rf "$warm" "$empty"' EXIT
hello=build/wasm/hello.wasm
./bin/plasmd run --compile-only --data-dir "$warm" "$hello"
hyperfine --warmup 3 --runs "${RUNS:-30}" -N \
  --export-markdown "$out/process.md" --export-json "$out/process.json" \
  -n 'plasmd run (disk cache warm)' "./bin/plasmd run --data-dir $warm $hello -- Hello, World" \
  -n 'node:wasi (Node.js)' "node --no-warnings scripts/node-wasi-run.mjs $hello Hello, World"
prepare="$out/empty-cache.sh"
cat >"$prepare" <<SH
#!/bin/sh
# SIGKILL: the compile ignores SIGTERM until it finishes (wazero's compile
# cannot be interrupted), and would then share the CPU with the next run.
pkill -KILL -f 'run --compile-only --data-dir $empty'
while pgrep -f 'run --compile-only --data-dir $empty' >/dev/null; do sleep 0.05; done
rm -rf '$empty/cache'
SH
chmod +x "$prepare"
hyperfine --runs "${RUNS:-30}" -N --prepare "$prepare" \
  --export-markdown "$out/process-empty.md" --export-json "$out/process-empty.json" \
  -n 'plasmd run (empty cache)' "./bin/plasmd run --data-dir $empty $hello -- Hello, World"
python3 - "$out/process.json" "$out/process-empty.json" <<'PY'
import json, sys
res = [r for f in sys.argv[1:] for r in json.load(open(f))["results"]]
for r in res:
    print(f'{r["command"]}: median {r["median"]*1000:.1f} ms, mean {r["mean"]*1000:.1f} ms ± {r["stddev"]*1000:.1f}')
print(f'warm plasmd run / Node.js (medians): {res[0]["median"]/res[1]["median"]:.2f}')
PY

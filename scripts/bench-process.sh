#!/usr/bin/env bash
# Whole-process timing of `plasmd run` on examples/hello with the disk
# compile cache warm, beside Node.js's node:wasi running the same module.
# Needs hyperfine (Debian package). Writes build/bench/process.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
hello=build/wasm/hello.wasm
./bin/plasmd run --data-dir "$data" "$hello" -- warm the cache >/dev/null
hyperfine --warmup 3 --runs "${RUNS:-30}" -N \
  --export-markdown "$out/process.md" --export-json "$out/process.json" \
  -n 'plasmd run (disk cache warm)' "./bin/plasmd run --data-dir $data $hello -- Hello, World" \
  -n 'node:wasi (Node.js)' "node --no-warnings scripts/node-wasi-run.mjs $hello Hello, World"
python3 - "$out/process.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f'{r["command"]}: median {r["median"]*1000:.1f} ms, mean {r["mean"]*1000:.1f} ms ± {r["stddev"]*1000:.1f}')
PY

#!/usr/bin/env bash
# The main job until the simulator lands: run the hello example in the local
# sandbox, write its signed receipt, and verify it against the node's peer ID.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-build/demo/local}
mkdir -p "$out"
data="$out/data"

peer=$(./bin/plasmd init --data-dir "$data" --json | sed -n 's/.*"peer_id":"\([^"]*\)".*/\1/p')
echo "node identity: $peer"
echo "\$ plasmd run build/wasm/hello.wasm -- Hello, World"
./bin/plasmd run --data-dir "$data" --receipt "$out/receipt.json" build/wasm/hello.wasm -- Hello, World | tee "$out/stdout.txt"
echo "\$ plasmd verify --peer $peer --stdout $out/stdout.txt $out/receipt.json"
./bin/plasmd verify --peer "$peer" --stdout "$out/stdout.txt" "$out/receipt.json"

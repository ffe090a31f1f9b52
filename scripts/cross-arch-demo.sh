#!/usr/bin/env bash
# Cross-architecture demo: an amd64 node and an arm64 node (the arm64
# binary run by qemu-aarch64-static, no binfmt needed) form a network on
# loopback; each submits examples/hello through its own API, so the job
# runs on the other node; both signed receipts are printed and verified,
# each with the other architecture's binary.
#
# Usage: scripts/cross-arch-demo.sh   (needs Go and qemu-user-static)
# Output: build/cross-arch/{amd64-to-arm64,arm64-to-amd64}.{receipt.json,stdout}
set -euo pipefail
cd "$(dirname "$0")/.."
qemu=${QEMU:-qemu-aarch64-static}
command -v "$qemu" >/dev/null || { echo "cross-arch-demo: $qemu not found (apt-get install qemu-user-static)" >&2; exit 2; }

out=build/cross-arch
rm -rf "$out"
mkdir -p "$out"
for a in amd64 arm64; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$a go build -trimpath -o "$out/plasmd-$a" ./cmd/plasmd
done
make --no-print-directory build/wasm/hello.wasm >/dev/null
hello=build/wasm/hello.wasm

# plasmd ARCH ARGS... runs that architecture's binary.
plasmd() {
	local arch=$1
	shift
	if [ "$arch" = arm64 ]; then "$qemu" "$out/plasmd-arm64" "$@"; else "$out/plasmd-amd64" "$@"; fi
}

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# start ARCH [BOOTSTRAP]: a node on free loopback ports; its API and
# libp2p addresses are read from its log.
declare -A api addr peer
start() {
	local arch=$1 boot=${2:-}
	local dir="$out/$arch"
	peer[$arch]=$(plasmd "$arch" init --data-dir "$dir" --json | sed -n 's/.*"peer_id":"\([^"]*\)".*/\1/p')
	local args=(start --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0)
	[ -z "$boot" ] || args+=(--bootstrap "$boot")
	plasmd "$arch" "${args[@]}" 2>"$out/$arch.log" &
	pids+=("$!")
	for _ in $(seq 300); do
		grep -q '"event":"node_started"' "$out/$arch.log" && grep -q '"event":"api_listening"' "$out/$arch.log" && break
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$out/$arch.log"; exit 1; }
		sleep 0.1
	done
	api[$arch]=$(sed -n 's/.*"event":"api_listening","addr":"\([^"]*\)".*/\1/p' "$out/$arch.log")
	addr[$arch]=$(sed -n 's/.*"event":"node_started".*"addrs":\["\([^"]*\)".*/\1/p' "$out/$arch.log")
	[ -n "${api[$arch]}" ] && [ -n "${addr[$arch]}" ] || { cat "$out/$arch.log"; exit 1; }
	echo "$arch node ${peer[$arch]}: libp2p ${addr[$arch]%/p2p/*}, API ${api[$arch]}"
}

start amd64
start arm64 "${addr[amd64]}"
for a in amd64 arm64; do plasmd "$a" status --api "${api[$a]}" | grep '^capabilities'; done

# submit FROM TO: FROM's API runs hello on the network; with two nodes it
# can only run on TO (a node never sends a job to itself). Retries while
# the nodes are still finding each other's records.
submit() {
	local from=$1 to=$2 name="$1-to-$2"
	local msg="Hello from $from to $to"
	echo
	echo "\$ plasmd submit --api ${api[$from]} --receipt $out/$name.receipt.json $hello -- $msg   # on the $from node"
	for i in $(seq 30); do
		if plasmd "$from" submit --api "${api[$from]}" --timeout 120 --receipt "$out/$name.receipt.json" \
			"$hello" -- "$msg" >"$out/$name.stdout" 2>"$out/$name.stderr"; then
			break
		fi
		[ "$i" -lt 30 ] || { cat "$out/$name.stderr"; exit 1; }
		sleep 2
	done
	cat "$out/$name.stdout"
	cat "$out/$name.stderr"
	grep -q "\"node_peer_id\": \"${peer[$to]}\"" "$out/$name.receipt.json" ||
		{ echo "cross-arch-demo: the receipt does not name the $to node ${peer[$to]}" >&2; exit 1; }
	echo "receipt ($name):"
	cat "$out/$name.receipt.json"
	# Verified again offline, by the other architecture's binary.
	echo "\$ plasmd verify --peer ${peer[$to]} --stdout $out/$name.stdout $out/$name.receipt.json   # $to binary"
	plasmd "$to" verify --peer "${peer[$to]}" --stdout "$out/$name.stdout" "$out/$name.receipt.json"
}

submit amd64 arm64
submit arm64 amd64
echo
echo "cross-arch-demo: both receipts verified (amd64 -> arm64, arm64 -> amd64)"

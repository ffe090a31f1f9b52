#!/usr/bin/env bash
# The PHP client's tests: local_test.php (vectors, no daemon), then
# remote_test.php against three real `plasmd start` daemons on loopback.
#
# Usage: examples/php/run-tests.sh            (from anywhere; `make php-test`)
# Env:   PLASMD     daemon binary (default ./bin/plasmd; built with `make build` if missing)
#        HELLO_WASM hello module (default build/wasm/hello.wasm; `make wasm` if missing)
#        PHP        php binary (default php)
#        NETWORK_TIMEOUT seconds to wait for the nodes to find each other (default 90)
# Exit status is non-zero when any test fails or the network does not form.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PHP="${PHP:-php}"
PLASMD="${PLASMD:-$ROOT/bin/plasmd}"
HELLO_WASM="${HELLO_WASM:-$ROOT/build/wasm/hello.wasm}"
NETWORK_TIMEOUT="${NETWORK_TIMEOUT:-90}"
export HELLO_WASM

command -v "$PHP" >/dev/null || { echo "php-test: $PHP not found (apt-get install php-cli)" >&2; exit 2; }
"$PHP" -r 'exit(extension_loaded("sodium") ? 0 : 1);' || { echo "php-test: PHP lacks the sodium extension" >&2; exit 2; }

status=0
PASSED=0
FAILED=0
# run_php NAME ARGS... runs a test script, echoing its output, and adds its
# closing "N passed, M failed" line to the totals (no such line: one failure).
run_php() {
	local out rc=0
	out="$(mktemp)"
	"$PHP" "$@" 2>&1 | tee "$out" || rc=$?
	local last
	last="$(tail -n 1 "$out")"
	rm -f "$out"
	if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		PASSED=$((PASSED + BASH_REMATCH[1]))
		FAILED=$((FAILED + BASH_REMATCH[2]))
	else
		FAILED=$((FAILED + 1))
	fi
	[ "$rc" -eq 0 ] || status=1
}

echo "== local_test.php"
run_php examples/php/local_test.php

[ -x "$PLASMD" ] || make build
for m in "$HELLO_WASM" "$(dirname "$HELLO_WASM")"/{exit7,loop,flood}.wasm; do [ -f "$m" ] || { make wasm; break; }; done

WORK="$(mktemp -d /tmp/php-test.XXXXXX)"
PIDS=()
cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		# Give each daemon a moment to shut down cleanly, then insist.
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ] || [ "$status" -ne 0 ]; then
		for log in "$WORK"/node*.log; do
			[ -f "$log" ] || continue
			echo "---- last lines of $log"
			tail -n 25 "$log"
		done
	fi
	rm -rf "$WORK"
	[ "$rc" -eq 0 ] || [ "$status" -ne 0 ] || FAILED=$((FAILED + 1)) # the harness itself failed
	echo "php-test: $PASSED passed, $FAILED failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nobody listens on right now; the same
# number serves the node's QUIC (UDP) listener.
free_port() {
	"$PHP" -r '$s = stream_socket_server("tcp://127.0.0.1:0"); echo substr(strrchr(stream_socket_get_name($s, false), ":"), 1);'
}

# api_get ADDR PATH [TOKEN_FILE] prints the body of a 200 answer, or fails.
api_get() {
	"$PHP" -r '$h = isset($argv[3]) ? "Authorization: Bearer " . trim(file_get_contents($argv[3])) . "\r\n" : "";
		$b = @file_get_contents("http://" . $argv[1] . $argv[2], false, stream_context_create(["http" => ["timeout" => 5, "header" => $h]]));
		if ($b === false || !str_contains($http_response_header[0] ?? "", " 200")) exit(1); echo $b;' "$@"
}

declare -a API P2P IDS
for i in 1 2 3; do
	dir="$WORK/node$i"
	mkdir -m 0700 "$dir"
	# node2, the one remote_test.php talks to, requires an API token.
	tokenflag=()
	[ "$i" -ne 2 ] || tokenflag=(--api-token)
	IDS[$i]="$("$PLASMD" init --data-dir "$dir" "${tokenflag[@]}" --json | "$PHP" -r 'echo json_decode(stream_get_contents(STDIN), true)["peer_id"] ?? "";')"
	[ -n "${IDS[$i]}" ] || { echo "php-test: plasmd init gave no peer ID" >&2; exit 1; }
	P2P[$i]="$(free_port)"
	API[$i]="127.0.0.1:$(free_port)"
	args=(start --data-dir "$dir" --listen "/ip4/127.0.0.1/tcp/${P2P[$i]}" --listen "/ip4/127.0.0.1/udp/${P2P[$i]}/quic-v1" --api "${API[$i]}")
	if [ "$i" -gt 1 ]; then
		args+=(--bootstrap "/ip4/127.0.0.1/tcp/${P2P[1]}/p2p/${IDS[1]}")
	fi
	"$PLASMD" "${args[@]}" >"$WORK/node$i.log" 2>&1 &
	PIDS+=("$!")
	echo "node$i ${IDS[$i]} p2p ${P2P[$i]} api ${API[$i]}"
done

deadline=$((SECONDS + NETWORK_TIMEOUT))
for i in 1 2 3; do
	until api_get "${API[$i]}" /healthz >/dev/null; do
		kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || { echo "php-test: node$i exited" >&2; exit 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "php-test: node$i API not healthy within ${NETWORK_TIMEOUT}s" >&2; exit 1; }
		sleep 0.2
	done
done

# The network has formed when node 2's /v1/find lists both other nodes
# (remote_test needs two for replicas=2).
TARGET="${API[2]}"
export PLASMD_API_TOKEN_FILE="$WORK/node2/api.token"
until n="$(api_get "$TARGET" /v1/find "$PLASMD_API_TOKEN_FILE" | "$PHP" -r '$self = $argv[1]; $f = json_decode(stream_get_contents(STDIN), true);
		echo count(array_filter(is_array($f) ? $f : [], fn($e) => ($e["peer_id"] ?? $self) !== $self));' "${IDS[2]}")" && [ "$n" -ge 2 ]; do
	[ "$SECONDS" -lt "$deadline" ] || { echo "php-test: node2 found ${n:-0} of 2 other nodes within ${NETWORK_TIMEOUT}s" >&2; exit 1; }
	sleep 1
done
echo "network formed: node2 finds $n other nodes"

echo "== remote_test.php against node2 (${TARGET})"
run_php examples/php/remote_test.php "$TARGET"
exit "$status"

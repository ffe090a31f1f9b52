<?php

// Runs jobs through a live node's local HTTP API and verifies every receipt
// here, with sodium, against the key in the peer ID of the node that ran the
// job — no call back into Go.
//
// Usage: php examples/php/remote_test.php [API_ADDR]
//   API_ADDR   default $PHASE_API or 127.0.0.1:4748
//   HELLO_WASM path of examples/hello built for wasip1 (default build/wasm/hello.wasm)
//   WASM_DIR   directory of the other test modules (default: HELLO_WASM's directory)
// Last line: "N passed, M failed"; exit status 0 only when all passed.

declare(strict_types=1);

require __DIR__ . '/src/autoload.php';
require __DIR__ . '/tests/Harness.php';

use Phase\ApiError;
use Phase\CheckFailed;
use Phase\Client;
use Phase\Expect;
use Phase\Json;
use Phase\PeerId;
use Phase\Receipt;
use Phase\Tests\Harness as H;

$root = dirname(__DIR__, 2);
$api = $argv[1] ?? (getenv('PHASE_API') ?: '127.0.0.1:4748');
$helloPath = getenv('HELLO_WASM') ?: "$root/build/wasm/hello.wasm";
$wasmDir = getenv('WASM_DIR') ?: dirname($helloPath);

$t = new H();
$c = new Client($api, 15.0);
$hello = @file_get_contents($helloPath);
$self = null;
$verified = null; // a verified hello result, for the tamper checks

$t->test("hello module readable at $helloPath", function () use ($hello) {
    H::true(is_string($hello) && str_starts_with($hello, "\0asm"), 'not a wasm module (run make wasm, or set HELLO_WASM)');
});

$t->test("API $api is healthy and says who it is", function () use ($c, &$self) {
    H::true($c->healthy(), 'GET /healthz did not answer {"status":"ok"}');
    $self = $c->node(); // checks public_key against peer_id
    printf("      talking to %s (version %s, %d peers)\n      addrs: %s\n", $self['peer_id'], $self['version'] ?? '?',
        $self['peers'] ?? -1, implode(' ', $self['addrs'] ?? []));
    H::true(str_starts_with($self['peer_id'], '12D3KooW'), 'Ed25519 peer ID');
});

$t->test('GET /v1/peers and /v1/find list the other nodes', function () use ($c, &$self) {
    $peers = $c->peers();
    H::true(count($peers) >= 1, 'no connected peers');
    $found = $c->find(['runtime' => 'wazero']);
    $others = array_filter($found, fn($f) => ($f['peer_id'] ?? '') !== ($self['peer_id'] ?? ''));
    printf("      %d connected, %d capable found (%d others)\n", count($peers), count($found), count($others));
    H::true(count($others) >= 1, 'find lists no other node');
    foreach ($found as $f) {
        PeerId::toPublicKey($f['peer_id']); // every node is an Ed25519 peer
    }
});

$t->test('hello "Hello, World" runs remotely and its receipt verifies here', function () use ($c, $hello, &$self, &$verified) {
    $res = $c->run($hello, ['Hello, World']); // throws CheckFailed unless the receipt verifies
    H::eq("dlroW ,olleH\n", $res->stdout, 'stdout');
    H::eq('exited', $res->outcome, 'outcome');
    H::eq(0, $res->exitCode, 'exit code');
    H::eq($res->node, $res->receipt->node_peer_id, 'receipt signer is the node that ran it');
    H::eq($self['peer_id'], $res->receipt->requester, 'requester is the API node');
    H::eq(Receipt::hashBytes($hello), $res->receipt->module_hash, 'module hash');
    printf("      ran on %s in %.1f ms (%d attempt%s), receipt %s signed by %s…\n", $res->node, $res->wallTimeMs,
        count($res->attempts), count($res->attempts) === 1 ? '' : 's', $res->receipt->job_id, substr($res->receipt->node_pubkey, 0, 16));
    $verified = $res;
});

$t->test('hello reads stdin when given no args (UTF-8 reversed by rune)', function () use ($c, $hello) {
    $res = $c->run($hello, [], "héllo wörld\n");
    H::eq("dlröw olléh\n", $res->stdout, 'stdout');
    H::eq("dlröw olléh\n", $res->stdoutText, 'stdout text field');
});

$t->test('a tampered copy of the verified receipt fails, naming the check', function () use (&$verified, $hello, $c) {
    H::true($verified !== null, 'no verified result to tamper with');
    $r = $verified->receipt;
    $exp = Expect::forJob($verified->node, $hello, ['Hello, World'], '', $verified->stdout, $verified->stderr);
    Receipt::verify($r, $exp); // the untouched copy passes

    $mut = fn(string $f, mixed $v) => (function () use ($r, $f, $v) {
        $x = Json::decode(json_encode($r, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
        $x->$f = $v;
        return $x;
    })();
    H::failsCheck('signature', fn() => Receipt::verify($mut('stdout_hash', Receipt::hashBytes("hacked\n")), $exp));
    H::failsCheck('signature', fn() => Receipt::verify($mut('exit_code', 1), $exp));
    H::failsCheck('signature', fn() => Receipt::verify($mut('wall_time_ms', $r->wall_time_ms + 1), $exp));
    $sig = $r->signature;
    H::failsCheck('signature', fn() => Receipt::verify($mut('signature', ($sig[0] === 'a' ? 'b' : 'a') . substr($sig, 1)), $exp));
    // Output bytes other than what the receipt hashes.
    H::failsCheck('stdout_hash', fn() => Receipt::verify($r, Expect::forJob($verified->node, $hello, ['Hello, World'], '', "dlroW ,olleH!\n", '')));
    // Another input or module than the one sent.
    H::failsCheck('input_hash', fn() => Receipt::verify($r, Expect::forJob($verified->node, $hello, ['Hello, World!'], '', null, null)));
    H::failsCheck('module_hash', fn() => Receipt::verify($r, Expect::forJob($verified->node, $hello . "\0", ['Hello, World'], '', null, null)));
    // The receipt is only good for the node that signed it.
    $other = null;
    foreach ($c->find() as $f) {
        if ($f['peer_id'] !== $verified->node) {
            $other = $f['peer_id'];
        }
    }
    H::true($other !== null, 'no other node to test the signer check with');
    H::failsCheck('signer', fn() => Receipt::verify($r, Expect::forJob($other, $hello, ['Hello, World'], '', null, null)));
    // A receipt re-signed by another key under that node's name.
    $forged = Receipt::sign($mut('stdout_hash', Receipt::hashBytes("hacked\n")), sodium_crypto_sign_secretkey(sodium_crypto_sign_keypair()));
    H::failsCheck('signature', fn() => Receipt::verify($forged, Expect::forJob($verified->node, $hello, ['Hello, World'], '', "hacked\n", null)));
});

$t->test('a garbage module fails cleanly (invalid_module receipt, or a clear API error)', function () use ($c) {
    $garbage = "this is not webassembly\n";
    try {
        $res = $c->run($garbage, ['x']);
    } catch (ApiError $e) {
        printf("      API error (HTTP %d): %s\n", $e->status, $e->getMessage());
        H::true(in_array($e->status, [400, 502], true), 'HTTP status 400 or 502');
        H::true(strlen($e->getMessage()) > 20, 'error says what went wrong');
        return;
    }
    printf("      outcome %s on %s, receipt verified\n", $res->outcome, $res->node);
    H::eq('invalid_module', $res->outcome, 'outcome');
    H::eq(-1, $res->exitCode, 'exit code');
    H::eq(Receipt::hashBytes($garbage), $res->receipt->module_hash, 'module hash');
});

$tokenFile = getenv('PLASMD_API_TOKEN_FILE') ?: null;
if ($tokenFile !== null) {
    $t->test('the API token (from $PLASMD_API_TOKEN_FILE) is required and sent', function () use ($api, $hello, $tokenFile) {
        $wrong = new Client($api, 15.0, str_repeat('0', 64));
        $e = H::throws(ApiError::class, fn() => $wrong->node(), 'token');
        H::eq(401, $e->status, 'status with a wrong token');
        $e = H::throws(ApiError::class, fn() => $wrong->submit($hello, ['x']), 'token');
        H::eq(401, $e->status, 'job with a wrong token');
        H::true($wrong->healthy(), '/healthz needs no token');
        $ok = new Client($api, 15.0, null, $tokenFile);
        H::true(str_starts_with($ok->node()['peer_id'], '12D3KooW'), 'GET /v1/node with the token');
        H::throws(\InvalidArgumentException::class, fn() => new Client($api, 15.0, null, $tokenFile . '.missing'), 'cannot read');
        H::throws(\InvalidArgumentException::class, fn() => new Client($api, 15.0, "abc\r\nX-Evil: 1"), 'printable');
    });
}

$t->test('a browser-style request is refused: foreign Host, foreign Origin, text/plain POST', function () use ($api, $hello, $tokenFile) {
    $auth = $tokenFile !== null ? 'Authorization: Bearer ' . trim((string) file_get_contents($tokenFile)) . "\r\n" : '';
    $raw = function (string $method, string $path, string $headers, string $body = '') use ($api): int {
        $ctx = stream_context_create(['http' => ['method' => $method, 'header' => $headers . "Connection: close\r\n",
            'content' => $body, 'timeout' => 10, 'ignore_errors' => true, 'protocol_version' => 1.1]]);
        $text = @file_get_contents("http://$api$path", false, $ctx);
        $h = function_exists('http_get_last_response_headers') ? http_get_last_response_headers() : ($http_response_header ?? []);
        H::true($text !== false && preg_match('#^HTTP/\S+\s+(\d{3})#', $h[0] ?? '', $m) === 1, "$method $path: no answer");
        return (int) $m[1];
    };
    H::eq(421, $raw('GET', '/v1/node', "Host: attacker.example\r\n" . $auth), 'GET with Host attacker.example');
    $job = json_encode(['module' => base64_encode($hello)]);
    H::eq(403, $raw('POST', '/v1/jobs', "Content-Type: text/plain\r\nOrigin: http://evil.example\r\n" . $auth, $job), 'text/plain POST from evil.example');
    H::eq(415, $raw('POST', '/v1/jobs', "Content-Type: text/plain\r\n" . $auth, $job), 'text/plain POST');
});

$t->test('an invalid request is refused with HTTP 400 naming the field', function () use ($c, $hello) {
    $e = H::throws(ApiError::class, fn() => $c->submit($hello, [], '', ['memory_mb' => 99999]), 'memory_mb');
    H::eq(400, $e->status, 'status');
});

$t->test('stderr and a non-zero exit code are bound by the receipt (exit7)', function () use ($c, $wasmDir) {
    $m = @file_get_contents("$wasmDir/exit7.wasm");
    H::true(is_string($m), "no $wasmDir/exit7.wasm (make wasm)");
    $res = $c->run($m);
    H::eq('exited', $res->outcome, 'outcome');
    H::eq(7, $res->exitCode, 'exit code');
    H::eq('bye', rtrim($res->stderr), 'stderr');
    H::eq(Receipt::hashBytes($res->stderr), $res->receipt->stderr_hash, 'stderr hash');
});

$t->test('an infinite loop times out with a verified timeout receipt (loop, 1 s)', function () use ($c, $wasmDir) {
    $m = @file_get_contents("$wasmDir/loop.wasm");
    H::true(is_string($m), "no $wasmDir/loop.wasm (make wasm)");
    $res = $c->run($m, [], '', ['timeout_seconds' => 1]);
    H::eq('timeout', $res->outcome, 'outcome');
    H::eq(-1, $res->exitCode, 'exit code');
    H::eq(1000, $res->receipt->limits->timeout_ms, 'applied timeout');
});

$t->test('an output flood is truncated at the applied cap and still verifies (flood, 2 s)', function () use ($c, $wasmDir) {
    $m = @file_get_contents("$wasmDir/flood.wasm");
    H::true(is_string($m), "no $wasmDir/flood.wasm (make wasm)");
    $res = $c->run($m, [], '', ['timeout_seconds' => 2]);
    printf("      outcome %s, %d stdout bytes, cap %d\n", $res->outcome, strlen($res->stdout), $res->receipt->limits->stdout_cap);
    H::true($res->stdoutTruncated, 'stdout_truncated');
    H::true(strlen($res->stdout) <= $res->receipt->limits->stdout_cap, 'no more than the cap');
    H::true(strlen($res->stdout) > 0, 'some output');
});

$t->test('replicas=2 in deterministic mode: two distinct nodes agree', function () use ($c, $hello) {
    $res = $c->run($hello, ['replicated'], '', ['replicas' => 2, 'deterministic' => true, 'seed' => 42]);
    H::eq("detacilper\n", $res->stdout, 'stdout');
    H::eq(2, count(array_unique($res->replicas)), 'distinct replica nodes');
    H::true(in_array($res->node, $res->replicas, true), 'the receipt\'s node is one of the replicas');
    H::true($res->receipt->deterministic, 'receipt says deterministic');
});

$t->test('GET /metrics is Prometheus text', function () use ($c) {
    $m = $c->metrics();
    H::true(str_contains($m, '# TYPE '), 'no # TYPE lines');
});

$t->finish();

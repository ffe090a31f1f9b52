<?php

// A stand-in for a node's local API, for local_test.php: `php -S` serves it,
// so the client's HTTP handling and its checks on responses can be tested
// without a daemon. The first path segment picks a behaviour, e.g.
// /ok/v1/jobs answers honestly and /forged/v1/jobs returns a receipt signed by
// another key. The fake node runs "hello" itself: stdout is the args joined
// by spaces, reversed, with a newline.

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';

use Phase\PeerId;
use Phase\Receipt;

$kpA = sodium_crypto_sign_seed_keypair(hex2bin('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'));
$kpB = sodium_crypto_sign_seed_keypair(hex2bin('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f'));
$idA = PeerId::fromPublicKey(sodium_crypto_sign_publickey($kpA));
$idB = PeerId::fromPublicKey(sodium_crypto_sign_publickey($kpB));

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (preg_match('#^/([a-z0-9-]+)(/.*)$#', $path, $m) !== 1) {
    reply(404, ['error' => 'no mode in path']);
}
[, $mode, $route] = $m;

function reply(int $status, mixed $body): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo is_string($body) ? $body : json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    exit;
}

if ($route === '/healthz') {
    reply(200, ['status' => 'ok']);
}
if ($route === '/v1/node') {
    $pub = bin2hex(sodium_crypto_sign_publickey($mode === 'bad-node-key' ? $kpB : $kpA));
    reply(200, ['peer_id' => $idA, 'public_key' => $pub, 'addrs' => ['/ip4/127.0.0.1/tcp/1'], 'version' => 'fake',
        'peers' => 0, 'routing_table_size' => 0, 'uptime_seconds' => 1.5, 'record' => null]);
}
if ($route !== '/v1/jobs' || $_SERVER['REQUEST_METHOD'] !== 'POST') {
    reply(404, ['error' => "no route $route"]);
}

$req = json_decode(file_get_contents('php://input'), true);
$module = base64_decode($req['module'] ?? '', true);
if ($module === '' || $module === false) {
    reply(400, ['error' => 'job request: module: missing or empty (base64 of the .wasm bytes)']);
}
$args = $req['args'] ?? [];
$stdin = base64_decode($req['stdin'] ?? '', true);

switch ($mode) {
    case 'err502':
        reply(502, ['error' => 'no node could run the job: 1 tried', 'attempts' => [
            ['node' => $idB, 'outcome' => 'rejected', 'reason' => 'queue_full', 'detail' => 'busy', 'duration_ms' => 1.25]]]);
    case 'err400':
        reply(400, ['error' => 'job request: memory_mb: 99999 out of range 0–32768 (0: default)']);
    case 'notjson':
        reply(200, '<html>oops</html>');
    case 'slow':
        sleep(3);
        break;
}

$stdout = strrev(implode(' ', $args)) . "\n";
$finish = 1795681801;
$r = [
    'version' => '1', 'module_hash' => Receipt::hashBytes($mode === 'wrong-module' ? $module . 'x' : $module),
    'exit_code' => 0, 'wall_time_ms' => 3, 'timestamp' => $finish,
    'node_pubkey' => bin2hex(sodium_crypto_sign_publickey($kpA)), 'job_id' => 'fake-1', 'nonce' => str_repeat('ab', 32),
    'requester' => $mode === 'other-requester' ? $idB : $idA, 'node_peer_id' => $idA,
    'input_hash' => Receipt::inputHash($mode === 'wrong-input' ? [...$args, 'extra'] : $args, $stdin),
    'stdout_hash' => Receipt::hashBytes($stdout), 'stderr_hash' => Receipt::hashBytes(''),
    'stdout_truncated' => false, 'stderr_truncated' => false, 'outcome' => 'exited', 'deterministic' => false,
    'limits' => ['memory_mb' => 256, 'timeout_ms' => 30000, 'stdout_cap' => 1048576, 'stderr_cap' => 65536],
    'started_at' => '2026-11-26T08:30:00.123Z', 'finished_at' => '2026-11-26T08:30:01.357Z',
];
$signer = $kpA;
if ($mode === 'forged') {
    // Someone else's receipt: self-consistent, but not the key of the node named.
    $r['node_pubkey'] = bin2hex(sodium_crypto_sign_publickey($kpB));
    $r['node_peer_id'] = $idB;
    $signer = $kpB;
}
$rc = Receipt::sign($r, sodium_crypto_sign_secretkey($signer));
if ($mode === 'bytes-lie') {
    $stdout = "hacked\n";
}
$resp = [
    'outcome' => $mode === 'outcome-lie' ? 'trapped' : 'exited', 'exit_code' => $mode === 'outcome-lie' ? -1 : 0,
    'stdout' => $mode === 'text-lie' ? "something else\n" : $stdout, 'stdout_base64' => base64_encode($stdout),
    'stderr' => '', 'stderr_base64' => null, 'stdout_truncated' => false, 'stderr_truncated' => false,
    'node' => $mode === 'wrong-node' ? $idB : $idA, 'wall_time_ms' => 3.217,
    'attempts' => [['node' => $idA, 'outcome' => 'ok', 'duration_ms' => 2.5]], 'receipt' => $rc,
];
$text = json_encode($resp, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
if ($mode === 'dupkey') {
    $text = str_replace('"outcome":"exited","deterministic"', '"outcome":"exited","outcome":"trapped","deterministic"', $text);
}
reply(200, $text);

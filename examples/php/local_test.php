<?php

// Checks the PHP Phase library without a daemon: the shared receipt and
// frame test vectors (byte for byte), canonical JSON, peer IDs, every
// verification check (each tampered field must fail, naming its check), and
// the HTTP client against a stand-in API served by `php -S`.
//
// Usage: php examples/php/local_test.php        (last line: "N passed, M failed")

declare(strict_types=1);

require __DIR__ . '/src/autoload.php';
require __DIR__ . '/tests/Harness.php';

use Phase\ApiError;
use Phase\Base58;
use Phase\Canonical;
use Phase\CheckFailed;
use Phase\Client;
use Phase\Expect;
use Phase\Json;
use Phase\JsonError;
use Phase\PeerId;
use Phase\Receipt;
use Phase\Varint;
use Phase\Tests\Harness as H;

$root = dirname(__DIR__, 2);
$t = new H();

$vectors = Json::decode((string) file_get_contents("$root/node/receipt/testdata/vectors.json"));
$frames = Json::decode((string) file_get_contents("$root/node/wire/testdata/frames.json"));
$seed = hex2bin($vectors->seed_hex);
$kp = sodium_crypto_sign_seed_keypair($seed);
$sk = sodium_crypto_sign_secretkey($kp);
$pk = sodium_crypto_sign_publickey($kp);
$kpOther = sodium_crypto_sign_seed_keypair(str_repeat("\x42", 32));
$pkOther = sodium_crypto_sign_publickey($kpOther);
$idOther = PeerId::fromPublicKey($pkOther);

// ---------------------------------------------------------------- identity

$t->test('vectors: seed gives the public key and peer ID', function () use ($vectors, $pk) {
    H::eq($vectors->public_key_hex, bin2hex($pk), 'public key');
    H::eq($vectors->peer_id, PeerId::fromPublicKey($pk), 'peer ID');
    H::eq($pk, PeerId::toPublicKey($vectors->peer_id), 'key from peer ID');
});

$t->test('peer ID: CIDv1 (base32, libp2p-key) form gives the same key', function () use ($pk) {
    H::eq(bin2hex($pk), bin2hex(PeerId::toPublicKey('bafzaajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmny')));
    H::true(!PeerId::isCanonical('bafzaajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmny'), 'CID form is not the canonical spelling');
});

$t->test('peer ID: bad inputs are rejected with a reason', function () use ($vectors) {
    H::throws(\InvalidArgumentException::class, fn() => PeerId::toPublicKey(''), 'not a peer ID');
    H::throws(\InvalidArgumentException::class, fn() => PeerId::toPublicKey('12D3KooW0000'), 'invalid character');
    // A sha2-256 (RSA-style) peer ID carries no key.
    H::throws(\InvalidArgumentException::class, fn() => PeerId::toPublicKey('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), 'carries no public key');
    // Truncated Ed25519 peer ID: the multihash length no longer matches.
    H::throws(\InvalidArgumentException::class, fn() => PeerId::toPublicKey(substr($vectors->peer_id, 0, -3)), 'length');
    // A secp256k1 identity peer ID (key type 2) is not Ed25519.
    $secp = Base58::encode("\x00\x25\x08\x02\x12\x21" . str_repeat("\x02", 33));
    H::throws(\InvalidArgumentException::class, fn() => PeerId::toPublicKey($secp), 'not an Ed25519 peer ID');
    H::true(PeerId::isCanonical('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), 'sha256 peer ID is a valid requester');
});

$t->test('base58: known answers and round trips', function () {
    H::eq('', Base58::encode(''));
    H::eq('1', Base58::encode("\0"));
    H::eq('11', Base58::encode("\0\0"));
    H::eq('2g', Base58::encode('a'));
    H::eq('StV1DL6CwTryKyV', Base58::encode('hello world'));
    H::eq("\0\0hello world", Base58::decode('11StV1DL6CwTryKyV'));
    for ($i = 0; $i < 200; $i++) {
        $n = random_int(0, 40);
        $b = $n > 0 ? random_bytes($n) : '';
        if ($i % 5 === 0) {
            $b = "\0\0" . $b;
        }
        H::eq(bin2hex($b), bin2hex(Base58::decode(Base58::encode($b))), 'round trip');
    }
    H::throws(\InvalidArgumentException::class, fn() => Base58::decode('abc0'), 'invalid character "0" at position 3');
    H::throws(\InvalidArgumentException::class, fn() => Base58::decode('Il'), 'invalid character');
});

// ---------------------------------------------------------------- receipt vectors

foreach ($vectors->cases as $c) {
    $t->test("vector {$c->name}: input document and input_hash", function () use ($c) {
        H::eq($c->input_document, Receipt::inputDocument($c->args, $c->stdin), 'input document');
        H::eq($c->input_hash, Receipt::inputHash($c->args, $c->stdin), 'input hash');
        H::eq($c->input_hash, $c->receipt->input_hash, 'receipt input_hash');
    });
    $t->test("vector {$c->name}: the json_encode recipe in docs/spec-api.md §6.3 gives the same document", function () use ($c) {
        $doc = json_encode(['args' => array_values($c->args), 'stdin' => 'sha256:' . hash('sha256', $c->stdin)],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_LINE_TERMINATORS);
        H::eq($c->input_document, $doc, 'json_encode input document');
    });
    $t->test("vector {$c->name}: stdout and stderr hashes", function () use ($c) {
        H::eq($c->receipt->stdout_hash, Receipt::hashBytes($c->stdout), 'stdout_hash');
        H::eq($c->receipt->stderr_hash, Receipt::hashBytes($c->stderr), 'stderr_hash');
    });
    $t->test("vector {$c->name}: signing bytes match exactly", function () use ($c, $vectors) {
        H::eq($c->signing_bytes, Receipt::signingBytes($c->receipt), 'signing bytes');
        H::true(str_starts_with($c->signing_bytes, $vectors->domain_prefix), 'domain prefix');
        // The same bytes through the generic canonicalizer, from JSON text with whitespace.
        $r = clone $c->receipt;
        unset($r->signature);
        $pretty = json_encode($r, JSON_PRETTY_PRINT | JSON_UNESCAPED_UNICODE);
        H::eq($c->signing_bytes, $vectors->domain_prefix . Canonical::canonicalize($pretty), 'canonicalize(pretty JSON)');
    });
    $t->test("vector {$c->name}: signature matches exactly and verifies", function () use ($c, $sk, $pk) {
        H::eq($c->signature, bin2hex(sodium_crypto_sign_detached($c->signing_bytes, $sk)), 'signature');
        H::eq($c->signature, $c->receipt->signature, 'receipt signature');
        H::true(sodium_crypto_sign_verify_detached(hex2bin($c->signature), $c->signing_bytes, $pk), 'sodium verify');
    });
    $t->test("vector {$c->name}: Receipt::verify passes with every expectation", function () use ($c, $vectors) {
        $exp = new Expect(peerId: $vectors->peer_id, jobId: $c->receipt->job_id, nonce: $c->receipt->nonce,
            requester: $c->receipt->requester, moduleHash: $c->receipt->module_hash,
            inputHash: Receipt::inputHash($c->args, $c->stdin), stdout: $c->stdout, stderr: $c->stderr);
        $r = Receipt::verify($c->receipt, $exp);
        H::eq($c->receipt->job_id, $r->job_id);
        // From JSON text, and with a pinned key instead of a peer ID.
        Receipt::verify(json_encode($c->receipt, JSON_UNESCAPED_UNICODE), $exp);
        Receipt::verify($c->receipt, new Expect(publicKey: $vectors->public_key_hex, stdout: $c->stdout));
        Receipt::verify($c->receipt, new Expect(peerId: $vectors->peer_id, publicKey: hex2bin($vectors->public_key_hex)));
    });
}

$t->test('vector legacy v0.1: verifies against the pinned key only', function () use ($vectors) {
    $l = $vectors->legacy;
    H::eq($l->message_sha256, hash('sha256', $l->message), 'message digest');
    Receipt::verifyLegacy($l->receipt, $l->public_key_hex);
    H::failsCheck('signer', fn() => Receipt::verifyLegacy($l->receipt, str_repeat('00', 32)));
    $bad = clone $l->receipt;
    $bad->wall_time_ms++;
    H::failsCheck('signature', fn() => Receipt::verifyLegacy($bad, $l->public_key_hex));
});

// ---------------------------------------------------------------- tampering

$case = $vectors->cases[0];
$base = $case->receipt;
$expect = new Expect(peerId: $vectors->peer_id, jobId: $base->job_id, nonce: $base->nonce, requester: $base->requester,
    moduleHash: $base->module_hash, inputHash: $case->input_hash, stdout: $case->stdout, stderr: $case->stderr);

/** A copy of $r with $path (a.b for nested) set to $v. */
function with(\stdClass $r, string $path, mixed $v): \stdClass
{
    $r = Json::decode(json_encode($r, JSON_UNESCAPED_UNICODE));
    $parts = explode('.', $path);
    $o = $r;
    foreach (array_slice($parts, 0, -1) as $p) {
        $o = $o->$p;
    }
    $o->{end($parts)} = $v;
    return $r;
}

$otherHash = 'sha256:' . str_repeat('0', 64);
// Each signed field changed after signing: the check that must catch it.
$tampers = [
    ['version', '2', 'format'],
    ['module_hash', $otherHash, 'signature'],
    ['exit_code', 1, 'signature'],
    ['wall_time_ms', 1235, 'signature'],
    ['timestamp', $base->timestamp + 1, 'format'], // no longer finished_at's second
    ['node_pubkey', bin2hex($pkOther), 'signer'],
    ['job_id', 'job-0003', 'signature'],
    ['nonce', str_repeat('11', 32), 'signature'],
    ['requester', '', 'signature'],
    ['requester', $idOther, 'signature'],
    ['node_peer_id', $idOther, 'signer'],
    ['input_hash', $otherHash, 'signature'],
    ['stdout_hash', $otherHash, 'signature'],
    ['stderr_hash', $otherHash, 'signature'],
    ['stdout_truncated', true, 'signature'],
    ['stderr_truncated', true, 'signature'],
    ['outcome', 'trapped', 'format'], // exit_code 0 is impossible for a trap
    ['deterministic', true, 'signature'],
    ['limits.memory_mb', 65, 'signature'],
    ['limits.timeout_ms', 30001, 'signature'],
    ['limits.stdout_cap', 1, 'signature'],
    ['limits.stderr_cap', 1, 'signature'],
    ['started_at', '2026-11-26T08:30:00.124Z', 'signature'],
    ['finished_at', '2026-11-26T08:30:01.358Z', 'signature'],
    ['signature', substr_replace($base->signature, $base->signature[0] === '0' ? '1' : '0', 0, 1), 'signature'],
];
foreach ($tampers as [$field, $value, $check]) {
    $t->test("tamper $field → $check check fails", function () use ($base, $expect, $field, $value, $check) {
        H::failsCheck($check, fn() => Receipt::verify(with($base, $field, $value), $expect));
    });
}

$t->test('tamper outcome and exit_code together → signature check fails', function () use ($base, $expect) {
    $r = with(with($base, 'outcome', 'trapped'), 'exit_code', -1);
    H::failsCheck('signature', fn() => Receipt::verify($r, $expect));
});

// Re-signed by the right key, each binding must still be caught by its own check.
$resigned = [
    ['job_id', 'job-0003', 'job_id'],
    ['nonce', str_repeat('11', 32), 'nonce'],
    ['requester', $idOther, 'requester'],
    ['module_hash', $otherHash, 'module_hash'],
    ['input_hash', $otherHash, 'input_hash'],
    ['stdout_hash', Receipt::hashBytes("dlrow ölleh!\n"), 'stdout_hash'],
    ['stderr_hash', Receipt::hashBytes('x'), 'stderr_hash'],
];
foreach ($resigned as [$field, $value, $check]) {
    $t->test("re-signed receipt with another $field → $check check fails", function () use ($base, $expect, $field, $value, $check, $sk) {
        $r = Receipt::sign(with($base, $field, $value), $sk);
        H::failsCheck($check, fn() => Receipt::verify($r, $expect));
    });
}

$t->test('output bytes received differ from the receipt → stdout_hash / stderr_hash', function () use ($base, $expect) {
    $e = clone $expect;
    $e->stdout = $expect->stdout . ' ';
    H::failsCheck('stdout_hash', fn() => Receipt::verify($base, $e), 'stdout bytes received');
    $e = clone $expect;
    $e->stderr = 'surprise';
    H::failsCheck('stderr_hash', fn() => Receipt::verify($base, $e));
});

$t->test('other args, stdin or module than sent → input_hash / module_hash', function () use ($base, $case, $vectors) {
    $args = $case->args;
    $args[0] .= '!';
    H::failsCheck('input_hash', fn() => Receipt::verify($base, new Expect(peerId: $vectors->peer_id, inputHash: Receipt::inputHash($args, $case->stdin))));
    H::failsCheck('input_hash', fn() => Receipt::verify($base, new Expect(peerId: $vectors->peer_id, inputHash: Receipt::inputHash($case->args, $case->stdin . 'x'))));
    H::failsCheck('module_hash', fn() => Receipt::verify($base, Expect::forJob($vectors->peer_id, "\0asm\1\0\0\0\0", $case->args, $case->stdin, null, null)));
});

$t->test('someone else\'s receipt (self-consistent, other key) → signer', function () use ($base, $expect, $kpOther, $pkOther, $idOther) {
    $r = with(with($base, 'node_pubkey', bin2hex($pkOther)), 'node_peer_id', $idOther);
    $r = Receipt::sign($r, sodium_crypto_sign_secretkey($kpOther));
    H::failsCheck('signer', fn() => Receipt::verify($r, $expect), 'expected signer');
    // ... which the other node's own peer ID would accept: the check is the binding, not the bytes.
    Receipt::verify($r, new Expect(peerId: $idOther));
});

$t->test('forged signature by another key under the right identity → signature', function () use ($base, $expect, $kpOther) {
    $r = Receipt::sign($base, sodium_crypto_sign_secretkey($kpOther));
    H::failsCheck('signature', fn() => Receipt::verify($r, $expect));
});

$t->test('no signer expected, non-Ed25519 or disagreeing expectations → signer', function () use ($base, $vectors, $pkOther) {
    H::failsCheck('signer', fn() => Receipt::verify($base, new Expect()), 'no expected signer');
    H::failsCheck('signer', fn() => Receipt::verify($base, new Expect(peerId: 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N')), 'carries no public key');
    H::failsCheck('signer', fn() => Receipt::verify($base, new Expect(peerId: $vectors->peer_id, publicKey: $pkOther)), 'disagree');
    H::failsCheck('signer', fn() => Receipt::verify($base, new Expect(publicKey: 'short')), 'pinned key');
});

// Malformed receipts: all "format", each naming the field.
$malformed = [
    'missing field' => [fn($r) => (function () use ($r) { unset($r->nonce); return $r; })(), 'nonce: required field missing'],
    'null field' => [fn($r) => with($r, 'job_id', null), 'job_id: must not be null'],
    'unknown field' => [fn($r) => with($r, 'extra', 1), '"extra": unknown field'],
    'unknown limits field' => [fn($r) => with($r, 'limits.cpu', 1), 'limits."cpu": unknown field'],
    'string for integer' => [fn($r) => with($r, 'exit_code', '0'), 'exit_code: must be an integer, got string'],
    'integer for boolean' => [fn($r) => with($r, 'deterministic', 0), 'deterministic: must be a boolean'],
    'limits not an object' => [fn($r) => with($r, 'limits', []), 'limits: must be an object, got array'],
    'uppercase nonce' => [fn($r) => with($r, 'nonce', strtoupper($r->nonce)), 'nonce: must be 64 lowercase hex'],
    'job_id with a space' => [fn($r) => with($r, 'job_id', 'job 1'), 'job_id: must be 1–128'],
    'hash without prefix' => [fn($r) => with($r, 'stdout_hash', substr($r->stdout_hash, 7)), 'stdout_hash: must be "sha256:"'],
    'impossible date' => [fn($r) => with($r, 'started_at', '2026-02-30T08:30:00.123Z'), 'started_at: must be RFC 3339'],
    'two fraction digits' => [fn($r) => with($r, 'finished_at', '2026-11-26T08:30:01.35Z'), 'finished_at: must be RFC 3339'],
    'finish before start' => [fn($r) => with(with($r, 'finished_at', '2026-11-26T08:30:00.000Z'), 'timestamp', 1795681800), 'is before started_at'],
    'negative wall time' => [fn($r) => with($r, 'wall_time_ms', -1), 'wall_time_ms: must not be negative'],
    'exit code -1 for exited' => [fn($r) => with($r, 'exit_code', -1), 'exit_code: -1 out of range'],
    'unknown outcome' => [fn($r) => with($r, 'outcome', 'done'), 'outcome: must be one of'],
    'memory out of range' => [fn($r) => with($r, 'limits.memory_mb', 0), 'limits.memory_mb: 0 out of range'],
    'peer ID not canonical' => [fn($r) => with($r, 'node_peer_id', 'bafzaajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmny'), 'node_peer_id: must be a peer ID in canonical base58'],
    'requester garbage' => [fn($r) => with($r, 'requester', 'nobody'), 'requester: must be a peer ID'],
    'short signature' => [fn($r) => with($r, 'signature', 'abcd'), 'signature: must be 128 lowercase hex'],
];
foreach ($malformed as $name => [$mutate, $contains]) {
    $t->test("malformed receipt ($name) → format check names it", function () use ($base, $expect, $mutate, $contains) {
        H::failsCheck('format', fn() => Receipt::verify($mutate(clone $base), $expect), $contains);
    });
}

$t->test('malformed receipt JSON text → format check', function () use ($base, $expect) {
    $text = json_encode($base, JSON_UNESCAPED_UNICODE);
    $dup = str_replace('"outcome":"exited"', '"outcome":"exited","outcome":"exited"', $text);
    H::failsCheck('format', fn() => Receipt::verify($dup, $expect), 'duplicate object key "outcome"');
    H::failsCheck('format', fn() => Receipt::verify(str_replace('"wall_time_ms":1234', '"wall_time_ms":1234.0', $text), $expect), 'not an integer');
    H::failsCheck('format', fn() => Receipt::verify($text . ' {}', $expect), 'trailing data');
    H::failsCheck('format', fn() => Receipt::verify('[1]', $expect), 'must be a JSON object');
    H::failsCheck('format', fn() => Receipt::verify(str_repeat(' ', 70000) . $text, $expect), 'max 65536');
    H::failsCheck('format', fn() => Receipt::verify("\"\xff\"", $expect), 'UTF-8');
});

// ---------------------------------------------------------------- canonical JSON

$canonical = [
    ['rfc8785 key sorting (UTF-16 order)', "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"\\r\": \"Carriage Return\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"1\": \"One\",\n  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n  \"\\u0080\": \"Control\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n}",
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{0080}\":\"Control\",\"\u{00f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1F600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"],
    ['rfc8785 strings and literals', "{\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
        '{"literals":[null,true,false],"string":"€$\u000f\nA\'B\"\\\\\\\\\"/"}'],
    ['all control characters', '"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f\u0020\u007f"', '"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f ' . "\x7f" . '"'],
    ['no html escaping, line separators as-is', '"\u003c\u003e\u0026 \u2028\u2029 /"', "\"<>& \u{2028}\u{2029} /\""],
    ['non-ascii raw utf-8 stays', '{"clé":"日本語","emoji":"😀"}', '{"clé":"日本語","emoji":"😀"}'],
    ['nested objects sorted, arrays keep order', " { \"b\" : [ 3 , 2 , { \"z\" : 1 , \"a\" : 2 } ] , \"a\" : { } , \"c\" : [ ] } ", '{"a":{},"b":[3,2,{"a":2,"z":1}],"c":[]}'],
    ['ascii key order is byte order', '{"b":1,"B":2,"a":3,"_":4,"aa":5,"":6}', '{"":6,"B":2,"_":4,"a":3,"aa":5,"b":1}'],
    ['integers at the safe limits', '[0,-0,1,-1,9007199254740991,-9007199254740991]', '[0,0,1,-1,9007199254740991,-9007199254740991]'],
    ['numeric-looking keys stay strings', '{"10":1,"9":2,"1":3}', '{"1":3,"10":1,"9":2}'],
    ['scalars', ' true ', 'true'],
    ['null', 'null', 'null'],
    ['escaped key is the same key', '{"\u0061":1}', '{"a":1}'],
    ['escaped backslash is not a surrogate escape', '"\\\\ud800"', '"\\\\ud800"'],
];
foreach ($canonical as [$name, $in, $want]) {
    $t->test("canonical: $name", function () use ($in, $want) {
        H::eq($want, Canonical::canonicalize($in));
    });
}

$rejects = [
    ['fraction', '{"a":1.5}', 'not an integer'],
    ['integer-valued fraction', '1.0', 'not an integer'],
    ['exponent', '[1e3]', 'not an integer'],
    ['too large', '9007199254740992', 'out of range'],
    ['too small', '-9007199254740992', 'out of range'],
    ['huge', '123456789012345678901234567890', 'out of range'],
    ['duplicate key', '{"a":1,"a":2}', 'duplicate object key "a"'],
    ['duplicate key after unescape', '{"a":1,"\u0061":2}', 'duplicate object key "a"'],
    ['nested duplicate', '[{"x":{"k":1,"k":1}}]', 'duplicate object key "k"'],
    ['trailing data', '{} {}', 'trailing data'],
    ['trailing garbage', '1 x', 'trailing data'],
    ['empty', '', 'unexpected end'],
    ['unterminated object', '{"a":1', 'unexpected end'],
    ['unterminated array', '[1,2', 'unexpected end'],
    ['trailing comma', '[1,]', 'invalid character'],
    ['bare word', 'nul', 'invalid literal'],
    ['invalid utf-8', "\"\xff\"", 'not valid UTF-8'],
    ['lone high surrogate', '"\ud800"', 'lone UTF-16 surrogate'],
    ['lone low surrogate', '"\udc00x"', 'lone UTF-16 surrogate'],
    ['high then non-low', '"\ud800\u0041"', 'lone UTF-16 surrogate'],
    ['raw control character in string', "\"a\nb\"", 'invalid or unterminated string'],
    ['leading zero', '01', 'trailing data'],
    ['too deep', str_repeat('[', 1002) . str_repeat(']', 1002), 'nesting deeper'],
];
foreach ($rejects as [$name, $in, $contains]) {
    $t->test("canonical rejects: $name", function () use ($in, $contains) {
        H::throws(JsonError::class, fn() => Canonical::canonicalize($in), $contains);
    });
}

$t->test('canonical: PHP values (stdClass, lists, maps) and refusals', function () {
    H::eq('{"a":[],"b":{},"c":{"x":1}}', Canonical::encode(['c' => ['x' => 1], 'b' => new \stdClass(), 'a' => []]));
    H::eq('["\u001f","é"]', Canonical::encode(["\x1f", 'é']));
    H::throws(JsonError::class, fn() => Canonical::encode(1.5), 'float');
    H::throws(JsonError::class, fn() => Canonical::encode(['a' => PHP_INT_MAX]), 'out of range');
    H::throws(JsonError::class, fn() => Canonical::encode(["\xc3"]), 'not valid UTF-8');
    H::throws(JsonError::class, fn() => Canonical::encode(new \DateTime()), 'not a JSON value');
});

$t->test('canonical: random key sets sort as UTF-16 code units', function () {
    $pool = ['a', 'B', 'é', "\u{FFFF}", "\u{10000}", "\u{1F600}", "\u{E000}", 'z', '~', "\u{7F}", "\u{FB33}", 'aa', ''];
    for ($i = 0; $i < 50; $i++) {
        shuffle($pool);
        $keys = array_slice($pool, 0, random_int(1, count($pool)));
        $obj = array_fill_keys($keys, 1);
        $out = Canonical::encode((object) $obj);
        $got = array_keys(json_decode($out, true));
        $want = $keys;
        // Reference order: compare UTF-16BE encodings via iconv.
        usort($want, fn($x, $y) => strcmp(iconv('UTF-8', 'UTF-16BE', (string) $x), iconv('UTF-8', 'UTF-16BE', (string) $y)));
        H::eq(array_map('strval', $want), array_map('strval', $got), 'key order');
    }
    // The case that differs from code point order: U+10000 (D800 DC00) sorts before U+FFFF.
    H::eq("{\"\u{10000}\":1,\"\u{FFFF}\":2}", Canonical::encode((object) ["\u{FFFF}" => 2, "\u{10000}" => 1]));
});

$t->test('strict JSON: long strings with many escapes decode', function () {
    // 4 Mi escapes: enough to exhaust PCRE's stack if strings were matched by one regex.
    $big = str_repeat("x\n", 4 << 20) . str_repeat("\"q\"\t\\", 100000);
    $json = json_encode(['s' => $big, 'b' => base64_encode(random_bytes(1 << 20))]);
    $v = Json::decode($json);
    H::eq($big, $v->s, 'string');
});

// ---------------------------------------------------------------- wire frames

foreach ($frames as $f) {
    $t->test("frame {$f->name}: varint length and body", function () use ($f) {
        $bytes = hex2bin($f->hex);
        $off = 0;
        $len = Varint::decode($bytes, $off);
        H::eq(strlen($bytes) - $off, $len, 'length prefix = body length');
        $body = substr($bytes, $off);
        H::eq($bytes, Varint::encode($len) . $body, 're-encoded frame');
        if ($f->kind === 'control') {
            $msg = Json::decode($body);
            H::eq(Canonical::encode($f->json), Canonical::encode($msg), 'control message');
            H::true(is_string($msg->type) && $msg->type === $f->json->type, 'type');
        } else {
            H::eq($f->body_hex, bin2hex($body), 'raw body');
        }
    });
}

$t->test('varint: known lengths and rejections (WIRE-2..4)', function () {
    foreach ([0 => '00', 1 => '01', 127 => '7f', 128 => '8001', 300 => 'ac02', 16384 => '808001', 65536 => '808004'] as $n => $hex) {
        H::eq($hex, bin2hex(Varint::encode($n)), "encode $n");
        $off = 0;
        H::eq($n, Varint::decode(hex2bin($hex), $off), "decode $hex");
    }
    $dec = function (string $hex): int {
        $off = 0;
        return Varint::decode(hex2bin($hex), $off);
    };
    H::throws(\InvalidArgumentException::class, fn() => $dec('8000'), 'shortest form');
    H::throws(\InvalidArgumentException::class, fn() => $dec('80'), 'truncated');
    H::throws(\InvalidArgumentException::class, fn() => $dec(str_repeat('ff', 10) . '01'), 'longer than 10 bytes');
    H::throws(\InvalidArgumentException::class, fn() => $dec(str_repeat('ff', 9) . '02'), 'does not fit in 64 bits');
    H::eq(PHP_INT_MAX, $dec(str_repeat('ff', 8) . '7f'), 'largest PHP integer');
});

// ---------------------------------------------------------------- HTTP client against a stand-in API

$t->test('client: bad addresses are refused clearly', function () {
    H::throws(\InvalidArgumentException::class, fn() => new Client(''), 'empty');
    H::throws(\InvalidArgumentException::class, fn() => new Client('localhost'), 'host:port');
    H::throws(\InvalidArgumentException::class, fn() => new Client('https://127.0.0.1:1'), 'https');
});

/** A loopback port nobody listens on (right now). */
function freePort(): int
{
    $s = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
    if ($s === false) {
        throw new \RuntimeException("no free port: $errstr");
    }
    $port = (int) substr(strrchr(stream_socket_get_name($s, false), ':'), 1);
    fclose($s);
    return $port;
}

$t->test('client: nothing listening → ApiError naming the URL', function () {
    $port = freePort();
    $c = new Client("127.0.0.1:$port", 2.0);
    $e = H::throws(ApiError::class, fn() => $c->node(), "GET http://127.0.0.1:$port/v1/node");
    H::eq(0, $e->status, 'status');
    H::true(!$c->healthy(), 'healthy() is false');
});

$port = freePort();
$log = tempnam(sys_get_temp_dir(), 'fake_api');
$server = proc_open([PHP_BINARY, '-S', "127.0.0.1:$port", __DIR__ . '/tests/fake_api.php'], [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']], $pipes);
register_shutdown_function(function () use ($server, $log) {
    if (is_resource($server)) {
        proc_terminate($server);
        proc_close($server);
    }
    @unlink($log);
});
$up = false;
for ($i = 0; $i < 100 && !$up; $i++) {
    $s = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
    if ($s !== false) {
        fclose($s);
        $up = true;
    } else {
        usleep(50000);
    }
}
$module = "\0asm\x01\0\0\0fake module";
$fake = fn(string $mode, float $timeout = 10.0) => new Client("http://127.0.0.1:$port/$mode", $timeout);

$t->test('client: stand-in API started', function () use (&$up, $log) {
    H::true($up, 'php -S did not start: ' . @file_get_contents($log));
});

$t->test('client: healthy, node info, honest job verifies', function () use ($fake, $module, $vectors) {
    $c = $fake('ok');
    H::true($c->healthy(), 'healthy');
    $n = $c->node();
    H::eq($vectors->peer_id, $n['peer_id']);
    $res = $c->run($module, ['Hello, World']);
    H::eq("dlroW ,olleH\n", $res->stdout, 'stdout');
    H::eq('', $res->stderr, 'stderr (null base64 is empty)');
    H::eq('exited', $res->outcome);
    H::eq(0, $res->exitCode);
    H::eq($vectors->peer_id, $res->node);
    H::eq(3.217, $res->wallTimeMs);
    H::eq('ok', $res->attempts[0]['outcome']);
});

$t->test('client: node whose public_key is not its peer ID\'s → ApiError', function () use ($fake) {
    H::throws(ApiError::class, fn() => $fake('bad-node-key')->node(), 'is not the key of peer ID');
});

$dishonest = [
    'forged' => ['signer', 'expected signer'],          // someone else's receipt
    'wrong-node' => ['signer', 'expected signer'],      // API names a node that did not sign
    'bytes-lie' => ['stdout_hash', 'stdout bytes received'],
    'text-lie' => ['response', 'stdout text differs'],
    'outcome-lie' => ['response', 'the response says outcome'],
    'wrong-input' => ['input_hash', ''],
    'wrong-module' => ['module_hash', ''],
    'other-requester' => ['requester', ''],
    'dupkey' => ['response', 'duplicate object key "outcome"'],
];
foreach ($dishonest as $mode => [$check, $contains]) {
    $t->test("client: dishonest API ($mode) → $check check fails", function () use ($fake, $mode, $check, $contains, $module) {
        H::failsCheck($check, fn() => $fake($mode)->run($module, ['Hello, World']), $contains);
    });
}

$t->test('client: HTTP 502 with attempts → ApiError listing them', function () use ($fake, $module) {
    $e = H::throws(ApiError::class, fn() => $fake('err502')->run($module, ['x']), 'HTTP 502: no node could run the job');
    H::eq(502, $e->status, 'status');
    H::eq('queue_full', $e->attempts[0]['reason'] ?? null, 'attempt reason');
});

$t->test('client: HTTP 400 → ApiError with the daemon\'s message', function () use ($fake, $module) {
    $e = H::throws(ApiError::class, fn() => $fake('err400')->submit($module, [], '', ['memory_mb' => 99999]), 'memory_mb: 99999 out of range');
    H::eq(400, $e->status);
});

$t->test('client: non-JSON 200 → response check', function () use ($fake, $module) {
    H::failsCheck('response', fn() => $fake('notjson')->submit($module), 'not valid JSON');
});

$t->test('client: slow API → timeout error, no hang', function () use ($fake, $module) {
    $start = microtime(true);
    H::throws(ApiError::class, fn() => $fake('slow')->submit($module, [], '', ['http_timeout' => 1.0]), 'within 1 s');
    H::true(microtime(true) - $start < 2.5, 'returned within the timeout');
});

$t->test('client: bad job options refused before sending', function () use ($fake, $module) {
    H::throws(\InvalidArgumentException::class, fn() => $fake('ok')->submit($module, [], '', ['memory' => 1]), 'unknown job option "memory"');
    H::throws(\InvalidArgumentException::class, fn() => $fake('ok')->submit($module, [], '', ['memory_mb' => '64']), 'wrong type');
    H::throws(\InvalidArgumentException::class, fn() => $fake('ok')->submit($module, ["\xff"]), 'args[0]: must be a valid UTF-8 string');
});

$t->finish();

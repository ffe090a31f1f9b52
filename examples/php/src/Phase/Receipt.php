<?php

declare(strict_types=1);

namespace Phase;

/**
 * Phase receipt v1: parsing, the signed bytes, the input hash and
 * verification. A receipt is a JSON object; its signature is Ed25519 over
 *
 *     "phase-receipt:v1:" . canonical JSON (RFC 8785) of every field except "signature"
 *
 * A verifier takes the signer's key from the peer ID of the node that ran the
 * job (or from a pinned key) — never from the receipt alone.
 */
final class Receipt
{
    public const VERSION = '1';
    public const DOMAIN_PREFIX = 'phase-receipt:v1:';
    public const HASH_PREFIX = 'sha256:';
    public const MAX_SIZE = 65536;

    public const OUTCOMES = ['exited', 'trapped', 'timeout', 'memory_limit', 'invalid_module', 'hash_mismatch'];

    // Check names, in the order verify() runs them (the same names as the Go verifier's).
    public const CHECK_FORMAT = 'format';
    public const CHECK_SIGNER = 'signer';
    public const CHECK_SIGNATURE = 'signature';
    public const CHECK_JOB_ID = 'job_id';
    public const CHECK_NONCE = 'nonce';
    public const CHECK_REQUESTER = 'requester';
    public const CHECK_MODULE_HASH = 'module_hash';
    public const CHECK_INPUT_HASH = 'input_hash';
    public const CHECK_STDOUT_HASH = 'stdout_hash';
    public const CHECK_STDERR_HASH = 'stderr_hash';

    /** Every member and its JSON type. */
    public const FIELDS = [
        'version' => 'string', 'module_hash' => 'string', 'exit_code' => 'integer', 'wall_time_ms' => 'integer',
        'timestamp' => 'integer', 'node_pubkey' => 'string', 'job_id' => 'string', 'nonce' => 'string',
        'requester' => 'string', 'node_peer_id' => 'string', 'input_hash' => 'string', 'stdout_hash' => 'string',
        'stderr_hash' => 'string', 'stdout_truncated' => 'boolean', 'stderr_truncated' => 'boolean',
        'outcome' => 'string', 'deterministic' => 'boolean', 'limits' => 'object', 'started_at' => 'string',
        'finished_at' => 'string', 'signature' => 'string',
    ];
    public const LIMITS_FIELDS = ['memory_mb' => 'integer', 'timeout_ms' => 'integer', 'stdout_cap' => 'integer', 'stderr_cap' => 'integer'];

    private const MAX_EXIT_CODE = 4294967295;
    private const MAX_MEMORY_MB = 32768;
    private const MAX_TIMEOUT_MS = 3600000;

    /** "sha256:" followed by the lowercase hex SHA-256 of $bytes. */
    public static function hashBytes(string $bytes): string
    {
        return self::HASH_PREFIX . hash('sha256', $bytes);
    }

    /**
     * The document input_hash hashes: {"args":[...],"stdin":"sha256:<hex>"}
     * in canonical JSON. Invalid UTF-8 in an argument is replaced byte by
     * byte with U+FFFD, as the Go node does (the API only carries valid UTF-8).
     *
     * @param list<string> $args
     */
    public static function inputDocument(array $args, string $stdin): string
    {
        $parts = [];
        foreach (array_values($args) as $i => $a) {
            if (!is_string($a)) {
                throw new \InvalidArgumentException(sprintf('args[%d]: must be a string, got %s', $i, get_debug_type($a)));
            }
            $parts[] = Canonical::string(self::scrubUtf8($a));
        }
        return '{"args":[' . implode(',', $parts) . '],"stdin":"' . self::hashBytes($stdin) . '"}';
    }

    /** @param list<string> $args */
    public static function inputHash(array $args, string $stdin): string
    {
        return self::hashBytes(self::inputDocument($args, $stdin));
    }

    /** Replaces each byte that is not part of valid UTF-8 with U+FFFD. */
    public static function scrubUtf8(string $s): string
    {
        if (preg_match('//u', $s) === 1) {
            return $s;
        }
        return preg_replace_callback(
            '/[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2}|(.)/s',
            static fn(array $m): string => isset($m[1]) ? "\u{FFFD}" : $m[0],
            $s,
        );
    }

    /**
     * Decodes a receipt strictly and checks its form: one JSON object of at
     * most 64 KiB, no duplicate keys, every field present, non-null and of
     * its type, no unknown field, every value in its format.
     *
     * @throws CheckFailed with check "format", naming every problem found
     */
    public static function parse(string $json): \stdClass
    {
        if (strlen($json) > self::MAX_SIZE) {
            throw new CheckFailed(self::CHECK_FORMAT, sprintf('receipt is %d bytes, max %d', strlen($json), self::MAX_SIZE));
        }
        try {
            $r = Json::decode($json);
        } catch (JsonError $e) {
            throw new CheckFailed(self::CHECK_FORMAT, 'invalid JSON: ' . $e->getMessage());
        }
        return self::checkFormat($r);
    }

    /**
     * Checks an already decoded receipt (stdClass from Json::decode, or an
     * associative array) and returns it as stdClass.
     *
     * @throws CheckFailed with check "format"
     */
    public static function checkFormat(mixed $r, bool $withSignature = true): \stdClass
    {
        if (is_array($r) && !array_is_list($r)) {
            $r = self::toObject($r);
        }
        if (!$r instanceof \stdClass) {
            throw new CheckFailed(self::CHECK_FORMAT, sprintf('receipt must be a JSON object, got %s', self::jsonType($r)));
        }
        $problems = self::typeProblems('', get_object_vars($r), self::FIELDS, $withSignature);
        if ($problems === [] && $r->limits instanceof \stdClass) {
            $problems = self::typeProblems('limits.', get_object_vars($r->limits), self::LIMITS_FIELDS, true);
        }
        if ($problems === []) {
            $problems = self::valueProblems($r, $withSignature);
        }
        if ($problems !== []) {
            throw new CheckFailed(self::CHECK_FORMAT, implode('; ', $problems));
        }
        return $r;
    }

    /**
     * The bytes Ed25519 signs: the domain prefix, then the canonical JSON of
     * every member except "signature".
     */
    public static function signingBytes(\stdClass|array $r): string
    {
        $r = is_array($r) ? self::toObject($r) : clone $r;
        unset($r->signature);
        return self::DOMAIN_PREFIX . Canonical::encode($r);
    }

    /**
     * Signs a receipt with a 64-byte libsodium secret key and returns the
     * signed copy. For tests and tools; nodes sign receipts, clients verify.
     */
    public static function sign(\stdClass|array $r, string $secretKey): \stdClass
    {
        $r = is_array($r) ? self::toObject($r) : clone $r;
        $r->signature = bin2hex(sodium_crypto_sign_detached(self::signingBytes($r), $secretKey));
        return $r;
    }

    /**
     * Verifies a receipt against what the verifier knows, in order: format,
     * signer, signature, job_id, nonce, requester, module_hash, input_hash,
     * stdout_hash, stderr_hash. Returns the parsed receipt.
     *
     * @param string|\stdClass|array $receipt the receipt's JSON text, or the decoded object
     * @throws CheckFailed naming the first check that failed
     */
    public static function verify(string|\stdClass|array $receipt, Expect $exp): \stdClass
    {
        $r = is_string($receipt) ? self::parse($receipt) : self::checkFormat($receipt);

        $key = self::expectedSigner($exp);
        if ($r->node_pubkey !== bin2hex($key)) {
            throw new CheckFailed(self::CHECK_SIGNER, sprintf('node_pubkey %s is not the expected signer\'s key %s', $r->node_pubkey, bin2hex($key)));
        }
        $wantId = PeerId::fromPublicKey($key);
        if ($r->node_peer_id !== $wantId) {
            throw new CheckFailed(self::CHECK_SIGNER, sprintf('node_peer_id %s is not the expected signer %s', $r->node_peer_id, $wantId));
        }

        $sig = hex2bin($r->signature); // format-checked: 128 lowercase hex characters
        try {
            $msg = self::signingBytes($r);
        } catch (JsonError $e) {
            throw new CheckFailed(self::CHECK_SIGNATURE, $e->getMessage());
        }
        if (!sodium_crypto_sign_verify_detached($sig, $msg, $key)) {
            throw new CheckFailed(self::CHECK_SIGNATURE, 'Ed25519 signature does not verify for node_pubkey ' . $r->node_pubkey);
        }

        foreach ([
            self::CHECK_JOB_ID => $exp->jobId,
            self::CHECK_NONCE => $exp->nonce,
            self::CHECK_REQUESTER => $exp->requester,
            self::CHECK_MODULE_HASH => $exp->moduleHash,
            self::CHECK_INPUT_HASH => $exp->inputHash,
        ] as $field => $want) {
            if ($want !== null && $want !== '' && $r->$field !== $want) {
                throw new CheckFailed($field, sprintf('receipt has %s, expected %s', Json::quote($r->$field), Json::quote($want)));
            }
        }
        foreach ([self::CHECK_STDOUT_HASH => [$exp->stdout, 'stdout'], self::CHECK_STDERR_HASH => [$exp->stderr, 'stderr']] as $field => [$bytes, $name]) {
            if ($bytes !== null && ($got = self::hashBytes($bytes)) !== $r->$field) {
                throw new CheckFailed($field, sprintf('receipt has %s, the %d %s bytes received hash to %s', $r->$field, strlen($bytes), $name, $got));
            }
        }
        return $r;
    }

    /** The 32-byte key the receipt must be signed with. */
    private static function expectedSigner(Expect $exp): string
    {
        $pinned = null;
        if ($exp->publicKey !== null && $exp->publicKey !== '') {
            $pinned = $exp->publicKey;
            if (strlen($pinned) === 64 && ctype_xdigit($pinned)) {
                $pinned = hex2bin($pinned);
            }
            if (strlen($pinned) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) {
                throw new CheckFailed(self::CHECK_SIGNER, sprintf('pinned key must be 32 bytes (or 64 hex characters), got %d bytes', strlen($exp->publicKey)));
            }
        }
        if ($exp->peerId !== null && $exp->peerId !== '') {
            try {
                $key = PeerId::toPublicKey($exp->peerId);
            } catch (\InvalidArgumentException $e) {
                throw new CheckFailed(self::CHECK_SIGNER, 'expected peer: ' . $e->getMessage());
            }
            if ($pinned !== null && $pinned !== $key) {
                throw new CheckFailed(self::CHECK_SIGNER, sprintf('expected peer %s and pinned key %s disagree', $exp->peerId, bin2hex($pinned)));
            }
            return $key;
        }
        if ($pinned !== null) {
            return $pinned;
        }
        // The receipt's own key proves nothing about who ran the job.
        throw new CheckFailed(self::CHECK_SIGNER, 'no expected signer: give the peer ID of the node that ran the job, or a pinned key');
    }

    /** @return list<string> */
    private static function typeProblems(string $prefix, array $members, array $fields, bool $withSignature): array
    {
        $p = [];
        foreach ($fields as $name => $type) {
            if ($name === 'signature' && !$withSignature && !array_key_exists($name, $members)) {
                continue;
            }
            if (!array_key_exists($name, $members)) {
                $p[] = $prefix . $name . ': required field missing';
            } elseif ($members[$name] === null) {
                $p[] = $prefix . $name . ': must not be null';
            } elseif (($got = self::jsonType($members[$name])) !== $type) {
                $p[] = sprintf('%s%s: must be %s %s, got %s', $prefix, $name, $type === 'integer' || $type === 'object' ? 'an' : 'a', $type, $got);
            }
        }
        $unknown = array_diff(array_map('strval', array_keys($members)), array_keys($fields));
        sort($unknown, SORT_STRING);
        foreach ($unknown as $k) {
            $p[] = sprintf('%s%s: unknown field', $prefix, Json::quote($k));
        }
        return $p;
    }

    /** @return list<string> */
    private static function valueProblems(\stdClass $r, bool $withSignature): array
    {
        $p = [];
        if ($r->version !== self::VERSION) {
            $p[] = sprintf('version: must be "%s", got %s', self::VERSION, Json::quote($r->version));
        }
        foreach (['module_hash', 'input_hash', 'stdout_hash', 'stderr_hash'] as $f) {
            if (preg_match('/^sha256:[0-9a-f]{64}$/D', $r->$f) !== 1) {
                $p[] = sprintf('%s: must be "sha256:" followed by 64 lowercase hex digits, got %s', $f, Json::quote($r->$f));
            }
        }
        if (!in_array($r->outcome, self::OUTCOMES, true)) {
            $p[] = sprintf('outcome: must be one of %s, got %s', implode('|', self::OUTCOMES), Json::quote($r->outcome));
        } elseif ($r->outcome === 'exited') {
            if ($r->exit_code < 0 || $r->exit_code > self::MAX_EXIT_CODE) {
                $p[] = sprintf('exit_code: %d out of range 0–%d for outcome "exited"', $r->exit_code, self::MAX_EXIT_CODE);
            }
        } elseif ($r->exit_code !== -1) {
            $p[] = sprintf('exit_code: must be -1 for outcome "%s" (the guest did not exit), got %d', $r->outcome, $r->exit_code);
        }
        foreach (['wall_time_ms', 'timestamp'] as $f) {
            if ($r->$f < 0) {
                $p[] = sprintf('%s: must not be negative, got %d', $f, $r->$f);
            }
        }
        if (!self::isLowerHex($r->node_pubkey, 64)) {
            $p[] = sprintf('node_pubkey: must be 64 lowercase hex characters (32-byte Ed25519 key), got %s', Json::quote($r->node_pubkey));
        }
        if (preg_match('/^[A-Za-z0-9._:-]{1,128}$/D', $r->job_id) !== 1) {
            $p[] = sprintf('job_id: must be 1–128 characters of [A-Za-z0-9._:-], got %s', Json::quote($r->job_id));
        }
        if (!self::isLowerHex($r->nonce, 64)) {
            $p[] = sprintf('nonce: must be 64 lowercase hex characters (32 bytes), got %s', Json::quote($r->nonce));
        }
        if ($r->requester !== '' && !PeerId::isCanonical($r->requester)) {
            $p[] = sprintf('requester: must be a peer ID in canonical base58 form, got %s', Json::quote($r->requester));
        }
        if (!PeerId::isCanonical($r->node_peer_id)) {
            $p[] = sprintf('node_peer_id: must be a peer ID in canonical base58 form, got %s', Json::quote($r->node_peer_id));
        } else {
            try {
                PeerId::toPublicKey($r->node_peer_id);
            } catch (\InvalidArgumentException) {
                $p[] = sprintf('node_peer_id: %s is not an Ed25519 peer ID (the node\'s key signs receipts)', Json::quote($r->node_peer_id));
            }
        }
        $l = $r->limits;
        foreach ([['memory_mb', 1, self::MAX_MEMORY_MB], ['timeout_ms', 1, self::MAX_TIMEOUT_MS]] as [$f, $lo, $hi]) {
            if ($l->$f < $lo || $l->$f > $hi) {
                $p[] = sprintf('limits.%s: %d out of range %d–%d', $f, $l->$f, $lo, $hi);
            }
        }
        foreach (['stdout_cap', 'stderr_cap'] as $f) {
            if ($l->$f < 0) {
                $p[] = sprintf('limits.%s: must not be negative, got %d', $f, $l->$f);
            }
        }
        $started = self::parseTime($r->started_at);
        if ($started === null) {
            $p[] = sprintf('started_at: must be RFC 3339 UTC with milliseconds like 2026-11-26T08:30:00.123Z, got %s', Json::quote($r->started_at));
        }
        $finished = self::parseTime($r->finished_at);
        if ($finished === null) {
            $p[] = sprintf('finished_at: must be RFC 3339 UTC with milliseconds like 2026-11-26T08:30:00.123Z, got %s', Json::quote($r->finished_at));
        }
        if ($started !== null && $finished !== null && strcmp($r->finished_at, $r->started_at) < 0) {
            $p[] = sprintf('finished_at: %s is before started_at %s', $r->finished_at, $r->started_at);
        }
        if ($finished !== null && $r->timestamp !== $finished->getTimestamp()) {
            $p[] = sprintf('timestamp: %d does not match finished_at %s (want %d)', $r->timestamp, $r->finished_at, $finished->getTimestamp());
        }
        if ($withSignature && !self::isLowerHex($r->signature, 128)) {
            $p[] = sprintf('signature: must be 128 lowercase hex characters (64-byte Ed25519 signature), got %d characters', strlen($r->signature));
        }
        return $p;
    }

    private static function parseTime(string $s): ?\DateTimeImmutable
    {
        if (preg_match('/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/D', $s) !== 1) {
            return null;
        }
        $t = \DateTimeImmutable::createFromFormat('!Y-m-d\TH:i:s.v\Z', $s, new \DateTimeZone('UTC'));
        // Re-formatting catches what the parser tolerates (Feb 30, hour 24, ...).
        if ($t === false || $t->format('Y-m-d\TH:i:s.v\Z') !== $s) {
            return null;
        }
        return $t;
    }

    private static function isLowerHex(string $s, int $n): bool
    {
        return strlen($s) === $n && strspn($s, '0123456789abcdef') === $n;
    }

    private static function jsonType(mixed $v): string
    {
        return match (true) {
            is_string($v) => 'string',
            is_int($v) => 'integer',
            is_float($v) => 'number',
            is_bool($v) => 'boolean',
            $v === null => 'null',
            $v instanceof \stdClass, is_array($v) && !array_is_list($v) => 'object',
            is_array($v) => 'array',
            default => get_debug_type($v),
        };
    }

    /**
     * Verifies a legacy v0.1 receipt (the seed prototype's) against a pinned
     * key: Ed25519 over SHA-256 of "version|module_hash|exit_code|wall_time_ms|timestamp".
     * It binds no job, input, output or peer: never accept it as proof of a run.
     *
     * @param string $pinnedKey 32 raw bytes or 64 hex characters
     * @throws CheckFailed
     */
    public static function verifyLegacy(\stdClass|array $r, string $pinnedKey): void
    {
        $r = is_array($r) ? self::toObject($r) : $r;
        if (strlen($pinnedKey) === 64 && ctype_xdigit($pinnedKey)) {
            $pinnedKey = hex2bin($pinnedKey);
        }
        if (strlen($pinnedKey) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) {
            throw new CheckFailed(self::CHECK_SIGNER, 'legacy receipts bind no peer: a pinned 32-byte public key is required');
        }
        $fields = ['version' => 'string', 'module_hash' => 'string', 'exit_code' => 'integer', 'wall_time_ms' => 'integer',
            'timestamp' => 'integer', 'node_pubkey' => 'string', 'signature' => 'string'];
        $p = self::typeProblems('', get_object_vars($r), $fields, true);
        if ($p === []) {
            if ($r->version !== '0.1') {
                $p[] = sprintf('version: must be "0.1", got %s', Json::quote($r->version));
            }
            if (preg_match('/^sha256:[0-9a-f]{64}$/D', $r->module_hash) !== 1) {
                $p[] = 'module_hash: must be "sha256:" followed by 64 lowercase hex digits';
            }
            if (!self::isLowerHex($r->node_pubkey, 64)) {
                $p[] = 'node_pubkey: must be 64 lowercase hex characters';
            }
            if (!self::isLowerHex($r->signature, 128)) {
                $p[] = sprintf('signature: must be 128 lowercase hex characters, got %d characters', strlen($r->signature));
            }
        }
        if ($p !== []) {
            throw new CheckFailed(self::CHECK_FORMAT, implode('; ', $p));
        }
        if ($r->node_pubkey !== bin2hex($pinnedKey)) {
            throw new CheckFailed(self::CHECK_SIGNER, sprintf('node_pubkey %s is not the pinned key %s', $r->node_pubkey, bin2hex($pinnedKey)));
        }
        $msg = implode('|', [$r->version, $r->module_hash, $r->exit_code, $r->wall_time_ms, $r->timestamp]);
        if (!sodium_crypto_sign_verify_detached(hex2bin($r->signature), hash('sha256', $msg, true), $pinnedKey)) {
            throw new CheckFailed(self::CHECK_SIGNATURE, 'Ed25519 signature does not verify for the pinned key');
        }
    }

    /** Converts associative arrays (recursively) to stdClass; lists stay lists. */
    public static function toObject(array $a): \stdClass|array
    {
        $out = [];
        foreach ($a as $k => $v) {
            $out[$k] = is_array($v) && ($v === [] || array_is_list($v)) ? array_map(static fn($e) => is_array($e) ? self::toObject($e) : $e, $v)
                : (is_array($v) ? self::toObject($v) : $v);
        }
        return array_is_list($a) && $a !== [] ? $out : (object) $out;
    }
}

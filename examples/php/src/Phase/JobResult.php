<?php

declare(strict_types=1);

namespace Phase;

/**
 * The answer to POST /v1/jobs. Output fields hold raw bytes (decoded from
 * stdout_base64 / stderr_base64). Nothing here is trustworthy until verify()
 * has passed; Client::run() calls it for you.
 */
final class JobResult
{
    /**
     * @param list<array<string, mixed>> $attempts
     * @param list<string> $replicas
     */
    public function __construct(
        public readonly string $outcome,
        public readonly int $exitCode,
        public readonly string $stdout,
        public readonly string $stderr,
        public readonly bool $stdoutTruncated,
        public readonly bool $stderrTruncated,
        public readonly string $node,
        public readonly float $wallTimeMs,
        public readonly array $attempts,
        public readonly array $replicas,
        public readonly \stdClass $receipt,
        public readonly ?string $stdoutText,
        public readonly ?string $stderrText,
    ) {
    }

    /**
     * Builds a result from a decoded response body (Json::decode, objects).
     *
     * @throws CheckFailed with check "response" for a body of the wrong shape
     */
    public static function fromResponse(mixed $b): self
    {
        if (!$b instanceof \stdClass) {
            throw new CheckFailed('response', 'job response is not a JSON object');
        }
        $want = ['outcome' => 'is_string', 'exit_code' => 'is_int', 'node' => 'is_string', 'stdout_truncated' => 'is_bool',
            'stderr_truncated' => 'is_bool', 'receipt' => static fn($v) => $v instanceof \stdClass];
        foreach ($want as $f => $ok) {
            if (!property_exists($b, $f) || !$ok($b->$f)) {
                throw new CheckFailed('response', sprintf('job response: %s missing or of the wrong type', $f));
            }
        }
        $bytes = [];
        foreach (['stdout', 'stderr'] as $s) {
            $b64 = $b->{$s . '_base64'} ?? null; // Go writes an empty output as null
            if ($b64 === null) {
                $bytes[$s] = '';
            } elseif (!is_string($b64) || ($raw = base64_decode($b64, true)) === false) {
                throw new CheckFailed('response', sprintf('job response: %s_base64 is not base64', $s));
            } else {
                $bytes[$s] = $raw;
            }
            $text = $b->$s ?? null;
            if ($text !== null && $text !== $bytes[$s]) {
                // The text is a convenience copy; it must be the bytes the receipt hashes.
                throw new CheckFailed('response', sprintf('job response: %s text differs from %s_base64', $s, $s));
            }
        }
        $wall = $b->wall_time_ms ?? 0;
        return new self(
            outcome: $b->outcome,
            exitCode: $b->exit_code,
            stdout: $bytes['stdout'],
            stderr: $bytes['stderr'],
            stdoutTruncated: $b->stdout_truncated,
            stderrTruncated: $b->stderr_truncated,
            node: $b->node,
            wallTimeMs: is_int($wall) || is_float($wall) ? (float) $wall : 0.0,
            attempts: self::attempts($b->attempts ?? []),
            replicas: array_values(array_filter(is_array($b->replicas ?? null) ? $b->replicas : [], 'is_string')),
            receipt: $b->receipt,
            stdoutText: is_string($b->stdout ?? null) ? $b->stdout : null,
            stderrText: is_string($b->stderr ?? null) ? $b->stderr : null,
        );
    }

    /**
     * Verifies the receipt against the node the API says ran the job and the
     * job this client sent, then checks the response agrees with the
     * receipt. Returns the verified receipt.
     *
     * @param list<string> $args
     * @param ?string $requester expected requester peer ID (the API node's own), or null not to check
     * @throws CheckFailed naming the failed check
     */
    public function verify(string $module, array $args, string $stdin, ?string $requester = null): \stdClass
    {
        $r = Receipt::verify($this->receipt, Expect::forJob($this->node, $module, $args, $stdin, $this->stdout, $this->stderr, $requester));
        foreach ([
            'outcome' => [$this->outcome, $r->outcome],
            'exit_code' => [$this->exitCode, $r->exit_code],
            'stdout_truncated' => [$this->stdoutTruncated, $r->stdout_truncated],
            'stderr_truncated' => [$this->stderrTruncated, $r->stderr_truncated],
        ] as $f => [$said, $signed]) {
            if ($said !== $signed) {
                throw new CheckFailed('response', sprintf('the response says %s %s but the receipt says %s', $f, var_export($said, true), var_export($signed, true)));
            }
        }
        return $r;
    }

    /** @return list<array<string, mixed>> */
    private static function attempts(mixed $list): array
    {
        $out = [];
        foreach (is_array($list) ? $list : [] as $a) {
            if ($a instanceof \stdClass) {
                $out[] = get_object_vars($a);
            }
        }
        return $out;
    }
}

<?php

declare(strict_types=1);

namespace Phase;

/**
 * What a verifier knows independently of the receipt. Every field left null
 * is not checked, except that a signer is always required: $peerId (the peer
 * that ran the job, as the API reports it) or $publicKey (a pinned key), or
 * both, in which case they must agree.
 */
final class Expect
{
    /**
     * @param ?string $peerId     peer ID of the node that ran the job (its key signs the receipt)
     * @param ?string $publicKey  pinned Ed25519 key: 32 raw bytes or 64 hex characters
     * @param ?string $moduleHash "sha256:<hex>" of the module sent (see Receipt::hashBytes)
     * @param ?string $inputHash  Receipt::inputHash(args, stdin) of the input sent
     * @param ?string $stdout     the stdout bytes received (hashed and compared)
     * @param ?string $stderr     the stderr bytes received (hashed and compared)
     */
    public function __construct(
        public ?string $peerId = null,
        public ?string $publicKey = null,
        public ?string $jobId = null,
        public ?string $nonce = null,
        public ?string $requester = null,
        public ?string $moduleHash = null,
        public ?string $inputHash = null,
        public ?string $stdout = null,
        public ?string $stderr = null,
    ) {
    }

    /** Expectations for a job: hashes the module and input for you. */
    public static function forJob(string $peerId, string $module, array $args, string $stdin, ?string $stdout, ?string $stderr, ?string $requester = null): self
    {
        return new self(
            peerId: $peerId,
            requester: $requester,
            moduleHash: Receipt::hashBytes($module),
            inputHash: Receipt::inputHash($args, $stdin),
            stdout: $stdout,
            stderr: $stderr,
        );
    }
}

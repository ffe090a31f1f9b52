<?php

declare(strict_types=1);

namespace Phase;

/**
 * The node's API could not be reached, or answered with an error. $status
 * is the HTTP status (0 when no answer came), $attempts lists the nodes the
 * daemon tried for a failed job (each with node, outcome, reason, detail,
 * duration_ms).
 */
final class ApiError extends \RuntimeException
{
    /** @param list<array<string, mixed>> $attempts */
    public function __construct(string $message, public readonly int $status = 0, public readonly array $attempts = [], public readonly string $body = '')
    {
        parent::__construct($message);
    }
}

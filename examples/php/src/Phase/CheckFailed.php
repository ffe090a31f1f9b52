<?php

declare(strict_types=1);

namespace Phase;

/**
 * A receipt (or a job response) failed verification. $check names the check
 * that failed (one of the Receipt::CHECK_* constants, or "response"), $detail
 * says why.
 */
final class CheckFailed extends \RuntimeException
{
    public function __construct(public readonly string $check, public readonly string $detail)
    {
        parent::__construct(sprintf('receipt: %s check failed: %s', $check, $detail));
    }
}

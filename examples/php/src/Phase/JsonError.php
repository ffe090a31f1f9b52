<?php

declare(strict_types=1);

namespace Phase;

/** Invalid or unsupported JSON; the message names the problem and where. */
final class JsonError extends \InvalidArgumentException
{
}

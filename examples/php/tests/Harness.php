<?php

declare(strict_types=1);

namespace Phase\Tests;

use Phase\CheckFailed;

/** A tiny test runner: named cases, one line each, "N passed, M failed" last. */
final class Harness
{
    public int $passed = 0;
    public int $failed = 0;

    /** Runs $fn; it passes unless it throws (assertions throw \AssertionError). */
    public function test(string $name, callable $fn): void
    {
        try {
            $fn();
            $this->passed++;
            echo "ok    $name\n";
        } catch (\Throwable $e) {
            $this->failed++;
            $where = $e instanceof \AssertionError ? '' : sprintf(' [%s at %s:%d]', get_class($e), basename($e->getFile()), $e->getLine());
            echo "FAIL  $name: " . $e->getMessage() . $where . "\n";
        }
    }

    /** Exits with the summary line; non-zero when anything failed. */
    public function finish(): never
    {
        printf("%d passed, %d failed\n", $this->passed, $this->failed);
        exit($this->failed === 0 && $this->passed > 0 ? 0 : 1);
    }

    public static function eq(mixed $want, mixed $got, string $what = 'value'): void
    {
        if ($want !== $got) {
            throw new \AssertionError(sprintf('%s: want %s, got %s', $what, self::show($want), self::show($got)));
        }
    }

    public static function true(bool $cond, string $what): void
    {
        if (!$cond) {
            throw new \AssertionError($what);
        }
    }

    /** $fn must throw CheckFailed for $check (and, if given, a message containing $contains). */
    public static function failsCheck(string $check, callable $fn, string $contains = ''): CheckFailed
    {
        try {
            $fn();
        } catch (CheckFailed $e) {
            if ($e->check !== $check) {
                throw new \AssertionError(sprintf('want the %s check to fail, but %s failed: %s', $check, $e->check, $e->getMessage()));
            }
            if ($contains !== '' && !str_contains($e->getMessage(), $contains)) {
                throw new \AssertionError(sprintf('%s check failed, but the message %s lacks %s', $check, self::show($e->getMessage()), self::show($contains)));
            }
            return $e;
        }
        throw new \AssertionError("want the $check check to fail, but verification passed");
    }

    /**
     * $fn must throw an instance of $class whose message contains $contains.
     *
     * @template T of \Throwable
     * @param class-string<T> $class
     * @return T
     */
    public static function throws(string $class, callable $fn, string $contains = ''): \Throwable
    {
        try {
            $fn();
        } catch (\Throwable $e) {
            if (!$e instanceof $class) {
                throw new \AssertionError(sprintf('want %s, got %s: %s', $class, get_class($e), $e->getMessage()));
            }
            if ($contains !== '' && !str_contains($e->getMessage(), $contains)) {
                throw new \AssertionError(sprintf('error %s lacks %s', self::show($e->getMessage()), self::show($contains)));
            }
            return $e;
        }
        throw new \AssertionError("want $class, nothing was thrown");
    }

    public static function show(mixed $v): string
    {
        if (is_string($v)) {
            $s = json_encode(strlen($v) > 200 ? substr($v, 0, 200) . '…' : $v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
            return $s === false ? bin2hex($v) : $s;
        }
        return var_export($v, true);
    }
}

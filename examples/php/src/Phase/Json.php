<?php

declare(strict_types=1);

namespace Phase;

/**
 * A strict JSON decoder for the documents Phase signs.
 *
 * json_decode() silently keeps the last of two equal keys and turns big
 * integers into floats; a verifier must not, or two implementations could
 * read one document two ways. This decoder rejects duplicate keys (after
 * unescaping), invalid UTF-8, lone UTF-16 surrogate escapes, numbers with a
 * fraction or exponent, integers beyond ±(2^53−1), nesting deeper than 1000
 * and trailing data. Objects decode to stdClass (or, with $assoc, to arrays),
 * so an empty object stays distinguishable from an empty list.
 */
final class Json
{
    public const MAX_DEPTH = 1000;

    private const NUMBER_RE = '/-?(?:0|[1-9][0-9]*+)(\.[0-9]++)?([eE][+-]?[0-9]++)?/A';

    private string $s;
    private int $n;
    private int $i = 0;
    private bool $assoc;
    private bool $floats;

    private function __construct(string $s, bool $assoc, bool $floats)
    {
        $this->s = $s;
        $this->n = strlen($s);
        $this->assoc = $assoc;
        $this->floats = $floats;
    }

    /**
     * Decodes one JSON value strictly. With $floats, numbers that are not
     * safe integers decode to float instead of being an error (for API
     * bodies with timings; never for documents that are signed).
     *
     * @throws JsonError naming the problem and its byte offset
     */
    public static function decode(string $json, bool $assoc = false, bool $floats = false): mixed
    {
        if (preg_match('//u', $json) !== 1) {
            throw new JsonError('JSON input is not valid UTF-8');
        }
        $p = new self($json, $assoc, $floats);
        $v = $p->value(0);
        $p->ws();
        if ($p->i !== $p->n) {
            throw new JsonError(sprintf('trailing data after JSON value at offset %d', $p->i));
        }
        return $v;
    }

    private function ws(): void
    {
        $this->i += strspn($this->s, " \t\r\n", $this->i);
    }

    private function fail(string $what): never
    {
        if ($this->i >= $this->n) {
            throw new JsonError('unexpected end of JSON input');
        }
        throw new JsonError(sprintf('%s at offset %d', $what, $this->i));
    }

    private function value(int $depth): mixed
    {
        if ($depth > self::MAX_DEPTH) {
            throw new JsonError(sprintf('nesting deeper than %d levels', self::MAX_DEPTH));
        }
        $this->ws();
        if ($this->i >= $this->n) {
            $this->fail('');
        }
        $c = $this->s[$this->i];
        switch ($c) {
            case '{':
                return $this->object($depth);
            case '[':
                return $this->arrayValue($depth);
            case '"':
                return $this->string();
            case 't':
                return $this->literal('true', true);
            case 'f':
                return $this->literal('false', false);
            case 'n':
                return $this->literal('null', null);
        }
        if ($c === '-' || ($c >= '0' && $c <= '9')) {
            return $this->number();
        }
        $this->fail(sprintf('invalid character %s', json_encode($c, JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE)));
    }

    private function literal(string $word, mixed $v): mixed
    {
        if (substr_compare($this->s, $word, $this->i, strlen($word)) !== 0) {
            $this->fail('invalid literal');
        }
        $this->i += strlen($word);
        return $v;
    }

    private function number(): int|float
    {
        if (preg_match(self::NUMBER_RE, $this->s, $m, 0, $this->i) !== 1) {
            $this->fail('invalid number');
        }
        $text = $m[0];
        $digits = ltrim($text, '-');
        $isInt = ($m[1] ?? '') === '' && ($m[2] ?? '') === '';
        if ($this->floats && (!$isInt || strlen($digits) > 16 || (int) $digits > Canonical::MAX_SAFE_INTEGER)) {
            $this->i += strlen($text);
            return (float) $text;
        }
        if (!$isInt) {
            throw new JsonError(sprintf('number %s at offset %d is not an integer (only integers without fraction or exponent are supported)', self::short($text), $this->i));
        }
        if (strlen($digits) > 16 || (int) $digits > Canonical::MAX_SAFE_INTEGER) {
            throw new JsonError(sprintf('integer %s at offset %d out of range ±%d (2^53−1)', self::short($text), $this->i, Canonical::MAX_SAFE_INTEGER));
        }
        $this->i += strlen($text);
        return (int) $text; // "-0" becomes 0, as RFC 8785 writes it
    }

    private function string(): string
    {
        // Find the closing quote: the first one not escaped by an odd run of
        // backslashes. (One regex over the whole token fails on strings with
        // millions of escapes: PCRE runs out of stack.)
        $at = $this->i;
        $p = $at + 1;
        while (true) {
            $q = strpos($this->s, '"', $p);
            if ($q === false) {
                $this->i = $this->n;
                $this->fail('');
            }
            $k = $q - 1;
            while ($k > $at && $this->s[$k] === '\\') {
                $k--;
            }
            if ((($q - 1 - $k) & 1) === 0) {
                break;
            }
            $p = $q + 1;
        }
        $tok = substr($this->s, $at, $q - $at + 1);
        $this->i = $q + 1;
        if (preg_match('/[\x00-\x1f]/', $tok) === 1) {
            throw new JsonError(sprintf('invalid or unterminated string at offset %d: raw control character', $at));
        }
        if (strpos($tok, '\\') === false) {
            return substr($tok, 1, -1);
        }
        $v = json_decode($tok, false, 2);
        if (!is_string($v)) {
            if (json_last_error() === JSON_ERROR_UTF16) {
                throw new JsonError(sprintf('lone UTF-16 surrogate escape in string at offset %d', $at));
            }
            throw new JsonError(sprintf('invalid string at offset %d: %s', $at, json_last_error_msg()));
        }
        return $v;
    }

    private function object(int $depth): object|array
    {
        $this->i++; // {
        $out = [];
        $this->ws();
        if ($this->i < $this->n && $this->s[$this->i] === '}') {
            $this->i++;
            return $this->assoc ? [] : new \stdClass();
        }
        while (true) {
            $this->ws();
            if ($this->i >= $this->n || $this->s[$this->i] !== '"') {
                $this->fail('object key is not a string');
            }
            $key = $this->string();
            if (!$this->assoc && $key !== '' && $key[0] === "\0") {
                $this->fail('object key starting with U+0000 is not supported');
            }
            if (array_key_exists($key, $out)) {
                throw new JsonError(sprintf('duplicate object key %s', self::quote($key)));
            }
            $this->ws();
            if ($this->i >= $this->n || $this->s[$this->i] !== ':') {
                $this->fail("expected ':' after object key");
            }
            $this->i++;
            $out[$key] = $this->value($depth + 1);
            $this->ws();
            if ($this->i >= $this->n) {
                $this->fail('');
            }
            $c = $this->s[$this->i++];
            if ($c === '}') {
                break;
            }
            if ($c !== ',') {
                $this->i--;
                $this->fail("expected ',' or '}' in object");
            }
        }
        if ($this->assoc) {
            return $out;
        }
        // Integer-like keys ("1") survive a cast to stdClass as string properties.
        return (object) $out;
    }

    private function arrayValue(int $depth): array
    {
        $this->i++; // [
        $out = [];
        $this->ws();
        if ($this->i < $this->n && $this->s[$this->i] === ']') {
            $this->i++;
            return $out;
        }
        while (true) {
            $out[] = $this->value($depth + 1);
            $this->ws();
            if ($this->i >= $this->n) {
                $this->fail('');
            }
            $c = $this->s[$this->i++];
            if ($c === ']') {
                return $out;
            }
            if ($c !== ',') {
                $this->i--;
                $this->fail("expected ',' or ']' in array");
            }
        }
    }

    private static function short(string $s): string
    {
        return strlen($s) > 40 ? substr($s, 0, 40) . '…' : $s;
    }

    /** Quotes a value for an error message: escaped, shortened. */
    public static function quote(string $s): string
    {
        $q = json_encode(strlen($s) > 80 ? substr($s, 0, 80) : $s, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        return strlen($s) > 80 ? $q . '…' : $q;
    }
}

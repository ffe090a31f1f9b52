<?php

declare(strict_types=1);

namespace Phase;

/**
 * RFC 8785 (JSON Canonicalization Scheme) for Phase's value space: objects,
 * arrays, strings, booleans, null and integers within ±(2^53−1).
 *
 * Object members are sorted by the UTF-16 code units of their keys, there is
 * no whitespace, and strings are escaped as ECMAScript JSON.stringify does:
 * \" \\ \b \f \n \r \t, \u00xx (lowercase) for the other characters below
 * U+0020, everything else (including '/', non-ASCII, U+2028, U+2029) as raw
 * UTF-8. Floats are refused rather than formatted: Phase signs integers only.
 *
 * PHP values map as: stdClass → object; array → list if array_is_list(),
 * else object (an empty array is []; use new \stdClass() for {}).
 */
final class Canonical
{
    public const MAX_SAFE_INTEGER = 9007199254740991;

    /** Canonical JSON of a JSON text (decoded strictly with Json::decode). */
    public static function canonicalize(string $json): string
    {
        return self::encode(Json::decode($json));
    }

    /**
     * Canonical JSON of a PHP value.
     *
     * @throws JsonError for a value outside the supported space
     */
    public static function encode(mixed $v): string
    {
        $out = '';
        self::write($out, $v, '$', 0);
        return $out;
    }

    private static function write(string &$out, mixed $v, string $path, int $depth): void
    {
        if ($depth > Json::MAX_DEPTH) {
            throw new JsonError(sprintf('%s: nesting deeper than %d levels', $path, Json::MAX_DEPTH));
        }
        if ($v === null) {
            $out .= 'null';
        } elseif ($v === true) {
            $out .= 'true';
        } elseif ($v === false) {
            $out .= 'false';
        } elseif (is_int($v)) {
            if ($v > self::MAX_SAFE_INTEGER || $v < -self::MAX_SAFE_INTEGER) {
                throw new JsonError(sprintf('%s: integer %d out of range ±%d (2^53−1)', $path, $v, self::MAX_SAFE_INTEGER));
            }
            $out .= (string) $v;
        } elseif (is_string($v)) {
            $out .= self::string($v, $path);
        } elseif (is_float($v)) {
            throw new JsonError(sprintf('%s: float %s is not supported (only integers)', $path, var_export($v, true)));
        } elseif (is_array($v) && array_is_list($v)) {
            $out .= '[';
            foreach ($v as $i => $e) {
                if ($i > 0) {
                    $out .= ',';
                }
                self::write($out, $e, $path . '[' . $i . ']', $depth + 1);
            }
            $out .= ']';
        } elseif (is_array($v) || $v instanceof \stdClass) {
            $members = is_array($v) ? $v : get_object_vars($v);
            $keys = [];
            foreach ($members as $k => $_) {
                $k = (string) $k;
                $keys[] = [self::utf16($k, $path), $k];
            }
            usort($keys, static fn(array $a, array $b): int => strcmp($a[0], $b[0]));
            $out .= '{';
            foreach ($keys as $i => [, $k]) {
                if ($i > 0) {
                    $out .= ',';
                }
                $out .= self::string($k, $path) . ':';
                self::write($out, $members[$k], $path . '.' . $k, $depth + 1);
            }
            $out .= '}';
        } else {
            throw new JsonError(sprintf('%s: %s is not a JSON value', $path, get_debug_type($v)));
        }
    }

    /** A string literal, quotes included, escaped as JSON.stringify does. */
    public static function string(string $s, string $path = '$'): string
    {
        if (preg_match('//u', $s) !== 1) {
            throw new JsonError(sprintf('%s: string is not valid UTF-8', $path));
        }
        return '"' . preg_replace_callback('/[\x00-\x1f"\\\\]/', static function (array $m): string {
            return match ($m[0]) {
                '"' => '\\"',
                '\\' => '\\\\',
                "\x08" => '\\b',
                "\x0c" => '\\f',
                "\n" => '\\n',
                "\r" => '\\r',
                "\t" => '\\t',
                default => sprintf('\\u%04x', ord($m[0])),
            };
        }, $s) . '"';
    }

    /**
     * The UTF-16BE form of a valid UTF-8 string: comparing two of these with
     * strcmp orders them by UTF-16 code units, as RFC 8785 §3.2.3 sorts keys.
     */
    public static function utf16(string $s, string $path = '$'): string
    {
        if (preg_match('/[\x80-\xff]/', $s) !== 1) {
            // ASCII: code units are the bytes; a NUL byte before each keeps the order.
            return preg_replace('/./s', "\0\$0", $s);
        }
        $cps = preg_split('//u', $s, -1, PREG_SPLIT_NO_EMPTY);
        if ($cps === false) {
            throw new JsonError(sprintf('%s: key is not valid UTF-8', $path));
        }
        $out = '';
        foreach ($cps as $ch) {
            $cp = self::codePoint($ch);
            if ($cp >= 0x10000) {
                $cp -= 0x10000;
                $out .= pack('nn', 0xD800 | ($cp >> 10), 0xDC00 | ($cp & 0x3FF));
            } else {
                $out .= pack('n', $cp);
            }
        }
        return $out;
    }

    private static function codePoint(string $ch): int
    {
        $b = array_values(unpack('C*', $ch));
        return match (count($b)) {
            1 => $b[0],
            2 => (($b[0] & 0x1F) << 6) | ($b[1] & 0x3F),
            3 => (($b[0] & 0x0F) << 12) | (($b[1] & 0x3F) << 6) | ($b[2] & 0x3F),
            default => (($b[0] & 0x07) << 18) | (($b[1] & 0x3F) << 12) | (($b[2] & 0x3F) << 6) | ($b[3] & 0x3F),
        };
    }
}

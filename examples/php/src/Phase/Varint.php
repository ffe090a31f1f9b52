<?php

declare(strict_types=1);

namespace Phase;

/** Unsigned LEB128 varints (multiformats unsigned-varint; Phase frame lengths). */
final class Varint
{
    public static function encode(int $v): string
    {
        if ($v < 0) {
            throw new \InvalidArgumentException(sprintf('varint: negative value %d', $v));
        }
        $out = '';
        while ($v >= 0x80) {
            $out .= chr(($v & 0x7F) | 0x80);
            $v >>= 7;
        }
        return $out . chr($v);
    }

    /**
     * Decodes the varint at $offset and advances it. Rejects truncated input,
     * non-shortest forms (WIRE-3) and values beyond PHP's signed 64-bit range.
     *
     * @throws \InvalidArgumentException
     */
    public static function decode(string $b, int &$offset): int
    {
        $v = 0;
        for ($i = 0; $i < 10; $i++) {
            if ($offset + $i >= strlen($b)) {
                throw new \InvalidArgumentException('varint: truncated');
            }
            $c = ord($b[$offset + $i]);
            if ($i === 9 && $c >= 0x80) {
                throw new \InvalidArgumentException('varint: longer than 10 bytes');
            }
            if ($i === 9 && $c > 0x01) {
                throw new \InvalidArgumentException('varint: value does not fit in 64 bits');
            }
            if ($i === 9 && $c === 0x01) {
                // Valid on the wire, but 9 groups already fill PHP's signed 63 value bits.
                throw new \InvalidArgumentException('varint: value of 2^63 or more does not fit in a PHP integer');
            }
            $v |= ($c & 0x7F) << (7 * $i);
            if ($c < 0x80) {
                if ($i > 0 && $c === 0) {
                    throw new \InvalidArgumentException('varint: not in shortest form');
                }
                $offset += $i + 1;
                return $v;
            }
        }
        throw new \InvalidArgumentException('varint: longer than 10 bytes');
    }
}

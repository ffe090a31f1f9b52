<?php

declare(strict_types=1);

namespace Phase;

/** Base58btc (the bitcoin alphabet), as libp2p writes peer IDs. */
final class Base58
{
    public const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

    public static function encode(string $bytes): string
    {
        $zeros = strspn($bytes, "\0");
        // Big-endian base-256 to base-58 by repeated division; inputs are short.
        $num = array_values(unpack('C*', substr($bytes, $zeros)) ?: []);
        $digits = '';
        while ($num !== []) {
            $rem = 0;
            $next = [];
            foreach ($num as $byte) {
                $acc = ($rem << 8) | $byte;
                $q = intdiv($acc, 58);
                $rem = $acc % 58;
                if ($q !== 0 || $next !== []) {
                    $next[] = $q;
                }
            }
            $digits .= self::ALPHABET[$rem];
            $num = $next;
        }
        return str_repeat('1', $zeros) . strrev($digits);
    }

    /** @throws \InvalidArgumentException naming the first invalid character */
    public static function decode(string $s): string
    {
        $ones = strspn($s, '1');
        $num = []; // little-endian base-256 digits
        for ($i = $ones, $n = strlen($s); $i < $n; $i++) {
            $v = strpos(self::ALPHABET, $s[$i]);
            if ($v === false) {
                throw new \InvalidArgumentException(sprintf('base58: invalid character %s at position %d', Json::quote($s[$i]), $i));
            }
            $carry = $v;
            foreach ($num as $j => $d) {
                $carry += $d * 58;
                $num[$j] = $carry & 0xFF;
                $carry >>= 8;
            }
            while ($carry > 0) {
                $num[] = $carry & 0xFF;
                $carry >>= 8;
            }
        }
        return str_repeat("\0", $ones) . ($num === [] ? '' : pack('C*', ...array_reverse($num)));
    }
}

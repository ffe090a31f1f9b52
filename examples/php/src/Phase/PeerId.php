<?php

declare(strict_types=1);

namespace Phase;

/**
 * libp2p peer IDs. An Ed25519 peer ID is the base58btc encoding of an
 * identity multihash (code 0x00, length 0x24) over the protobuf PublicKey
 * {Type: Ed25519 (1), Data: <32-byte key>}, i.e. of the 38 bytes
 * 00 24 08 01 12 20 <key>; it always starts with "12D3KooW". Other keys
 * (RSA, secp256k1, ...) give sha2-256 multihash IDs ("Qm...") that carry no
 * key. The CIDv1 form (multibase "b" base32, codec libp2p-key 0x72) is
 * accepted too, as libp2p's peer.Decode accepts it.
 */
final class PeerId
{
    private const ED25519_PREFIX = "\x00\x24\x08\x01\x12\x20";
    private const MAX_LENGTH = 128;

    /**
     * The 32-byte Ed25519 public key an Ed25519 peer ID carries.
     *
     * @throws \InvalidArgumentException for anything else, saying why
     */
    public static function toPublicKey(string $peerId): string
    {
        $mh = self::multihash($peerId);
        if ($mh[0] !== "\x00") {
            throw new \InvalidArgumentException(sprintf('peer ID %s carries no public key (a hashed key; only Ed25519 peer IDs are supported)', Json::quote($peerId)));
        }
        if (strlen($mh) !== 38 || strncmp($mh, self::ED25519_PREFIX, 6) !== 0) {
            throw new \InvalidArgumentException(sprintf('peer ID %s is not an Ed25519 peer ID (want the 38 bytes 00 24 08 01 12 20 <32-byte key>, got %s)', Json::quote($peerId), bin2hex(substr($mh, 0, 6)) . '…'));
        }
        return substr($mh, 6);
    }

    /** The canonical (base58) peer ID of a 32-byte Ed25519 public key. */
    public static function fromPublicKey(string $publicKey): string
    {
        if (strlen($publicKey) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) {
            throw new \InvalidArgumentException(sprintf('Ed25519 public key must be 32 bytes, got %d', strlen($publicKey)));
        }
        return Base58::encode(self::ED25519_PREFIX . $publicKey);
    }

    /** Whether $peerId is a valid peer ID written in its canonical base58 form. */
    public static function isCanonical(string $peerId): bool
    {
        try {
            return Base58::encode(self::multihash($peerId)) === $peerId;
        } catch (\InvalidArgumentException) {
            return false;
        }
    }

    /**
     * The multihash bytes of a peer ID (base58 or CIDv1), checked to be an
     * identity or sha2-256 multihash whose length matches.
     */
    public static function multihash(string $peerId): string
    {
        if ($peerId === '' || strlen($peerId) > self::MAX_LENGTH) {
            throw new \InvalidArgumentException(sprintf('not a peer ID: %s', Json::quote($peerId)));
        }
        if ($peerId[0] === '1' || str_starts_with($peerId, 'Qm')) {
            $mh = Base58::decode($peerId);
        } else {
            $mh = self::fromCid($peerId);
        }
        $off = 0;
        $code = Varint::decode($mh, $off);
        $len = Varint::decode($mh, $off);
        $digest = substr($mh, $off);
        if ($code !== 0x00 && $code !== 0x12) {
            throw new \InvalidArgumentException(sprintf('peer ID %s: multihash code 0x%x is neither identity (0x00) nor sha2-256 (0x12)', Json::quote($peerId), $code));
        }
        if (strlen($digest) !== $len || ($code === 0x12 && $len !== 32)) {
            throw new \InvalidArgumentException(sprintf('peer ID %s: multihash length %d does not match its %d digest bytes', Json::quote($peerId), $len, strlen($digest)));
        }
        return $mh;
    }

    private static function fromCid(string $s): string
    {
        if ($s[0] !== 'b' || preg_match('/^b[a-z2-7]+$/', $s) !== 1) {
            throw new \InvalidArgumentException(sprintf('not a peer ID (neither base58 nor a base32 CIDv1): %s', Json::quote($s)));
        }
        $bits = 0;
        $acc = 0;
        $out = '';
        for ($i = 1, $n = strlen($s); $i < $n; $i++) {
            $acc = (($acc << 5) | strpos('abcdefghijklmnopqrstuvwxyz234567', $s[$i])) & 0xFFFF;
            $bits += 5;
            if ($bits >= 8) {
                $bits -= 8;
                $out .= chr(($acc >> $bits) & 0xFF);
            }
        }
        $off = 0;
        if (Varint::decode($out, $off) !== 1 || Varint::decode($out, $off) !== 0x72) {
            throw new \InvalidArgumentException(sprintf('peer ID %s: CID is not a CIDv1 with codec libp2p-key (0x72)', Json::quote($s)));
        }
        return substr($out, $off);
    }
}

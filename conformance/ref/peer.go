package ref

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/big"
	"strings"
)

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// ed25519PeerPrefix is identity multihash (0x00, length 0x24) of the
// protobuf {Type: Ed25519, Data: 32 bytes} (SPEC §1, spec-api §6.2).
var ed25519PeerPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// PeerKey returns the Ed25519 key a base58 peer ID carries.
func PeerKey(id string) (ed25519.PublicKey, error) {
	b, err := base58Decode(id)
	if err != nil {
		return nil, err
	}
	if len(b) != 38 || !bytes.HasPrefix(b, ed25519PeerPrefix) {
		return nil, errors.New("not an Ed25519 identity peer ID")
	}
	return ed25519.PublicKey(b[6:]), nil
}

// PeerID is the canonical base58 peer ID of an Ed25519 key.
func PeerID(key ed25519.PublicKey) string {
	return base58Encode(append(append([]byte(nil), ed25519PeerPrefix...), key...))
}

func base58Decode(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty peer ID")
	}
	n := new(big.Int)
	for _, c := range s {
		i := strings.IndexRune(b58, c)
		if i < 0 {
			return nil, errors.New("not base58")
		}
		n.Mul(n, big.NewInt(58))
		n.Add(n, big.NewInt(int64(i)))
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	return append(make([]byte, zeros), n.Bytes()...), nil
}

func base58Encode(b []byte) string {
	n := new(big.Int).SetBytes(b)
	var out []byte
	mod := new(big.Int)
	for n.Sign() > 0 {
		n.DivMod(n, big.NewInt(58), mod)
		out = append(out, b58[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

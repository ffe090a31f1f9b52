package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// LegacyVersion is the seed prototype's receipt version.
const LegacyVersion = "0.1"

// LegacyReceipt is a v0.1 receipt. It binds no job, input, output or peer:
// verify it only for compatibility, against a pinned key, and never accept it
// as proof of a run.
type LegacyReceipt struct {
	Version    string `json:"version"`
	ModuleHash string `json:"module_hash"`
	ExitCode   int    `json:"exit_code"`
	WallTimeMS int64  `json:"wall_time_ms"`
	Timestamp  int64  `json:"timestamp"`
	NodePubkey string `json:"node_pubkey"`
	Signature  string `json:"signature"`
}

// LegacyMessage is the pipe-joined string whose SHA-256 a v0.1 receipt signs:
// version|module_hash|exit_code|wall_time_ms|timestamp, integers in decimal.
func LegacyMessage(r LegacyReceipt) []byte {
	b := make([]byte, 0, 128)
	b = append(b, r.Version...)
	b = append(b, '|')
	b = append(b, r.ModuleHash...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(r.ExitCode), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, r.WallTimeMS, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, r.Timestamp, 10)
	return b
}

// SignLegacy sets NodePubkey and Signature of a v0.1 receipt. It exists for
// tests and for playing an old node; new nodes sign v1 receipts.
func SignLegacy(r *LegacyReceipt, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("legacy receipt: sign: private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	r.NodePubkey = hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	digest := sha256.Sum256(LegacyMessage(*r))
	r.Signature = hex.EncodeToString(ed25519.Sign(priv, digest[:]))
	return nil
}

// ParseLegacy decodes a v0.1 receipt strictly (unknown, missing or null
// fields, duplicate keys, wrong types and trailing data are errors). It does
// not verify the signature.
func ParseLegacy(data []byte) (LegacyReceipt, error) {
	if len(data) > MaxSize {
		return LegacyReceipt{}, fmt.Errorf("legacy receipt: %d bytes, max %d", len(data), MaxSize)
	}
	f, err := strictjson.ParseObject(data)
	if err != nil {
		return LegacyReceipt{}, fmt.Errorf("legacy receipt: invalid JSON: %w", err)
	}
	const lim = phase.MaxSafeInteger
	f.Only(legacyFields...)
	r := LegacyReceipt{
		Version:    f.String("version", true),
		ModuleHash: f.String("module_hash", true),
		ExitCode:   int(f.Int("exit_code", true, -lim, lim)),
		WallTimeMS: f.Int("wall_time_ms", true, -lim, lim),
		Timestamp:  f.Int("timestamp", true, -lim, lim),
		NodePubkey: f.String("node_pubkey", true),
		Signature:  f.String("signature", true),
	}
	if err := f.Err(); err != nil {
		return LegacyReceipt{}, fmt.Errorf("legacy receipt: %w", err)
	}
	return r, nil
}

var legacyFields = []string{"version", "module_hash", "exit_code", "wall_time_ms", "timestamp", "node_pubkey", "signature"}

// VerifyLegacy checks a v0.1 receipt's plain Ed25519 signature over
// SHA-256(LegacyMessage(r)) against a pinned key, which is always required:
// the receipt's own node_pubkey must equal it. Failures are *CheckError.
func VerifyLegacy(r LegacyReceipt, pinned ed25519.PublicKey) error {
	if pinned == nil {
		return &CheckError{Check: CheckSigner, Detail: "legacy receipts bind no peer: a pinned public key is required"}
	}
	if len(pinned) != ed25519.PublicKeySize {
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf("pinned key must be %d bytes, got %d", ed25519.PublicKeySize, len(pinned))}
	}
	var problems []string
	if r.Version != LegacyVersion {
		problems = append(problems, fmt.Sprintf("version: must be %q, got %s", LegacyVersion, phase.Quote(r.Version)))
	}
	if !phase.IsHash(r.ModuleHash) {
		problems = append(problems, fmt.Sprintf(`module_hash: must be "sha256:" followed by 64 lowercase hex digits, got %s`, phase.Quote(r.ModuleHash)))
	}
	if !phase.IsLowerHex(r.NodePubkey, 64) {
		problems = append(problems, fmt.Sprintf("node_pubkey: must be 64 lowercase hex characters, got %s", phase.Quote(r.NodePubkey)))
	}
	if !phase.IsLowerHex(r.Signature, 128) {
		problems = append(problems, fmt.Sprintf("signature: must be 128 lowercase hex characters, got %d characters", len(r.Signature)))
	}
	if len(problems) > 0 {
		return formatErr("%s", joinProblems(problems))
	}
	if want := hex.EncodeToString(pinned); r.NodePubkey != want {
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf("node_pubkey %s is not the pinned key %s", r.NodePubkey, want)}
	}
	sig, _ := hex.DecodeString(r.Signature) // format-checked above
	digest := sha256.Sum256(LegacyMessage(r))
	if !ed25519.Verify(pinned, digest[:], sig) {
		return &CheckError{Check: CheckSignature, Detail: "Ed25519 signature does not verify for the pinned key"}
	}
	return nil
}

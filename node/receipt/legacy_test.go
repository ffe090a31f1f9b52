package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Known answer from DESIGN.md §3 (the seed prototype's format).
const (
	legacyPubHex  = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
	legacyMessage = "0.1|sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855|0|233|1731110400"
	legacySigHex  = "09c5e7f222ff3f3a83ff3af86073f74fe8644f6a1f990f6214c64a2994cf6a72ef69d6e14a31dd44e821d7d557b60eaf4dcfc2fdfa88d699a3233ce299561903"
)

func legacyKAT() LegacyReceipt {
	return LegacyReceipt{
		Version:    "0.1",
		ModuleHash: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		ExitCode:   0,
		WallTimeMS: 233,
		Timestamp:  1731110400,
		NodePubkey: legacyPubHex,
		Signature:  legacySigHex,
	}
}

func TestLEG1_LegacyKnownAnswer(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(seedFrom(0))
	pub := priv.Public().(ed25519.PublicKey)
	assert.Equal(t, legacyPubHex, hex.EncodeToString(pub))

	kat := legacyKAT()
	assert.Equal(t, legacyMessage, string(LegacyMessage(kat)))
	require.NoError(t, VerifyLegacy(kat, pub))

	// Signing the same fields reproduces the published signature.
	fresh := kat
	fresh.NodePubkey, fresh.Signature = "", ""
	require.NoError(t, SignLegacy(&fresh, priv))
	assert.Equal(t, kat, fresh)

	parsed, err := ParseLegacy(marshal(t, kat))
	require.NoError(t, err)
	assert.Equal(t, kat, parsed)
	v, err := Sniff(marshal(t, kat))
	require.NoError(t, err)
	assert.Equal(t, LegacyVersion, v)
}

func TestLEG1_LEG2_VerifyLegacyFailures(t *testing.T) {
	pub, err := hex.DecodeString(legacyPubHex)
	require.NoError(t, err)
	otherPriv := ed25519.NewKeyFromSeed(seedFrom(0x40))
	otherPub := otherPriv.Public().(ed25519.PublicKey)

	// A receipt validly signed by another key.
	byOther := legacyKAT()
	require.NoError(t, SignLegacy(&byOther, otherPriv))

	mod := func(fn func(*LegacyReceipt)) LegacyReceipt {
		r := legacyKAT()
		fn(&r)
		return r
	}
	tests := []struct {
		name    string
		r       LegacyReceipt
		pinned  ed25519.PublicKey
		want    string
		wantMsg string
	}{
		{"no pinned key", legacyKAT(), nil, CheckSigner, "pinned public key is required"},
		{"short pinned key", legacyKAT(), pub[:31], CheckSigner, "must be 32 bytes"},
		{"other pinned key", legacyKAT(), otherPub, CheckSigner, "not the pinned key"},
		{"signed by other, pinned ours", byOther, pub, CheckSigner, "not the pinned key"},
		{"signed by other, claims ours", mod(func(r *LegacyReceipt) { r.Signature = byOther.Signature }), pub, CheckSignature, "does not verify"},
		{"wall time tampered", mod(func(r *LegacyReceipt) { r.WallTimeMS = 234 }), pub, CheckSignature, "does not verify"},
		{"exit code tampered", mod(func(r *LegacyReceipt) { r.ExitCode = 1 }), pub, CheckSignature, "does not verify"},
		{"timestamp tampered", mod(func(r *LegacyReceipt) { r.Timestamp++ }), pub, CheckSignature, "does not verify"},
		{"module hash tampered", mod(func(r *LegacyReceipt) { r.ModuleHash = flipHex(r.ModuleHash) }), pub, CheckSignature, "does not verify"},
		{"version", mod(func(r *LegacyReceipt) { r.Version = "1" }), pub, CheckFormat, `version: must be "0.1"`},
		{"truncated signature", mod(func(r *LegacyReceipt) { r.Signature = r.Signature[:100] }), pub, CheckFormat, "signature: must be 128"},
		{"uppercase pubkey", mod(func(r *LegacyReceipt) { r.NodePubkey = "03A1" + r.NodePubkey[4:] }), pub, CheckFormat, "node_pubkey"},
		{"bad module hash", mod(func(r *LegacyReceipt) { r.ModuleHash = "md5:00" }), pub, CheckFormat, "module_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyLegacy(tt.r, tt.pinned)
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, ce.Check)
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestParseLegacyErrors(t *testing.T) {
	good := string(marshal(t, legacyKAT()))
	tests := []struct {
		name, in, wantErr string
	}{
		{"unknown field", `{"job_id":"x",` + good[1:], `field "job_id": unknown member`},
		{"missing field", `{"version":"0.1"}`, `field "module_hash": missing`},
		{"wrong type", `{"version":"0.1","module_hash":"x","exit_code":"0","wall_time_ms":1,"timestamp":1,"node_pubkey":"","signature":""}`, `field "exit_code": must be an integer, got a string`},
		{"trailing", good + ` 1`, "trailing data"},
		{"not object", `"x"`, "want a JSON object"},
		{"null", `null`, "got null"},
		{"duplicate", `{"version":"0.1",` + good[1:], `duplicate member name "version"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLegacy([]byte(tt.in))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

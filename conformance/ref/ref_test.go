package ref

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// The reference reading agrees with the published vectors, byte for byte.
func TestRCPT3_ReceiptVectors(t *testing.T) {
	raw, err := spec.File("node/receipt/testdata/vectors.json")
	require.NoError(t, err)
	var v struct {
		SeedHex      string `json:"seed_hex"`
		PublicKeyHex string `json:"public_key_hex"`
		PeerID       string `json:"peer_id"`
		Cases        []struct {
			Name          string          `json:"name"`
			Args          []string        `json:"args"`
			Stdin         string          `json:"stdin"`
			InputDocument string          `json:"input_document"`
			InputHash     string          `json:"input_hash"`
			Stdout        string          `json:"stdout"`
			Stderr        string          `json:"stderr"`
			Receipt       json.RawMessage `json:"receipt"`
			SigningBytes  string          `json:"signing_bytes"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &v))
	pub, err := hex.DecodeString(v.PublicKeyHex)
	require.NoError(t, err)
	assert.Equal(t, v.PeerID, PeerID(pub))
	key, err := PeerKey(v.PeerID)
	require.NoError(t, err)
	assert.Equal(t, ed25519.PublicKey(pub), key)
	require.NotEmpty(t, v.Cases)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			assert.Equal(t, c.InputHash, InputHash(c.Args, []byte(c.Stdin)))
			r, err := VerifyReceipt(c.Receipt, Expect{Signer: key, InputHash: c.InputHash,
				Stdout: []byte(c.Stdout), Stderr: []byte(c.Stderr), CheckOutput: true})
			require.NoError(t, err)
			body := map[string]any{}
			for k, val := range r {
				if k != "signature" {
					body[k] = val
				}
			}
			canon, err := Canonical(body)
			require.NoError(t, err)
			assert.Equal(t, c.SigningBytes, "phase-receipt:v1:"+string(canon))
			// One flipped byte of the signed document fails a named check.
			for i := range c.Receipt {
				b := bytes.Clone(c.Receipt)
				b[i] ^= 1
				_, err := VerifyReceipt(b, Expect{Signer: key, Stdout: []byte(c.Stdout), Stderr: []byte(c.Stderr), CheckOutput: true})
				require.Error(t, err, "byte %d", i)
			}
		})
	}
}

func TestWIRE1_FrameVectors(t *testing.T) {
	raw, err := spec.File("node/wire/testdata/frames.json")
	require.NoError(t, err)
	var frames []struct {
		Name    string         `json:"name"`
		Kind    string         `json:"kind"`
		Hex     string         `json:"hex"`
		JSON    map[string]any `json:"json"`
		BodyHex string         `json:"body_hex"`
	}
	require.NoError(t, json.Unmarshal(raw, &frames))
	for _, f := range frames {
		b, err := hex.DecodeString(f.Hex)
		require.NoError(t, err)
		body, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		require.NoError(t, err, f.Name)
		assert.Equal(t, b, Frame(body), "%s: re-framed identically", f.Name)
		if f.Kind == "control" {
			got, err := Object(body)
			require.NoError(t, err)
			want, _ := json.Marshal(f.JSON)
			w, _ := Object(want)
			assert.True(t, reflect.DeepEqual(w, got), f.Name)
		} else {
			assert.Equal(t, f.BodyHex, hex.EncodeToString(body))
		}
	}
}

func TestWIRE3_WIRE4_ReadFrameRefuses(t *testing.T) {
	for name, in := range map[string][]byte{
		"not minimal": {0x80, 0x00},
		"11 bytes":    bytes.Repeat([]byte{0x80}, 11),
		"overflow":    append(bytes.Repeat([]byte{0xff}, 9), 0x02),
		"over cap":    {0x81, 0x01},
		"truncated":   {0x05, 'a'},
	} {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(in)), 100)
		assert.Error(t, err, name)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{`{"a":1,"a":2}`, `{"x":[{"k":1,"\u006b":2}]}`, `"\ud800"`, `{} x`, "\"\xff\""} {
		_, err := Decode([]byte(in))
		assert.Error(t, err, in)
	}
}

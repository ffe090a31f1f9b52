package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/frames.json from the fixtures")

const goldenPath = "testdata/frames.json"

// vector is one entry of testdata/frames.json: the full framed bytes (length
// prefix included) and what they decode to — the message object for control
// frames, the body bytes for raw frames.
type vector struct {
	Name    string          `json:"name"`
	Kind    string          `json:"kind"`
	Hex     string          `json:"hex"`
	JSON    json.RawMessage `json:"json,omitempty"`
	BodyHex *string         `json:"body_hex,omitempty"`
}

var goldenControl = []string{"offer", "offer_all_fields", "accepted", "accepted_progress", "rejected", "payload", "progress", "result", "error", "caps_request", "caps"}

func goldenRaw() map[string][]byte {
	return map[string][]byte{
		"stdin_empty":  {},
		"module_8":     []byte("\x00asm\x01\x00\x00\x00"),
		"stdout_300":   bytes.Repeat([]byte("0123456789"), 30),
		"stderr_bytes": {0x00, 0xff, 0x0a, 0x80},
	}
}

func buildVectors(t *testing.T) []vector {
	var out []vector
	for _, name := range goldenControl {
		var buf bytes.Buffer
		require.NoError(t, WriteControl(&buf, messageByName(name)))
		out = append(out, vector{Name: name, Kind: KindControl, Hex: hex.EncodeToString(buf.Bytes()), JSON: buf.Bytes()[len(buf.Bytes())-frameBodyLen(t, buf.Bytes()):]})
	}
	raw := goldenRaw()
	for _, name := range []string{"stdin_empty", "module_8", "stdout_300", "stderr_bytes"} {
		var buf bytes.Buffer
		require.NoError(t, WriteFrame(&buf, raw[name]))
		bh := hex.EncodeToString(raw[name])
		out = append(out, vector{Name: name, Kind: map[string]string{"stdin_empty": KindStdin, "module_8": KindModule, "stdout_300": KindStdout, "stderr_bytes": KindStderr}[name], Hex: hex.EncodeToString(buf.Bytes()), BodyHex: &bh})
	}
	return out
}

func frameBodyLen(t *testing.T, frame []byte) int {
	body, err := ReadFrame(bytes.NewReader(frame), len(frame), "golden")
	require.NoError(t, err)
	return len(body)
}

func TestWIRE1_WIRE2_GoldenVectors(t *testing.T) {
	want := buildVectors(t)
	if *update {
		b, err := json.MarshalIndent(want, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(goldenPath), 0o755))
		require.NoError(t, os.WriteFile(goldenPath, append(b, '\n'), 0o644))
	}
	data, err := os.ReadFile(goldenPath)
	require.NoError(t, err, "run go test ./node/wire -run TestGoldenVectors -update")
	var got []vector
	require.NoError(t, json.Unmarshal(data, &got))
	require.Len(t, got, len(want))

	for i, v := range got {
		t.Run(v.Name, func(t *testing.T) {
			assert.Equal(t, want[i].Name, v.Name)
			assert.Equal(t, want[i].Hex, v.Hex, "encoding changed; if on purpose, rerun with -update and tell the PHP client")
			frame, err := hex.DecodeString(v.Hex)
			require.NoError(t, err)
			r := bytes.NewReader(frame)
			if v.Kind == KindControl {
				msg, err := ReadControl(r)
				require.NoError(t, err)
				assert.Equal(t, messageByName(v.Name), msg)
				body := frame[len(frame)-frameBodyLen(t, frame):]
				assert.JSONEq(t, string(v.JSON), string(body))
			} else {
				body, err := ReadFrame(r, 1<<20, v.Kind)
				require.NoError(t, err)
				require.NotNil(t, v.BodyHex)
				assert.Equal(t, *v.BodyHex, hex.EncodeToString(body))
			}
			assert.Zero(t, r.Len(), "one frame per vector")
		})
	}
}

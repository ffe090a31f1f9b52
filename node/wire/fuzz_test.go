package wire

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// seedBodies returns the encoded body of every valid fixture plus a few
// near-misses, as fuzz seeds.
func seedBodies(f *testing.F) [][]byte {
	var out [][]byte
	for _, nm := range validMessages() {
		out = append(out, encode(f, nm.msg))
	}
	out = append(out,
		[]byte(`{}`),
		[]byte(`{"type":"offer"}`),
		[]byte(`{"type":"caps","record":{"a":{"a":1}}}`),
		[]byte(`{"type":"payload","args":["","\u0000"]}`),
		[]byte(`{"type":"error","code":"internal","detail":"","code":"timeout"}`),
		[]byte(`{"type":"result","receipt":[],"outcome":"exited"}`),
	)
	return out
}

// FuzzReadFrame: no panic, no body over the cap, and a successful read
// re-encodes to exactly the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	for _, s := range [][]byte{{}, {0x00}, {0x01, 'a'}, {0x80}, {0x80, 0x00}, {0xac, 0x02}, bytes.Repeat([]byte{0xff}, 11), append(bytes.Repeat([]byte{0xff}, 9), 0x01)} {
		f.Add(s, uint16(300))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		r := bytes.NewReader(data)
		body, err := ReadFrame(r, int(max), KindStdout)
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(body), int(max))
		consumed := len(data) - r.Len()
		var buf bytes.Buffer
		require.NoError(t, WriteFrame(&buf, body))
		require.Equal(t, data[:consumed], buf.Bytes())
	})
}

// FuzzReadControl: any byte stream, read as a sequence of control frames.
func FuzzReadControl(f *testing.F) {
	for _, b := range seedBodies(f) {
		var buf bytes.Buffer
		require.NoError(f, WriteFrame(&buf, b))
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 4 {
			msg, err := ReadControl(r)
			if err != nil {
				return
			}
			checkReencode(t, msg, ParseControl)
		}
	})
}

// checkReencode asserts that a decoded message encodes (validation included)
// and decodes back to an equal value.
func checkReencode[T any](t *testing.T, msg T, parse func([]byte) (T, error)) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteControl(&buf, msg), "a parsed message must be writable")
	body, err := ReadFrame(&buf, MaxControlFrame, KindControl)
	require.NoError(t, err)
	again, err := parse(body)
	require.NoError(t, err, "re-encoded body: %s", body)
	require.Equal(t, msg, again)
}

func fuzzParser[T any](f *testing.F, parse func([]byte) (T, error)) {
	for _, b := range seedBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := parse(body)
		if err != nil {
			return
		}
		checkReencode(t, msg, parse)
	})
}

func FuzzParseOffer(f *testing.F)        { fuzzParser(f, ParseOffer) }
func FuzzParseAccepted(f *testing.F)     { fuzzParser(f, ParseAccepted) }
func FuzzParseRejected(f *testing.F)     { fuzzParser(f, ParseRejected) }
func FuzzParsePayload(f *testing.F)      { fuzzParser(f, ParsePayload) }
func FuzzParseResult(f *testing.F)       { fuzzParser(f, ParseResult) }
func FuzzParseError(f *testing.F)        { fuzzParser(f, ParseError) }
func FuzzParseCapsRequest(f *testing.F)  { fuzzParser(f, ParseCapsRequest) }
func FuzzParseCapsResponse(f *testing.F) { fuzzParser(f, ParseCapsResponse) }
func FuzzParseProgress(f *testing.F)     { fuzzParser(f, ParseProgress) }

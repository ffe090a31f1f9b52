package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plainReader hides any io.ByteReader so the one-byte-per-Read path runs.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// countingReader counts consumed bytes, to prove what a failed read touched.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

func TestFrameRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 300, 16383, 16384, smallFrame, smallFrame + 1, 3*readAllocChunk + 17}
	readers := map[string]func(io.Reader) io.Reader{
		"plain":  func(r io.Reader) io.Reader { return plainReader{r} },
		"bufio":  func(r io.Reader) io.Reader { return bufio.NewReaderSize(r, 16) },
		"direct": func(r io.Reader) io.Reader { return r },
	}
	for rname, wrap := range readers {
		t.Run(rname, func(t *testing.T) {
			var stream bytes.Buffer
			bodies := make([][]byte, len(sizes))
			for i, n := range sizes {
				bodies[i] = bytes.Repeat([]byte{byte(i + 1)}, n)
				require.NoError(t, WriteFrame(&stream, bodies[i]))
			}
			stream.WriteString("tail")
			r := wrap(&stream)
			for i, n := range sizes {
				got, err := ReadFrame(r, n, KindStdout)
				require.NoError(t, err, "frame %d (%d bytes)", i, n)
				require.Equal(t, bodies[i], got, "frame %d", i)
			}
			// The reader must not have consumed anything past the last frame.
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.Equal(t, "tail", string(rest))
		})
	}
}

func TestWIRE1_WIRE2_FrameEncoding(t *testing.T) {
	tests := []struct {
		n    int
		want []byte // length prefix
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{300, []byte{0xac, 0x02}},
		{16384, []byte{0x80, 0x80, 0x01}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		require.NoError(t, WriteFrame(&buf, make([]byte, tt.n)))
		assert.Equal(t, tt.want, buf.Bytes()[:len(tt.want)], "length %d", tt.n)
		assert.Equal(t, len(tt.want)+tt.n, buf.Len())

		var hdr bytes.Buffer
		require.NoError(t, WriteFrameHeader(&hdr, int64(tt.n)))
		assert.Equal(t, tt.want, hdr.Bytes())
	}
	assert.ErrorContains(t, WriteFrameHeader(io.Discard, -1), "negative length")
}

func varint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func TestWIRE3_WIRE4_WIRE6_WIRE7_ReadFrameErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    []byte
		max      int
		wantIs   error
		contains []string
		consumed int // bytes ReadFrame may take from the stream (-1: don't care)
	}{
		{
			name:     "over cap",
			input:    append(varint(101), make([]byte, 101)...),
			max:      100,
			wantIs:   ErrTooLarge,
			contains: []string{"stdin frame", "101", "100"},
			consumed: 1,
		},
		{
			name:     "huge length over cap",
			input:    varint(1 << 40),
			max:      16 << 20,
			wantIs:   ErrTooLarge,
			contains: []string{"stdin frame length 1099511627776 exceeds cap 16777216"},
			consumed: 6,
		},
		{
			name:     "max uint64 length",
			input:    varint(^uint64(0)),
			max:      1 << 30,
			wantIs:   ErrTooLarge,
			contains: []string{"18446744073709551615"},
			consumed: 10,
		},
		{
			name:     "empty stream",
			input:    nil,
			max:      10,
			wantIs:   io.EOF,
			contains: []string{"stdin frame"},
			consumed: 0,
		},
		{
			name:     "truncated length",
			input:    []byte{0x80},
			max:      1 << 20,
			wantIs:   io.ErrUnexpectedEOF,
			contains: []string{"stdin frame length"},
			consumed: 1,
		},
		{
			name:     "truncated body",
			input:    append(varint(10), "abc"...),
			max:      10,
			wantIs:   io.ErrUnexpectedEOF,
			contains: []string{"stdin frame body", "3 of 10"},
			consumed: -1,
		},
		{
			name:     "body missing entirely",
			input:    varint(10),
			max:      10,
			wantIs:   io.ErrUnexpectedEOF,
			contains: []string{"0 of 10"},
			consumed: -1,
		},
		{
			name:     "11-byte varint",
			input:    append(bytes.Repeat([]byte{0x80}, 10), 0x00),
			max:      1 << 20,
			wantIs:   ErrMalformed,
			contains: []string{"longer than 10 bytes"},
			consumed: 10,
		},
		{
			name:     "10-byte varint overflowing 64 bits",
			input:    append(bytes.Repeat([]byte{0xff}, 9), 0x02),
			max:      1 << 20,
			wantIs:   ErrMalformed,
			contains: []string{"overflows 64 bits"},
			consumed: 10,
		},
		{
			name:     "non-minimal length",
			input:    []byte{0x81, 0x00, 'x'},
			max:      10,
			wantIs:   ErrMalformed,
			contains: []string{"not minimally encoded"},
			consumed: 2,
		},
		{
			name:     "non-minimal zero",
			input:    []byte{0x80, 0x80, 0x00},
			max:      10,
			wantIs:   ErrMalformed,
			contains: []string{"not minimally encoded"},
			consumed: 3,
		},
		{
			name:     "negative cap",
			input:    []byte{0x00},
			max:      -1,
			contains: []string{"negative cap"},
			consumed: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, buffered := range []bool{false, true} {
				cr := &countingReader{r: bytes.NewReader(tt.input)}
				var r io.Reader = plainReader{cr}
				if buffered {
					r = bufio.NewReader(cr) // reads ahead, so consumption is not checked
				}
				body, err := ReadFrame(r, tt.max, KindStdin)
				require.Error(t, err)
				assert.Nil(t, body)
				if tt.wantIs != nil {
					assert.ErrorIs(t, err, tt.wantIs)
				}
				for _, s := range tt.contains {
					assert.ErrorContains(t, err, s)
				}
				if !buffered && tt.consumed >= 0 {
					assert.Equal(t, tt.consumed, cr.n, "bytes consumed from the stream")
				}
			}
		})
	}
}

func TestWIRE5_ReadFrameZeroLength(t *testing.T) {
	for _, max := range []int{0, 10} {
		body, err := ReadFrame(bytes.NewReader([]byte{0x00}), max, KindStdin)
		require.NoError(t, err)
		assert.NotNil(t, body)
		assert.Empty(t, body)
	}
}

func TestWIRE8_ReadFrameAtCap(t *testing.T) {
	input := append(varint(100), make([]byte, 100)...)
	body, err := ReadFrame(bytes.NewReader(input), 100, KindModule)
	require.NoError(t, err)
	assert.Len(t, body, 100)
}

// A peer that announces a large frame (within the cap) and then stops must
// not make the reader allocate the whole announced size.
func TestWIRE6_ReadFrameAllocatesWhatArrives(t *testing.T) {
	const announced = 64 << 20
	input := append(varint(announced), make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(input), announced, KindModule)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.ErrorContains(t, err, "1000 of 67108864")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "bytes allocated for a 64 MiB announcement that delivered 1000 bytes")
}

type failingRW struct{ err error }

func (f failingRW) Read([]byte) (int, error)  { return 0, f.err }
func (f failingRW) Write([]byte) (int, error) { return 0, f.err }

func TestFrameIOErrorsWrapped(t *testing.T) {
	boom := errors.New("stream reset")
	_, err := ReadFrame(failingRW{boom}, 10, KindControl)
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, io.EOF)

	// An error in the middle of the body.
	r := io.MultiReader(bytes.NewReader(append(varint(10), "abc"...)), failingRW{boom})
	_, err = ReadFrame(r, 10, KindStdout)
	assert.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "3 of 10")

	for _, n := range []int{10, smallFrame + 1} {
		err = WriteFrame(failingRW{boom}, make([]byte, n))
		assert.ErrorIs(t, err, boom)
	}
	assert.ErrorIs(t, WriteControl(failingRW{boom}, testOffer()), boom)
}

func TestWIRE10_ReadDeclared(t *testing.T) {
	frame := func(n int) []byte { return append(varint(uint64(n)), bytes.Repeat([]byte{'m'}, n)...) }
	tests := []struct {
		name     string
		input    []byte
		declared int64
		max      int
		wantIs   error
		contains string
		consumed int
	}{
		{"exact", frame(8), 8, 100, nil, "", 9},
		{"empty", frame(0), 0, 0, nil, "", 1},
		{"declared over cap", frame(8), 200, 100, ErrTooLarge, "declared module size 200 exceeds cap 100", 0},
		{"shorter than declared", frame(7), 8, 100, ErrInvalid, "module frame length 7 differs from declared size 8", 1},
		{"longer than declared", frame(9), 8, 100, ErrInvalid, "module frame length 9 differs from declared size 8", 1},
		{"length far over cap", varint(1 << 50), 8, 100, ErrInvalid, "differs from declared size 8", 8},
		{"negative declared", frame(0), -1, 100, nil, "negative declared size", 0},
		{"truncated body", frame(8)[:5], 8, 100, io.ErrUnexpectedEOF, "4 of 8", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReader{r: bytes.NewReader(tt.input)}
			body, err := ReadDeclared(plainReader{cr}, tt.declared, tt.max, KindModule)
			assert.Equal(t, tt.consumed, cr.n, "bytes consumed")
			if tt.contains == "" {
				require.NoError(t, err)
				assert.Len(t, body, int(tt.declared))
				return
			}
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.contains)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

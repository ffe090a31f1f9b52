// Package ref is an independent reading of the Phase specification, for
// the conformance suite: frames, JSON checks, canonical JSON, peer IDs and
// receipt verification written from SPEC.md and docs/spec-*.md without
// importing the node's own wire, receipt or canonical packages, so that a
// bug shared by Plasm's encoder and decoder cannot hide from the suite. It
// is checked against the published test vectors.
package ref

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// AppendVarint appends n as an unsigned LEB128 varint (spec-wire §2): seven
// bits per byte, least significant group first, the high bit set on every
// byte but the last.
func AppendVarint(dst []byte, n uint64) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// Frame is one frame: the body's length as a varint, then the body.
func Frame(body []byte) []byte {
	return append(AppendVarint(nil, uint64(len(body))), body...)
}

// Frames concatenates frames.
func Frames(bodies ...[]byte) []byte {
	var out []byte
	for _, b := range bodies {
		out = append(out, Frame(b)...)
	}
	return out
}

// ErrTooLong is a frame over the reader's cap.
var ErrTooLong = errors.New("frame over the cap")

// ReadFrame reads one frame of at most max bytes, refusing non-minimal and
// over-long lengths (WIRE-3, WIRE-4). A stream that ends before the first
// byte is io.EOF.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	var n uint64
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("frame length: %w", err)
		}
		if i == 9 && b > 1 {
			return nil, errors.New("frame length overflows 64 bits")
		}
		n |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return nil, errors.New("frame length not minimal")
			}
			break
		}
		if i == 9 {
			return nil, errors.New("frame length longer than 10 bytes")
		}
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooLong, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("frame body (%d bytes): %w", n, err)
	}
	return body, nil
}

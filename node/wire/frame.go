package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// smallFrame is the largest body WriteFrame copies next to its length so the
// frame leaves in one Write; larger bodies go in a second Write instead of
// being copied.
const smallFrame = 64 << 10

// WriteFrame writes one frame: the body length as an unsigned LEB128 varint,
// then the body. An empty body is a valid frame (a single 0x00 byte).
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) <= smallFrame {
		buf := make([]byte, 0, binary.MaxVarintLen64+len(body))
		buf = binary.AppendUvarint(buf, uint64(len(body)))
		buf = append(buf, body...)
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write frame (%d bytes): %w", len(body), err)
		}
		return nil
	}
	if err := WriteFrameHeader(w, int64(len(body))); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write frame body (%d bytes): %w", len(body), err)
	}
	return nil
}

// AppendFrame appends one frame (the body's LEB128 length, then the body)
// to dst.
func AppendFrame(dst, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// WriteFrameHeader writes only the length prefix of a frame whose n body
// bytes the caller then writes itself (for streaming a large body).
func WriteFrameHeader(w io.Writer, n int64) error {
	if n < 0 {
		return fmt.Errorf("write frame header: negative length %d", n)
	}
	var buf [binary.MaxVarintLen64]byte
	if _, err := w.Write(binary.AppendUvarint(buf[:0], uint64(n))); err != nil {
		return fmt.Errorf("write frame header: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of the given kind whose body may be at most max
// bytes. A longer length is an ErrTooLarge error naming kind, length and cap,
// returned before any of the body is read or allocated. A stream that ends
// before the first length byte gives an error wrapping io.EOF; one that ends
// inside the length or the body gives an error wrapping io.ErrUnexpectedEOF.
//
// ReadFrame never reads past the end of the frame. If r is an io.ByteReader
// (a *bufio.Reader, say) the length is read through it; otherwise it is read
// one byte per Read call, so wrap slow readers in a bufio.Reader.
func ReadFrame(r io.Reader, max int, kind string) ([]byte, error) {
	n, err := ReadFrameHeader(r, max, kind)
	if err != nil {
		return nil, err
	}
	return readBody(r, n, kind, nil)
}

// ReadFrameHeader reads the length prefix of a frame of the given kind and
// checks it against max; the caller then reads exactly that many body bytes
// itself (for streaming a large body). Errors are as for ReadFrame.
func ReadFrameHeader(r io.Reader, max int, kind string) (int, error) {
	if max < 0 {
		return 0, fmt.Errorf("read %s frame: negative cap %d", kind, max)
	}
	n, err := readUvarint(r, kind)
	if err != nil {
		return 0, err
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("%s frame length %d exceeds cap %d: %w", kind, n, max, ErrTooLarge)
	}
	return int(n), nil
}

// ReadDeclared reads a raw frame whose length was announced earlier (an
// offer's module_size or stdin_size, a result's stdout_size or stderr_size).
// A declared size over max is ErrTooLarge; a frame length different from
// declared is ErrMalformed. Both are reported before the body is read.
func ReadDeclared(r io.Reader, declared int64, max int, kind string) ([]byte, error) {
	return ReadDeclaredGrow(r, declared, max, kind, nil)
}

// ReadDeclaredGrow is ReadDeclared with grow called before each growth of
// the body buffer with the bytes about to be added, so a caller can account
// for (and bound, by returning an error) the memory the frame takes as its
// bytes arrive. The buffer never grows past the bytes received by more than
// one growth step, whatever size was declared.
func ReadDeclaredGrow(r io.Reader, declared int64, max int, kind string, grow func(n int) error) ([]byte, error) {
	if declared < 0 {
		return nil, fmt.Errorf("read %s frame: negative declared size %d", kind, declared)
	}
	if max < 0 {
		return nil, fmt.Errorf("read %s frame: negative cap %d", kind, max)
	}
	if declared > int64(max) {
		return nil, fmt.Errorf("declared %s size %d exceeds cap %d: %w", kind, declared, max, ErrTooLarge)
	}
	n, err := readUvarint(r, kind)
	if err != nil {
		return nil, err
	}
	if n != uint64(declared) {
		// A frame of another size than announced is a bad request (JOB-6).
		return nil, fmt.Errorf("%s frame length %d differs from declared size %d: %w", kind, n, declared, ErrInvalid)
	}
	return readBody(r, int(n), kind, grow)
}

// readUvarint reads an unsigned LEB128 value of at most 10 bytes, rejecting
// overflow past 64 bits and non-minimal encodings (WIRE-3, WIRE-4).
func readUvarint(r io.Reader, kind string) (uint64, error) {
	next := byteReader(r)
	var x uint64
	var shift uint
	for i := range binary.MaxVarintLen64 {
		b, err := next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if i == 0 {
					return 0, fmt.Errorf("read %s frame: %w", kind, io.EOF)
				}
				return 0, fmt.Errorf("read %s frame length: stream ended after %d of its bytes: %w", kind, i, io.ErrUnexpectedEOF)
			}
			return 0, fmt.Errorf("read %s frame length: %w", kind, err)
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, fmt.Errorf("%s frame length overflows 64 bits: %w", kind, ErrMalformed)
			}
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%s frame length is not minimally encoded (%d bytes ending in 0x00): %w", kind, i+1, ErrMalformed)
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, fmt.Errorf("%s frame length varint is longer than %d bytes: %w", kind, binary.MaxVarintLen64, ErrMalformed)
}

func byteReader(r io.Reader) func() (byte, error) {
	if br, ok := r.(io.ByteReader); ok {
		return br.ReadByte
	}
	var buf [1]byte
	return func() (byte, error) {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return 0, err
		}
		return buf[0], nil
	}
}

// readBody reads exactly n bytes. Large bodies are read in growing chunks so
// that a peer announcing a big frame and then stalling costs only what it has
// actually sent.
func readBody(r io.Reader, n int, kind string, grow func(n int) error) ([]byte, error) {
	size, step := min(n, readAllocChunk), readAllocChunk
	if grow != nil { // accounted: start small, so a stalled frame holds little
		size, step = min(n, accountedChunk), accountedChunk
	}
	if grow != nil {
		if err := grow(size); err != nil {
			return nil, fmt.Errorf("read %s frame body: %w", kind, err)
		}
	}
	buf := make([]byte, size)
	got := 0
	for {
		m, err := io.ReadFull(r, buf[got:])
		got += m
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("read %s frame body: stream ended after %d of %d bytes: %w", kind, got, n, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("read %s frame body (%d of %d bytes): %w", kind, got, n, err)
		}
		if got == n {
			return buf, nil
		}
		// Grow by a quarter (at least a chunk): the buffer stays within 25 %
		// of the bytes that arrived, whatever size was declared.
		size = min(size+max(size/4, step), n)
		if grow != nil {
			if err := grow(size - len(buf)); err != nil {
				return nil, fmt.Errorf("read %s frame body (%d of %d bytes): %w", kind, got, n, err)
			}
		}
		buf = slices.Grow(buf, size-len(buf))[:size]
	}
}

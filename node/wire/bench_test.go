package wire

import (
	"bufio"
	"bytes"
	"testing"
)

func benchRoundTrip(b *testing.B, msg Message) {
	var buf bytes.Buffer
	if err := WriteControl(&buf, msg); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteControl(&buf, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadControl(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteReadOffer(b *testing.B)  { benchRoundTrip(b, testOffer()) }
func BenchmarkWriteReadResult(b *testing.B) { benchRoundTrip(b, messageByName("result")) }

// BenchmarkRawFrame1MiB measures framing overhead on a stdout-sized body.
func BenchmarkRawFrame1MiB(b *testing.B) {
	body := bytes.Repeat([]byte{'x'}, 1<<20)
	var buf bytes.Buffer
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteFrame(&buf, body); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadFrame(bufio.NewReader(&buf), len(body), KindStdout); err != nil {
			b.Fatal(err)
		}
	}
}

package wasm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

// dataSection returns the parsed segments of a module's data section.
func dataSection(t *testing.T, module []byte) []dataSegment {
	t.Helper()
	r := reader{b: module, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		require.NoError(t, err)
		size, err := r.u32()
		require.NoError(t, err)
		if id == sectionData {
			segs, ok := readDataSegments(module[r.off : r.off+int(size)])
			require.True(t, ok)
			return segs
		}
		r.off += int(size)
	}
	return nil
}

// initialMemory instantiates a module without running it and returns its
// memory as data segments left it.
func initialMemory(t *testing.T, module []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.InstantiateWithConfig(ctx, module, wazero.NewModuleConfig().WithStartFunctions())
	require.NoError(t, err)
	mem, ok := mod.Memory().Read(0, mod.Memory().Size())
	require.True(t, ok)
	return bytes.Clone(mem)
}

func TestCoalesceHelloKeepsMemoryImage(t *testing.T) {
	hello := testwasm.Bytes(t, testwasm.Hello)
	out := coalesceData(hello)
	before, after := dataSection(t, hello), dataSection(t, out)
	t.Logf("data segments: %d -> %d; module %d -> %d bytes", len(before), len(after), len(hello), len(out))
	require.Greater(t, len(before), 1000)
	require.Less(t, len(after), len(before)/10)
	assert.Equal(t, initialMemory(t, hello), initialMemory(t, out), "memory after data segments must be identical")
}

// segmentModule builds a module with one memory of pages and the given
// active data segments (offset -> bytes), in the given order.
func segmentModule(pages int, segs ...dataSegment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(module (memory %d) (func (export \"_start\"))\n", pages)
	for _, s := range segs {
		fmt.Fprintf(&b, "  (data (i32.const %d) \"", int32(uint32(s.offset)))
		for _, c := range s.data {
			fmt.Fprintf(&b, "\\%02x", c)
		}
		b.WriteString("\")\n")
	}
	b.WriteString(")")
	return b.String()
}

func manySegments(n int, stride uint64, start uint64) []dataSegment {
	segs := make([]dataSegment, n)
	for i := range segs {
		segs[i] = dataSegment{offset: start + uint64(i)*stride, data: []byte{byte(i + 1), 0xab, byte(i >> 8)}}
	}
	return segs
}

func TestCoalesceData(t *testing.T) {
	many := manySegments(100, 10, 16)
	reversed := make([]dataSegment, len(many))
	for i, s := range many {
		reversed[len(many)-1-i] = s
	}
	overlap := append(manySegments(100, 10, 16), dataSegment{offset: 17, data: []byte{1, 2, 3}})
	manyWAT := segmentModule(1, many...)

	tests := []struct {
		name    string
		wat     string
		changed bool
		segs    int // after, when changed
	}{
		{name: "ascending", wat: manyWAT, changed: true, segs: 1},
		{name: "reversed order", wat: segmentModule(1, reversed...), changed: true, segs: 1},
		{name: "two runs", wat: segmentModule(1, append(manySegments(50, 10, 0), manySegments(50, 10, 10000)...)...),
			changed: true, segs: 2},
		{name: "gaps too wide", wat: segmentModule(4, manySegments(100, 2000, 0)...)},
		{name: "too few", wat: segmentModule(1, many[:10]...)},
		{name: "overlap", wat: segmentModule(1, overlap...)},
		{name: "passive segment", wat: strings.Replace(manyWAT, `(data (i32.const 16)`, `(data`, 1)},
		{name: "global offset", wat: strings.Replace(strings.Replace(manyWAT,
			`(module (memory 1)`, `(module (import "env" "g" (global $g i32)) (memory 1)`, 1),
			`(data (i32.const 16)`, `(data (global.get $g)`, 1)},
		// A data count section (needed by data.drop) means code names segments.
		{name: "data count section", wat: strings.Replace(manyWAT,
			`(func (export "_start"))`, `(func (export "_start") (data.drop 0))`, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := watModule(t, tc.wat)
			out := coalesceData(in)
			if !tc.changed {
				assert.Equal(t, in, out)
				return
			}
			require.NotEqual(t, in, out)
			assert.Len(t, dataSection(t, out), tc.segs)
			assert.Equal(t, initialMemory(t, in), initialMemory(t, out))
		})
	}
}

func TestCoalesceKeepsOutOfBoundsFailure(t *testing.T) {
	// The last segment ends past the single page: instantiation must fail
	// before and after the rewrite.
	segs := manySegments(100, 10, 65536-1000+10)
	in := watModule(t, segmentModule(1, segs...))
	out := coalesceData(in)
	require.NotEqual(t, in, out)
	ctx := context.Background()
	for _, m := range [][]byte{in, out} {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		_, err := rt.InstantiateWithConfig(ctx, m, wazero.NewModuleConfig().WithStartFunctions())
		require.ErrorContains(t, err, "out of bounds")
		require.NoError(t, rt.Close(ctx))
	}
}

func TestCoalesceBudget(t *testing.T) {
	// 100 empty segments 512 bytes apart would add ~50 KB of zeros to a
	// module of a few hundred bytes: left alone.
	segs := make([]dataSegment, 100)
	for i := range segs {
		segs[i] = dataSegment{offset: uint64(i) * (coalesceMaxGap + 1)}
	}
	in := watModule(t, segmentModule(1, segs...))
	assert.Equal(t, in, coalesceData(in))
}

func TestSleb32(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 8191, 1 << 20, math.MaxInt32, math.MinInt32} {
		b := appendSleb32(nil, v)
		r := reader{b: b}
		got, err := r.s32()
		require.NoError(t, err, "%d", v)
		assert.Equal(t, v, got)
		assert.Equal(t, len(b), r.off)
	}
	r := reader{b: []byte{0xff, 0xff, 0xff, 0xff, 0x7f}} // -1 in five bytes
	v, err := r.s32()
	require.NoError(t, err)
	assert.Equal(t, int32(-1), v)
	for _, bad := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0x4f}, // unused bits disagree with the sign
		{0x80, 0x80, 0x80, 0x80, 0x80}, // a sixth byte would follow
		{0x80},                         // truncated
	} {
		r := reader{b: bad}
		_, err := r.s32()
		assert.Error(t, err, "% x", bad)
	}
}

// FuzzCoalesceData checks the rewrite never panics and, when it rewrites,
// keeps every byte the original segments would have written.
func FuzzCoalesceData(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add(testwasm.Bytes(f, testwasm.Tiny))
	var many bytes.Buffer
	many.WriteString("\x00asm\x01\x00\x00\x00")
	body := []byte{70}
	for i := range 70 {
		body = append(body, 0x00, 0x41, byte(i*3), 0x00, 0x0b, 0x02, byte(i), 0xee)
	}
	many.WriteByte(sectionData)
	many.WriteByte(byte(len(body)) | 0x80)
	many.WriteByte(byte(len(body) >> 7))
	many.Write(body)
	f.Add(many.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		out := coalesceData(b)
		if bytes.Equal(out, b) {
			return
		}
		image := func(m []byte) map[uint64]byte {
			img := map[uint64]byte{}
			for _, s := range dataSection(t, m) {
				for i, c := range s.data {
					if c != 0 {
						img[s.offset+uint64(i)] = c
					}
				}
			}
			return img
		}
		if !mapsEqual(image(b), image(out)) {
			t.Fatal("rewrite changed the memory image")
		}
	})
}

func mapsEqual(a, b map[uint64]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

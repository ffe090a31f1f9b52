package wasm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

func TestInspectModule(t *testing.T) {
	hdr := "\x00asm\x01\x00\x00\x00"
	tests := []struct {
		name      string
		in        []byte
		err       string
		hasMemory bool
		minPages  uint32
		imports   int
	}{
		{name: "empty", in: nil, err: "empty module"},
		{name: "short", in: []byte("\x00as"), err: "bad magic"},
		{name: "text", in: []byte("(module)"), err: "bad magic"},
		{name: "version 2", in: []byte("\x00asm\x02\x00\x00\x00"), err: "unsupported WebAssembly binary version"},
		{name: "header only", in: []byte(hdr)},
		{name: "section past end", in: []byte(hdr + "\x01\x10\x00"), err: "runs past the end"},
		{name: "missing section size", in: []byte(hdr + "\x01"), err: "unexpected end"},
		{name: "overlong LEB", in: []byte(hdr + "\x01\xff\xff\xff\xff\xff\x01"), err: "overflows"},
		{name: "LEB overflow", in: []byte(hdr + "\x01\xff\xff\xff\xff\x7f"), err: "overflows"},
		{name: "memory 3 pages", in: []byte(hdr + "\x05\x03\x01\x00\x03"), hasMemory: true, minPages: 3},
		{name: "memory with max", in: []byte(hdr + "\x05\x04\x01\x01\x02\x05"), hasMemory: true, minPages: 2},
		{name: "memory64 refused", in: []byte(hdr + "\x05\x03\x01\x04\x01"), err: "unsupported limits flag"},
		{name: "memory truncated", in: []byte(hdr + "\x05\x02\x01\x00"), err: "memory 0"},
		{name: "imported memory", in: []byte(hdr + "\x02\x08\x01\x01m\x01n\x02\x00\x07"),
			hasMemory: true, minPages: 7, imports: 1},
		{name: "import name past end", in: []byte(hdr + "\x02\x04\x01\x09ab"), err: "runs past the end of its section"},
		{name: "unknown import kind", in: []byte(hdr + "\x02\x07\x01\x01m\x01n\x09\x00"), err: "unknown import kind 0x09"},
		{name: "bigmem", in: testwasm.Bytes(t, testwasm.BigMem), hasMemory: true, minPages: 40000},
		{name: "tiny", in: testwasm.Bytes(t, testwasm.Tiny), hasMemory: true, minPages: 1, imports: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := inspectModule(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.hasMemory, info.hasMemory)
			assert.Equal(t, tc.minPages, info.minPages)
			assert.Len(t, info.imports, tc.imports)
		})
	}
}

func TestInspectImports(t *testing.T) {
	info, err := inspectModule(watModule(t, `(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "t" (table 1 funcref))
  (import "env" "g" (global (mut i32)))
  (func (export "_start")))`))
	require.NoError(t, err)
	require.Len(t, info.imports, 3)
	assert.Equal(t, importEntry{module: "wasi_snapshot_preview1", name: "fd_write", kind: externFunc}, info.imports[0])
	assert.Equal(t, importEntry{module: "env", name: "t", kind: externTable}, info.imports[1])
	assert.Equal(t, importEntry{module: "env", name: "g", kind: externGlobal}, info.imports[2])
	assert.False(t, info.hasMemory)
}

// FuzzInspectModule checks the pre-parser never panics or reads out of
// bounds, whatever the bytes.
func FuzzInspectModule(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x03"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x08\x01\x01m\x01n\x02\x00\x07"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x7f"))
	for _, name := range []string{testwasm.Tiny, testwasm.Exit7, testwasm.BigMem, testwasm.Grow} {
		f.Add(testwasm.Bytes(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := inspectModule(b)
		if err != nil {
			return
		}
		if !info.hasMemory && info.minPages != 0 {
			t.Fatalf("minPages %d without a memory", info.minPages)
		}
	})
}

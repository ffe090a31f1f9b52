package wasm

import (
	"bytes"
	"errors"
	"fmt"
)

// moduleInfo is what the executor needs to know about a module before it
// hands the bytes to wazero: what it imports and how much memory it asks for.
type moduleInfo struct {
	imports []importEntry
	// hasMemory is true when the module defines or imports a memory;
	// minPages is then that memory's declared minimum.
	hasMemory bool
	minPages  uint32
}

type importEntry struct {
	module, name string
	kind         byte // externFunc, externTable, externMemory, externGlobal, externTag
}

const (
	externFunc   = 0x00
	externTable  = 0x01
	externMemory = 0x02
	externGlobal = 0x03
	externTag    = 0x04

	sectionImport = 2
	sectionMemory = 5
)

var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d}

func externName(kind byte) string {
	switch kind {
	case externFunc:
		return "function"
	case externTable:
		return "table"
	case externMemory:
		return "memory"
	case externGlobal:
		return "global"
	case externTag:
		return "tag"
	}
	return fmt.Sprintf("kind 0x%02x", kind)
}

// inspectModule walks the section headers of a WebAssembly binary and decodes
// only the import and memory sections. It is deliberately shallow: wazero
// validates everything else when it compiles. Reading the declared minimum
// memory here (rather than letting compilation fail) is what lets the
// executor tell "asks for too much memory" apart from "not valid wasm".
func inspectModule(b []byte) (moduleInfo, error) {
	var info moduleInfo
	if len(b) == 0 {
		return info, errors.New("empty module")
	}
	if len(b) < 8 || !bytes.Equal(b[:4], wasmMagic) {
		return info, errors.New("not a WebAssembly binary (bad magic number)")
	}
	if v := b[4:8]; !bytes.Equal(v, []byte{1, 0, 0, 0}) {
		return info, fmt.Errorf("unsupported WebAssembly binary version %x", v)
	}
	r := reader{b: b, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return info, err
		}
		size, err := r.u32()
		if err != nil {
			return info, fmt.Errorf("section %d size: %w", id, err)
		}
		start := r.off
		if uint64(size) > uint64(len(r.b)-start) {
			return info, fmt.Errorf("section %d at offset %d: size %d runs past the end of the module", id, start, size)
		}
		body := reader{b: r.b[:start+int(size)], off: start}
		switch id {
		case sectionImport:
			if err := info.readImports(&body); err != nil {
				return info, fmt.Errorf("import section: %w", err)
			}
		case sectionMemory:
			if err := info.readMemories(&body); err != nil {
				return info, fmt.Errorf("memory section: %w", err)
			}
		}
		r.off = start + int(size)
	}
	return info, nil
}

func (info *moduleInfo) readImports(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		mod, err := r.name()
		if err != nil {
			return fmt.Errorf("import %d module name: %w", i, err)
		}
		name, err := r.name()
		if err != nil {
			return fmt.Errorf("import %d name: %w", i, err)
		}
		kind, err := r.byte()
		if err != nil {
			return fmt.Errorf("import %d kind: %w", i, err)
		}
		switch kind {
		case externFunc:
			_, err = r.u32()
		case externTable:
			if _, err = r.byte(); err == nil { // reference type
				_, _, err = r.limits()
			}
		case externMemory:
			var min uint32
			if min, _, err = r.limits(); err == nil {
				info.setMemory(min)
			}
		case externGlobal:
			if _, err = r.byte(); err == nil { // value type
				_, err = r.byte() // mutability
			}
		case externTag:
			if _, err = r.byte(); err == nil { // attribute
				_, err = r.u32()
			}
		default:
			return fmt.Errorf("import %d: unknown import kind 0x%02x", i, kind)
		}
		if err != nil {
			return fmt.Errorf("import %d (%s): %w", i, externName(kind), err)
		}
		info.imports = append(info.imports, importEntry{module: mod, name: name, kind: kind})
	}
	return nil
}

func (info *moduleInfo) readMemories(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		min, _, err := r.limits()
		if err != nil {
			return fmt.Errorf("memory %d: %w", i, err)
		}
		info.setMemory(min)
	}
	return nil
}

// setMemory keeps the largest declared minimum; more than one memory is a
// validation error wazero reports later.
func (info *moduleInfo) setMemory(min uint32) {
	if !info.hasMemory || min > info.minPages {
		info.minPages = min
	}
	info.hasMemory = true
}

// reader is a bounds-checked cursor over a module's bytes.
type reader struct {
	b   []byte
	off int
}

var errEOF = errors.New("unexpected end of data")

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errEOF
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 decodes an unsigned LEB128 value of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; ; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		// The fifth byte holds the top 4 bits and must end the value.
		if i == 4 && c > 0x0f {
			return 0, fmt.Errorf("LEB128 value at offset %d overflows 32 bits", r.off-1)
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		return "", fmt.Errorf("name of %d bytes runs past the end of its section", n)
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, nil
}

// limits reads a table or memory limits pair. Flag bit 0 says a maximum
// follows, bit 1 marks shared memory; 64-bit memories (bit 2) are refused.
func (r *reader) limits() (min uint32, max *uint32, err error) {
	flag, err := r.byte()
	if err != nil {
		return 0, nil, err
	}
	if flag > 0x03 {
		return 0, nil, fmt.Errorf("unsupported limits flag 0x%02x", flag)
	}
	if min, err = r.u32(); err != nil {
		return 0, nil, err
	}
	if flag&0x01 != 0 {
		m, err := r.u32()
		if err != nil {
			return 0, nil, err
		}
		max = &m
	}
	return min, max, nil
}

package wasm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// Go's wasip1 linker emits one data segment per run of non-zero bytes:
// examples/hello has over 30,000. wazero evaluates each segment's offset
// expression and copies it on every instantiation, which made applying data
// most of the per-job cost of a cached Go module (about 3 ms of 5). So, once
// per compilation, coalesceData rewrites the data section into a few large
// segments, filling the small gaps with the zeros they would hold anyway.
//
// The rewrite only happens when it cannot change what the module does:
//   - no DataCount section, so no code can name a segment (memory.init and
//     data.drop are invalid without one);
//   - every segment is active, targets memory 0 and has a plain i32.const
//     offset;
//   - no two segments overlap, so the order they are applied in does not
//     matter (they are sorted by address) and no gap is written by any
//     other segment.
//
// Out-of-bounds behaviour is unchanged: the merged segments end exactly
// where the originals did, so instantiation fails exactly when it would have.
// Anything unexpected returns the module untouched.

const (
	sectionData      = 11
	sectionDataCount = 12

	coalesceMinSegments = 64  // below this the rewrite is not worth it
	coalesceMaxGap      = 512 // zero bytes written to join two segments
)

type dataSegment struct {
	offset uint64 // as uint32 memory address
	data   []byte
}

// coalesceData returns module with its data segments merged, or module
// itself when the rewrite does not apply.
func coalesceData(module []byte) []byte {
	if len(module) < 8 || !bytes.Equal(module[:4], wasmMagic) {
		return module
	}
	r := reader{b: module, off: 8}
	dataStart, dataBody, dataEnd := -1, -1, -1
	for r.off < len(r.b) {
		start := r.off
		id, err := r.byte()
		if err != nil {
			return module
		}
		size, err := r.u32()
		if err != nil || uint64(size) > uint64(len(r.b)-r.off) {
			return module
		}
		switch id {
		case sectionDataCount:
			return module
		case sectionData:
			if dataStart >= 0 {
				return module // two data sections: invalid, let wazero say so
			}
			dataStart, dataBody, dataEnd = start, r.off, r.off+int(size)
		}
		r.off += int(size)
	}
	if dataStart < 0 {
		return module
	}
	segs, ok := readDataSegments(module[dataBody:dataEnd])
	if !ok || len(segs) < coalesceMinSegments {
		return module
	}
	body, ok := encodeMerged(segs, uint64(len(module)))
	if !ok {
		return module
	}

	out := make([]byte, 0, len(module)-(dataEnd-dataStart)+len(body)+6)
	out = append(out, module[:dataStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	out = append(out, module[dataEnd:]...)
	return out
}

func readDataSegments(body []byte) ([]dataSegment, bool) {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil || uint64(n) > uint64(len(body)) { // each segment takes bytes
		return nil, false
	}
	segs := make([]dataSegment, 0, n)
	for i := uint32(0); i < n; i++ {
		flag, err := r.u32()
		if err != nil {
			return nil, false
		}
		switch flag {
		case 0: // active, memory 0
		case 2: // active, explicit memory index
			if mem, err := r.u32(); err != nil || mem != 0 {
				return nil, false
			}
		default: // passive, or unknown
			return nil, false
		}
		if op, err := r.byte(); err != nil || op != 0x41 { // i32.const
			return nil, false
		}
		off, err := r.s32()
		if err != nil {
			return nil, false
		}
		if end, err := r.byte(); err != nil || end != 0x0b {
			return nil, false
		}
		size, err := r.u32()
		if err != nil || uint64(size) > uint64(len(body)-r.off) {
			return nil, false
		}
		segs = append(segs, dataSegment{offset: uint64(uint32(off)), data: body[r.off : r.off+int(size)]})
		r.off += int(size)
	}
	if r.off != len(body) {
		return nil, false
	}
	// Disjoint segments give the same memory whatever order they are
	// applied in, so they may be sorted; any overlap keeps the original.
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	var prevEnd uint64
	for _, s := range segs {
		if s.offset < prevEnd {
			return nil, false
		}
		prevEnd = s.offset + uint64(len(s.data))
	}
	return segs, true
}

// encodeMerged writes a data section body in which every run of segments
// separated by at most coalesceMaxGap bytes becomes one segment. It gives up
// (ok false) when nothing merges, or when the zeros it would add outweigh the
// module itself, so a module of many tiny, spread-out segments cannot make it
// balloon.
func encodeMerged(segs []dataSegment, budget uint64) (body []byte, ok bool) {
	type run struct{ from, to int } // segs[from:to]
	var runs []run
	var zeros, size uint64 = 0, 5
	for i, s := range segs {
		if n := len(runs); n > 0 {
			last := segs[runs[n-1].to-1]
			gap := s.offset - (last.offset + uint64(len(last.data)))
			if gap <= coalesceMaxGap {
				runs[n-1].to = i + 1
				zeros += gap
				size += gap + uint64(len(s.data))
				continue
			}
		}
		runs = append(runs, run{i, i + 1})
		size += 16 + uint64(len(s.data))
	}
	if zeros > budget || len(runs) == len(segs) {
		return nil, false // too costly, or nothing to merge
	}

	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, rn := range runs {
		first, last := segs[rn.from], segs[rn.to-1]
		end := last.offset + uint64(len(last.data))
		b = append(b, 0x00, 0x41) // active segment for memory 0, i32.const
		b = appendSleb32(b, int32(uint32(first.offset)))
		b = append(b, 0x0b)
		b = binary.AppendUvarint(b, end-first.offset)
		cursor := first.offset
		var zero [coalesceMaxGap]byte
		for _, s := range segs[rn.from:rn.to] {
			b = append(b, zero[:s.offset-cursor]...)
			b = append(b, s.data...)
			cursor = s.offset + uint64(len(s.data))
		}
	}
	return b, true
}

func appendSleb32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// s32 decodes a signed LEB128 value of at most 32 bits.
func (r *reader) s32() (int32, error) {
	var v int64
	var shift uint
	for i := 0; ; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 {
			// The last byte carries bits 28-31; the unused bits must
			// repeat the sign bit.
			if c&0x80 != 0 || (c&0x08 == 0 && c&0x70 != 0) || (c&0x08 != 0 && c&0x70 != 0x70) {
				return 0, fmt.Errorf("signed LEB128 value at offset %d overflows 32 bits", r.off-1)
			}
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v), nil
		}
	}
}

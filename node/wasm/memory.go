package wasm

import (
	"math/bits"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// limitAllocator backs one job's linear memory and enforces the job's memory
// limit itself, recording whether it ever refused to grow.
//
// Why not only wazero's RuntimeConfig.WithMemoryLimitPages: that limit is
// checked inside wazero before any hook runs, so a refused memory.grow is
// invisible to the embedder. Guessing afterwards ("memory size equals the
// limit") misses the common case of a guest asking for a large block at once
// (a Go guest grows in 4 MiB arenas or more, so it can fail far below the
// limit). Enforcing the limit here makes the memory_limit outcome exact, and
// it lets one wazero Runtime (and one compiled copy of each module) serve
// jobs with any memory limit.
//
// The runtime's own page limit stays at the wasm32 maximum (65536 pages), and
// declared minimums over the job limit are refused before instantiation, so
// the first allocation always fits.
type limitAllocator struct {
	limit   uint64 // bytes
	refused bool   // a grow was refused at the limit
	pool    *memPool
	mem     *limitedMemory
}

var _ experimental.MemoryAllocator = (*limitAllocator)(nil)

// Allocate is called once per instantiation (a module has at most one
// memory). max is the declared (or runtime) maximum, which may exceed our
// limit; the suggested capacity is ignored in favour of the pool's classes.
func (a *limitAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	a.mem = &limitedMemory{owner: a, max: min(a.limit, max)}
	return a.mem
}

// recycle returns the job's memory to the pool. The executor calls it only
// once the guest has stopped and its module is closed, so nothing can still
// touch the buffer.
func (a *limitAllocator) recycle() {
	if a.mem != nil && a.pool != nil {
		a.pool.put(a.mem.buf)
		a.mem.buf = nil
	}
}

type limitedMemory struct {
	owner *limitAllocator
	max   uint64
	buf   []byte
}

// Reallocate grows the memory to size bytes. Bytes past the old length are
// zero: buffers come zeroed (fresh, or cleared by the pool) and wasm memory
// never shrinks, so spare capacity was never written.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		if size > m.owner.limit {
			m.owner.refused = true
		}
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	nb := m.owner.pool.get(size, m.max)
	copy(nb, m.buf)
	// The old buffer is left to the garbage collector rather than pooled:
	// the engine is switching to nb right now, and a buffer must never be
	// handed to another job while anything could still hold it.
	m.buf = nb
	return m.buf
}

// Free is a no-op: the executor recycles the buffer after the run.
func (m *limitedMemory) Free() {}

// memPool recycles linear memories between jobs, in power-of-two capacity
// classes from 64 KiB to 64 MiB. Reuse keeps the pages resident: allocating
// fresh large buffers for every job costs more in page faults, sweeping and
// scavenging than clearing a warm one. A pooled buffer's length is the part
// the previous job could have written, and is cleared before reuse; the rest
// was never exposed. sync.Pool drops idle buffers across GC cycles.
type memPool struct {
	classes [memClasses]sync.Pool // of *[]byte
}

const (
	memMinClass = 16 // 64 KiB
	memClasses  = 11 // up to 64 MiB
)

// class returns the pool index for a capacity that is exactly a class size.
func memClass(capacity uint64) (int, bool) {
	if capacity == 0 || capacity&(capacity-1) != 0 {
		return 0, false
	}
	c := bits.TrailingZeros64(capacity) - memMinClass
	return c, c >= 0 && c < memClasses
}

// get returns a zeroed buffer of length size with capacity at most max.
func (p *memPool) get(size, max uint64) []byte {
	capacity := max
	if size > 1<<memMinClass {
		if c := uint64(1) << bits.Len64(size-1); c < capacity {
			capacity = c
		}
	} else if 1<<memMinClass < capacity {
		capacity = 1 << memMinClass
	}
	if c, ok := memClass(capacity); ok && p != nil {
		if v, _ := p.classes[c].Get().(*[]byte); v != nil {
			b := *v
			clear(b) // only the length the previous job could reach
			return b[:size]
		}
	}
	return make([]byte, size, capacity)
}

func (p *memPool) put(b []byte) {
	if c, ok := memClass(uint64(cap(b))); ok && p != nil {
		p.classes[c].Put(&b)
	}
}

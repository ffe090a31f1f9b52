package wasm

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
)

// compiledModule is one module ready to instantiate, shared by the jobs that
// run it. refs and evicted are guarded by moduleCache.mu.
type compiledModule struct {
	hash     string
	mod      wazero.CompiledModule
	rt       wazero.Runtime          // the module's own runtime, closed after mod; nil when shared
	cc       wazero.CompilationCache // the engine of rt when it has a disk cache, closed last
	tier     Tier
	minPages uint32 // declared minimum memory, 0 without a memory
	size     int64  // bytes it is estimated to hold in memory (see moduleSize)

	refs    int
	evicted bool
	elem    *list.Element
}

// flight is one compilation in progress; everyone asking for the same hash
// meanwhile waits on done instead of compiling again.
type flight struct {
	done chan struct{}
	mod  *compiledModule
	err  error
}

type compileFunc func(ctx context.Context, hash string, module []byte) (*compiledModule, error)

// maxFailed bounds how many modules that failed a background compile are
// remembered (so that they are refused, not compiled again).
const maxFailed = 4096

// moduleCache is an LRU of compiled modules keyed by module hash, bounded by
// a count and by their estimated size in bytes, with singleflight
// compilation. An entry evicted while jobs still use it is closed by the
// last release, never under a running instance.
type moduleCache struct {
	compile  compileFunc
	max      int
	maxBytes int64 // 0: no byte bound

	mu          sync.Mutex
	lru         *list.List // front = most recently used; values are *compiledModule
	items       map[string]*compiledModule
	flights     map[string]*flight
	bytes       int64 // sum of size over items
	pending     int64 // module bytes held by background compiles not yet done
	failed      map[string]error
	failedOrder []string
	closed      bool
	bg          sync.WaitGroup    // background compiles
	onCompiled  func(hash string) // called (outside the lock) after a background compile succeeded

	compiles   atomic.Uint64
	bgCompiles atomic.Uint64
	hits       atomic.Uint64
	evictions  atomic.Uint64
}

func newModuleCache(max int, compile compileFunc) *moduleCache {
	return &moduleCache{
		compile: compile,
		max:     max,
		lru:     list.New(),
		items:   make(map[string]*compiledModule),
		flights: make(map[string]*flight),
		failed:  make(map[string]error),
	}
}

// tryAcquire returns the cached module for hash with a reference, or nil.
func (c *moduleCache) tryAcquire(hash string) *compiledModule {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.items[hash]
	if m == nil || c.closed {
		return nil
	}
	m.refs++
	c.lru.MoveToFront(m.elem)
	c.hits.Add(1)
	return m
}

// failure is the error of an earlier background compile of hash, if any.
func (c *moduleCache) failure(hash string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed[hash]
}

// background starts compiling module on a worker from sem unless it is
// cached (ready), already compiling (its flight is returned), or the module
// bytes waiting for a worker would exceed the byte bound (nil, false: the
// caller runs without it and a later job tries again). It never blocks.
func (c *moduleCache) background(stop context.Context, sem chan struct{}, hash string, module []byte) (f *flight, ready bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false
	}
	if c.items[hash] != nil {
		c.mu.Unlock()
		return nil, true
	}
	if f := c.flights[hash]; f != nil {
		c.mu.Unlock()
		return f, false
	}
	n := int64(len(module))
	if c.maxBytes > 0 && c.pending > 0 && c.pending+n > c.maxBytes {
		c.mu.Unlock()
		return nil, false
	}
	c.pending += n
	f = &flight{done: make(chan struct{})}
	c.flights[hash] = f
	c.mu.Unlock()

	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		select {
		case sem <- struct{}{}:
			c.bgCompiles.Add(1)
			c.finish(f, hash, module, 0)
			<-sem
		case <-stop.Done():
			f.err = ErrClosed
			c.finish(f, hash, nil, 0)
		}
		c.mu.Lock()
		c.pending -= n
		c.mu.Unlock()
		if f.err == nil && c.onCompiled != nil {
			c.onCompiled(hash)
		}
	}()
	return f, false
}

// finish runs the flight's compilation (unless f.err is already set) and
// publishes its result: the module enters the cache with refs references,
// a compile failure is remembered.
func (c *moduleCache) finish(f *flight, hash string, module []byte, refs int) {
	if f.err == nil {
		c.compiles.Add(1)
		f.mod, f.err = c.compile(context.Background(), hash, module)
	}
	c.mu.Lock()
	delete(c.flights, hash)
	var toClose []*compiledModule
	if f.err == nil {
		f.mod.refs = refs
		if c.closed {
			f.mod.evicted = true
			if refs == 0 {
				toClose = append(toClose, f.mod)
			}
		} else {
			f.mod.elem = c.lru.PushFront(f.mod)
			c.items[hash] = f.mod
			c.bytes += f.mod.size
			toClose = c.evictLocked()
		}
	} else if refs == 0 && !errors.Is(f.err, ErrClosed) {
		// Only a background compile (nobody waiting with a reference)
		// remembers its failure: the module ran on the interpreter, and a
		// later job must be refused rather than compiled again.
		if _, ok := c.failed[hash]; !ok {
			if len(c.failedOrder) >= maxFailed {
				delete(c.failed, c.failedOrder[0])
				c.failedOrder = c.failedOrder[1:]
			}
			c.failed[hash] = f.err
			c.failedOrder = append(c.failedOrder, hash)
		}
	}
	close(f.done)
	c.mu.Unlock()
	closeModules(toClose)
}

// remove evicts hash if cached (closed once no job holds it).
func (c *moduleCache) remove(hash string) {
	c.mu.Lock()
	m := c.items[hash]
	var toClose []*compiledModule
	if m != nil {
		c.dropLocked(m)
		if m.refs == 0 {
			toClose = append(toClose, m)
		}
	}
	c.mu.Unlock()
	closeModules(toClose)
}

func (c *moduleCache) dropLocked(m *compiledModule) {
	c.lru.Remove(m.elem)
	delete(c.items, m.hash)
	c.bytes -= m.size
	m.evicted = true
}

// usage is the entries and their estimated bytes.
func (c *moduleCache) usage() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.bytes
}

// acquire returns the compiled module for hash, compiling module if needed,
// with a reference the caller must give back with release. hit reports that
// it was ready; waited is the time spent compiling or waiting for another
// caller's compilation of the same module.
// Without compile, a missing module is ErrModuleNotCached (a compilation
// already in flight is still waited for).
func (c *moduleCache) acquire(ctx context.Context, hash string, module []byte, compile bool) (m *compiledModule, hit bool, waited time.Duration, err error) {
	start := time.Now()
	waitedForFlight := false
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, false, 0, ErrClosed
		}
		if m := c.items[hash]; m != nil {
			m.refs++
			c.lru.MoveToFront(m.elem)
			c.mu.Unlock()
			if waitedForFlight {
				return m, false, time.Since(start), nil
			}
			c.hits.Add(1)
			return m, true, 0, nil
		}
		if f := c.flights[hash]; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, false, time.Since(start), ctx.Err()
			}
			if f.err != nil {
				return nil, false, time.Since(start), f.err
			}
			// The entry is in items now unless it was already evicted:
			// loop to take a reference under the lock (or compile again).
			waitedForFlight = true
			continue
		}
		if !compile {
			c.mu.Unlock()
			return nil, false, time.Since(start), ErrModuleNotCached
		}
		f := &flight{done: make(chan struct{})}
		c.flights[hash] = f
		c.mu.Unlock()

		c.finish(f, hash, module, 1)
		if f.err != nil {
			return nil, false, time.Since(start), f.err
		}
		return f.mod, false, time.Since(start), nil
	}
}

// evictLocked drops least recently used entries beyond max or maxBytes
// (even the newest, when it alone is over the byte bound: it then serves
// the jobs holding it and is closed after them) and returns those no job
// holds, for the caller to close outside the lock.
func (c *moduleCache) evictLocked() []*compiledModule {
	var out []*compiledModule
	for c.lru.Len() > c.max || (c.maxBytes > 0 && c.bytes > c.maxBytes && c.lru.Len() > 0) {
		m := c.lru.Back().Value.(*compiledModule)
		c.dropLocked(m)
		c.evictions.Add(1)
		if m.refs == 0 {
			out = append(out, m)
		}
	}
	return out
}

func (c *moduleCache) release(m *compiledModule) {
	c.mu.Lock()
	m.refs--
	last := m.refs == 0 && m.evicted
	c.mu.Unlock()
	if last {
		closeModules([]*compiledModule{m})
	}
}

// closeAll evicts everything; modules still in use close on their last release.
func (c *moduleCache) closeAll() {
	c.mu.Lock()
	c.closed = true
	saved := c.max
	c.max = 0
	toClose := c.evictLocked()
	c.max = saved
	c.mu.Unlock()
	closeModules(toClose)
}

func (c *moduleCache) has(hash string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.items[hash] != nil
}

func (c *moduleCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func closeModules(ms []*compiledModule) {
	for _, m := range ms {
		// Closing only releases compiled code; there is nothing to report.
		if m.mod != nil {
			_ = m.mod.Close(context.Background())
		}
		if m.rt != nil {
			_ = m.rt.Close(context.Background())
		}
		if m.cc != nil {
			_ = m.cc.Close(context.Background())
		}
	}
}

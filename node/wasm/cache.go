package wasm

import (
	"container/list"
	"context"
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
	minPages uint32 // declared minimum memory, 0 without a memory

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

// moduleCache is a bounded LRU of compiled modules keyed by module hash,
// with singleflight compilation. An entry evicted while jobs still use it is
// closed by the last release, never under a running instance.
type moduleCache struct {
	compile compileFunc
	max     int

	mu      sync.Mutex
	lru     *list.List // front = most recently used; values are *compiledModule
	items   map[string]*compiledModule
	flights map[string]*flight
	closed  bool

	compiles atomic.Uint64
	hits     atomic.Uint64
}

func newModuleCache(max int, compile compileFunc) *moduleCache {
	return &moduleCache{
		compile: compile,
		max:     max,
		lru:     list.New(),
		items:   make(map[string]*compiledModule),
		flights: make(map[string]*flight),
	}
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

		c.compiles.Add(1)
		f.mod, f.err = c.compile(ctx, hash, module)

		c.mu.Lock()
		delete(c.flights, hash)
		var toClose []*compiledModule
		if f.err == nil {
			f.mod.refs = 1
			if c.closed {
				f.mod.evicted = true // Close already ran: the last release closes it
			} else {
				f.mod.elem = c.lru.PushFront(f.mod)
				c.items[hash] = f.mod
				toClose = c.evictLocked()
			}
		}
		close(f.done)
		c.mu.Unlock()
		closeModules(toClose)
		if f.err != nil {
			return nil, false, time.Since(start), f.err
		}
		return f.mod, false, time.Since(start), nil
	}
}

// evictLocked drops least recently used entries beyond max and returns those
// no job holds, for the caller to close outside the lock.
func (c *moduleCache) evictLocked() []*compiledModule {
	var out []*compiledModule
	for c.lru.Len() > c.max {
		m := c.lru.Remove(c.lru.Back()).(*compiledModule)
		delete(c.items, m.hash)
		m.evicted = true
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
		_ = m.mod.Close(context.Background())
	}
}

package wasm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

// fakeCompiled stands in for a wazero.CompiledModule; only Close is used by
// the cache.
type fakeCompiled struct {
	wazero.CompiledModule
	closed atomic.Int32
}

func (f *fakeCompiled) Close(context.Context) error {
	f.closed.Add(1)
	return nil
}

type fakeCompiler struct {
	mu      sync.Mutex
	made    map[string][]*fakeCompiled
	release chan struct{} // when set, compile blocks until it is closed
	fail    error
}

func (fc *fakeCompiler) compile(_ context.Context, hash string, _ []byte) (*compiledModule, error) {
	if fc.release != nil {
		<-fc.release
	}
	if fc.fail != nil {
		return nil, fc.fail
	}
	f := &fakeCompiled{}
	fc.mu.Lock()
	if fc.made == nil {
		fc.made = map[string][]*fakeCompiled{}
	}
	fc.made[hash] = append(fc.made[hash], f)
	fc.mu.Unlock()
	return &compiledModule{hash: hash, mod: f}, nil
}

func TestModuleCacheLRU(t *testing.T) {
	fc := &fakeCompiler{}
	c := newModuleCache(2, fc.compile)
	ctx := context.Background()
	get := func(h string) *compiledModule {
		t.Helper()
		m, _, _, err := c.acquire(ctx, h, nil, true)
		require.NoError(t, err)
		return m
	}
	a := get("a")
	c.release(a)
	c.release(get("b"))
	c.release(get("a")) // a is now most recently used
	c.release(get("c")) // evicts b
	assert.Equal(t, 2, c.len())
	assert.EqualValues(t, 1, fc.made["b"][0].closed.Load(), "evicted unused module is closed")
	assert.EqualValues(t, 0, fc.made["a"][0].closed.Load())

	m, hit, waited, err := c.acquire(ctx, "a", nil, true)
	require.NoError(t, err)
	assert.True(t, hit)
	assert.Zero(t, waited)
	c.release(m)
	assert.EqualValues(t, 3, c.compiles.Load())
}

func TestModuleCacheEvictionWaitsForLastRelease(t *testing.T) {
	fc := &fakeCompiler{}
	c := newModuleCache(1, fc.compile)
	ctx := context.Background()
	a, _, _, err := c.acquire(ctx, "a", nil, true)
	require.NoError(t, err)
	a2, _, _, err := c.acquire(ctx, "a", nil, true)
	require.NoError(t, err)
	b, _, _, err := c.acquire(ctx, "b", nil, true) // evicts a while two jobs hold it
	require.NoError(t, err)
	fa := fc.made["a"][0]
	assert.EqualValues(t, 0, fa.closed.Load(), "must not close under a running job")
	c.release(a)
	assert.EqualValues(t, 0, fa.closed.Load())
	c.release(a2)
	assert.EqualValues(t, 1, fa.closed.Load(), "last release closes the evicted module")

	c.closeAll()
	fb := fc.made["b"][0]
	assert.EqualValues(t, 0, fb.closed.Load(), "closeAll waits for b's holder too")
	c.release(b)
	assert.EqualValues(t, 1, fb.closed.Load())
	_, _, _, err = c.acquire(ctx, "b", nil, true)
	require.ErrorIs(t, err, ErrClosed)
}

func TestModuleCacheSingleflight(t *testing.T) {
	fc := &fakeCompiler{release: make(chan struct{})}
	c := newModuleCache(4, fc.compile)
	const n = 16
	var wg sync.WaitGroup
	mods := make([]*compiledModule, n)
	hits := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			var err error
			mods[i], hits[i], _, err = c.acquire(context.Background(), "h", nil, true)
			assert.NoError(t, err)
		})
	}
	// Everyone is either compiling or waiting on the one flight (or has not
	// looked yet); releasing the compiler lets them all through.
	close(fc.release)
	wg.Wait()
	assert.EqualValues(t, 1, c.compiles.Load())
	for i := range n {
		assert.Same(t, mods[0], mods[i])
		c.release(mods[i])
	}
	assert.Equal(t, 0, mods[0].refs)
}

func TestModuleCacheSharesFailure(t *testing.T) {
	boom := errors.New("boom")
	fc := &fakeCompiler{fail: boom}
	c := newModuleCache(4, fc.compile)
	_, _, _, err := c.acquire(context.Background(), "h", nil, true)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 0, c.len(), "failures are not cached")
}

func TestModuleCacheWaiterCancelled(t *testing.T) {
	fc := &fakeCompiler{release: make(chan struct{})}
	c := newModuleCache(4, fc.compile)
	first := make(chan *compiledModule)
	go func() {
		m, _, _, _ := c.acquire(context.Background(), "h", nil, true)
		first <- m
	}()
	// Wait until the first caller owns the flight.
	eventually(t, 5e9, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.flights["h"] != nil
	}, "compilation never started")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, _, err := c.acquire(ctx, "h", nil, true)
	require.ErrorIs(t, err, context.Canceled)
	close(fc.release)
	m := <-first
	require.NotNil(t, m)
	c.release(m)
}

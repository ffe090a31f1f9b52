package jobs

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/metrics"
)

// fakeClock is a settable clock for the nonce cache.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestJOB15_NonceCache(t *testing.T) {
	t.Run("remembers for the TTL", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		c := NewNonceCache(10, time.Minute)
		c.now = clk.now
		assert.False(t, c.Seen("a"))
		assert.True(t, c.Add("a"))
		assert.True(t, c.Seen("a"))
		assert.False(t, c.Add("a"), "a nonce is added once")
		clk.advance(59 * time.Second)
		assert.True(t, c.Seen("a"))
		clk.advance(time.Second)
		assert.False(t, c.Seen("a"), "expired at the TTL")
		assert.True(t, c.Add("b"))
		assert.Equal(t, 1, c.Len(), "expired entries are dropped on Add")
	})
	t.Run("bounded, oldest evicted first", func(t *testing.T) {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		c := NewNonceCache(3, time.Hour)
		c.now = clk.now
		for i := range 5 {
			require.True(t, c.Add(strconv.Itoa(i)))
			clk.advance(time.Second)
		}
		assert.Equal(t, 3, c.Len())
		for i, want := range []bool{false, false, true, true, true} {
			assert.Equal(t, want, c.Seen(strconv.Itoa(i)), "nonce %d", i)
		}
	})
	t.Run("many adds keep memory bounded", func(t *testing.T) {
		c := NewNonceCache(100, time.Hour)
		for i := range 10000 {
			c.Add(strconv.Itoa(i))
		}
		assert.Equal(t, 100, c.Len())
		assert.LessOrEqual(t, len(c.order)-c.head, 100)
		assert.LessOrEqual(t, cap(c.order), 1000, "the queue's backing array is reused")
		assert.True(t, c.Seen("9999"))
		assert.False(t, c.Seen("9899"))
	})
	t.Run("defaults", func(t *testing.T) {
		c := NewNonceCache(0, 0)
		assert.Equal(t, DefaultNonceCapacity, c.max)
		assert.Equal(t, DefaultNonceTTL, c.ttl)
	})
	t.Run("concurrent adds: each nonce wins once", func(t *testing.T) {
		c := NewNonceCache(1000, time.Hour)
		var wg sync.WaitGroup
		wins := make([]int, 8)
		for g := range 8 {
			wg.Go(func() {
				for i := range 100 {
					if c.Add(fmt.Sprint(i)) {
						wins[g]++
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for _, w := range wins {
			total += w
		}
		assert.Equal(t, 100, total)
	})
}

func TestModuleStore(t *testing.T) {
	mod := func(n int, b byte) []byte {
		m := make([]byte, n)
		for i := range m {
			m[i] = b
		}
		return m
	}
	t.Run("LRU by bytes", func(t *testing.T) {
		m := metrics.New()
		s := NewModuleStore(100, m)
		require.True(t, s.Put("a", mod(40, 'a')))
		require.True(t, s.Put("b", mod(40, 'b')))
		got, ok := s.Get("a") // a is now the most recently used
		require.True(t, ok)
		assert.Equal(t, mod(40, 'a'), got)
		require.True(t, s.Put("c", mod(40, 'c'))) // evicts b
		_, ok = s.Get("b")
		assert.False(t, ok)
		_, ok = s.Get("a")
		assert.True(t, ok)
		assert.Equal(t, int64(80), s.Bytes())
		assert.Equal(t, 2, s.Len())
		assert.Equal(t, 2.0, cacheLookups(t, m, "hit"))
		assert.Equal(t, 1.0, cacheLookups(t, m, "miss"))
	})
	t.Run("too large for the store", func(t *testing.T) {
		s := NewModuleStore(100, nil)
		require.True(t, s.Put("a", mod(60, 'a')))
		assert.False(t, s.Put("huge", mod(101, 'h')))
		_, ok := s.Get("a")
		assert.True(t, ok, "a module that cannot fit evicts nothing")
	})
	t.Run("one module evicts several", func(t *testing.T) {
		s := NewModuleStore(100, nil)
		for i := range 5 {
			require.True(t, s.Put(strconv.Itoa(i), mod(20, 'x')))
		}
		require.True(t, s.Put("big", mod(90, 'b')))
		assert.Equal(t, 1, s.Len())
		assert.Equal(t, int64(90), s.Bytes())
	})
	t.Run("put twice", func(t *testing.T) {
		s := NewModuleStore(100, nil)
		require.True(t, s.Put("a", mod(60, 'a')))
		require.True(t, s.Put("a", mod(60, 'a')))
		assert.Equal(t, int64(60), s.Bytes())
	})
	t.Run("disabled", func(t *testing.T) {
		s := NewModuleStore(0, nil)
		assert.False(t, s.Put("a", nil))
		_, ok := s.Get("a")
		assert.False(t, ok)
	})
}

package jobs

import (
	"sync"
	"time"
)

// Replay cache defaults.
const (
	DefaultNonceTTL      = 15 * time.Minute
	DefaultNonceCapacity = 1 << 16
)

// NonceCache remembers the nonces of accepted offers (JOB-15) for a TTL,
// holding at most a fixed number; when full, the oldest is forgotten first.
// A nonce forgotten by age or by eviction could be replayed: the TTL bounds
// how old a replayed offer can be, and the capacity bounds memory (64 K
// nonces is about 10 MB) against a peer flooding offers. It is safe for
// concurrent use.
type NonceCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	seen  map[string]time.Time // nonce → when it was added
	order []nonceEntry         // oldest first, from head
	head  int
}

type nonceEntry struct {
	nonce string
	at    time.Time
}

// NewNonceCache returns a cache holding at most capacity nonces, each for
// ttl. Non-positive values take the defaults.
func NewNonceCache(capacity int, ttl time.Duration) *NonceCache {
	if capacity <= 0 {
		capacity = DefaultNonceCapacity
	}
	if ttl <= 0 {
		ttl = DefaultNonceTTL
	}
	return &NonceCache{ttl: ttl, max: capacity, now: time.Now, seen: make(map[string]time.Time)}
}

// Seen reports whether nonce was added less than the TTL ago and is still
// held.
func (c *NonceCache) Seen(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.seen[nonce]
	return ok && c.now().Sub(at) < c.ttl
}

// Add records nonce, evicting expired entries and, when full, the oldest.
// It reports false if the nonce was already held (and leaves it as it was).
func (c *NonceCache) Add(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expire(now)
	if _, ok := c.seen[nonce]; ok {
		return false
	}
	for len(c.seen) >= c.max {
		c.popOldest()
	}
	c.seen[nonce] = now
	c.order = append(c.order, nonceEntry{nonce, now})
	return true
}

// Len is the number of nonces held.
func (c *NonceCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *NonceCache) expire(now time.Time) {
	for c.head < len(c.order) && now.Sub(c.order[c.head].at) >= c.ttl {
		c.popOldest()
	}
}

func (c *NonceCache) popOldest() {
	e := c.order[c.head]
	c.order[c.head] = nonceEntry{}
	c.head++
	delete(c.seen, e.nonce)
	// Compact once the dead prefix is half the slice, so the backing array
	// does not grow without bound.
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

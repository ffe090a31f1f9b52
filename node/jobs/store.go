package jobs

import (
	"container/list"
	"sync"

	"github.com/phase-protocol/plasm/node/metrics"
)

// ModuleStore keeps module bytes by module hash so a client need not send a
// module the node already has (have_module). It is an in-memory LRU bounded
// by the total size of the modules it holds. It is safe for concurrent use.
//
// Stored slices are shared and must not be modified by anyone.
type ModuleStore struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List // of *storedModule, most recently used at the front
	items map[string]*list.Element
	m     *metrics.Metrics // may be nil
}

type storedModule struct {
	hash  string
	bytes []byte
}

// NewModuleStore returns a store holding at most maxBytes of modules; 0
// disables it (every Get misses). Lookups are counted in m.ModuleCache by
// result (hit, miss) when m is not nil.
func NewModuleStore(maxBytes int64, m *metrics.Metrics) *ModuleStore {
	return &ModuleStore{max: max(maxBytes, 0), lru: list.New(), items: make(map[string]*list.Element), m: m}
}

// Get returns the module with this hash, if held, and marks it recently used.
func (s *ModuleStore) Get(hash string) ([]byte, bool) {
	s.mu.Lock()
	el, ok := s.items[hash]
	var b []byte
	if ok {
		s.lru.MoveToFront(el)
		b = el.Value.(*storedModule).bytes
	}
	s.mu.Unlock()
	if s.m != nil {
		result := "miss"
		if ok {
			result = "hit"
		}
		s.m.ModuleCache.WithLabelValues(result).Inc()
	}
	return b, ok
}

// Put stores module under hash, evicting the least recently used modules
// until it fits. The caller must have checked that hash is the module's
// SHA-256 (JOB-16 relies on it). A module larger than the whole store is not
// kept. It reports whether the module is held afterwards.
func (s *ModuleStore) Put(hash string, module []byte) bool {
	size := int64(len(module))
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[hash]; ok {
		s.lru.MoveToFront(el)
		return true
	}
	if size > s.max || s.max == 0 {
		return false
	}
	for s.used+size > s.max {
		oldest := s.lru.Back()
		sm := oldest.Value.(*storedModule)
		s.lru.Remove(oldest)
		delete(s.items, sm.hash)
		s.used -= int64(len(sm.bytes))
	}
	s.items[hash] = s.lru.PushFront(&storedModule{hash: hash, bytes: module})
	s.used += size
	return true
}

// Len is the number of modules held.
func (s *ModuleStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Bytes is the total size of the modules held.
func (s *ModuleStore) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

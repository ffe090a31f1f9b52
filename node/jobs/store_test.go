package jobs

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stranger may send a new module every second: however many arrive, the
// store at its bound holds no more than jobs.module_store_mb, and keeps
// the modules used most recently.
func TestModuleStoreStaysWithinItsBound(t *testing.T) {
	const bound = 1 << 20
	s := NewModuleStore(bound, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var last string
	for i := range 2000 {
		h := fmt.Sprintf("sha256:%064x", i)
		size := 1 + rng.IntN(bound/4)
		s.Put(h, make([]byte, size))
		require.LessOrEqual(t, s.Bytes(), int64(bound), "after %d modules", i+1)
		if last != "" {
			_, ok := s.Get(last) // keep one module hot
			require.True(t, ok, "the module used most recently was evicted after %d modules", i+1)
		}
		if last == "" {
			last = h
		}
	}
	assert.Greater(t, s.Len(), 1)
}

package wasm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimitAllocator(t *testing.T) {
	a := &limitAllocator{limit: 4 * pageSize}
	m := a.Allocate(pageSize, maxPages*pageSize)
	buf := m.Reallocate(pageSize)
	require.Len(t, buf, pageSize)
	buf[0] = 0xaa
	buf[pageSize-1] = 0xbb

	buf = m.Reallocate(3 * pageSize)
	require.Len(t, buf, 3*pageSize)
	assert.Equal(t, byte(0xaa), buf[0], "contents survive a grow")
	assert.Equal(t, byte(0xbb), buf[pageSize-1])
	for i, c := range buf[pageSize:] {
		if c != 0 {
			t.Fatalf("byte %d of the new pages is %#x, want 0", pageSize+i, c)
		}
	}
	assert.False(t, a.refused)

	assert.Nil(t, m.Reallocate(5*pageSize), "over the limit")
	assert.True(t, a.refused)
	assert.Len(t, m.Reallocate(4*pageSize), 4*pageSize, "up to the limit still works")
	m.Free()
}

func TestLimitAllocatorDeclaredMaxBelowLimit(t *testing.T) {
	a := &limitAllocator{limit: 100 * pageSize}
	m := a.Allocate(0, 2*pageSize)
	assert.Nil(t, m.Reallocate(3*pageSize))
	assert.False(t, a.refused, "the module's own maximum is not our limit")
}

package sim

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConnManagerReplacesTheHostsWithItsGrace(t *testing.T) {
	old, err := connmgr.NewConnManager(16, 48, connmgr.WithGracePeriod(30*time.Second))
	require.NoError(t, err)
	cfg := &libp2p.Config{ConnManager: old}
	require.NoError(t, connManager(8, 24, 5*time.Second)(cfg))
	cm, ok := cfg.ConnManager.(*connmgr.BasicConnMgr)
	require.True(t, ok)
	require.NotSame(t, old, cm)
	defer cm.Close()
	info := cm.GetInfo()
	assert.Equal(t, 5*time.Second, info.GracePeriod)
	assert.Equal(t, 8, info.LowWater)
	assert.Equal(t, 24, info.HighWater)
}

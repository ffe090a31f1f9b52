package discovery

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/phase"
)

// cachedRecord is a record for key n that expires at exp. The Finder
// caches only what a lookup verified, so these stand for records it
// already checked; its cache path does not verify again.
func cachedRecord(t *testing.T, n byte, exp time.Time) caps.Found {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(priv)
	require.NoError(t, err)
	return caps.Found{Peer: peer.AddrInfo{ID: id}, Live: true, Record: &caps.Record{
		Version: 1, PeerID: id.String(), Arch: "amd64", OS: "linux", CPUCores: 4, MemoryMB: 4096,
		Runtime: "wazero", ABIs: []string{phase.ABIWASIP1},
		Limits: caps.Limits{MaxModuleBytes: 8 << 20, MaxMemoryMB: 1024, MaxTimeoutSeconds: 300, MaxConcurrentJobs: 8, MaxStdinBytes: 1 << 20},
		Seq:    1, IssuedAt: exp.Add(-time.Hour).Unix(), ExpiresAt: exp.Unix(),
	}}
}

// The Finder answers from its cache while it is fresh and holds enough
// matching records; the salt changes the order, never the set; expired
// and forgotten records are gone. (Host and DHT are nil: a lookup here
// would panic, so every answer below came from the cache.)
func TestFinderAnswersFromItsCache(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	f := &Finder{Now: func() time.Time { return now }, Refresh: time.Minute}
	var ids []peer.ID
	for n := range byte(8) {
		exp := now.Add(time.Hour)
		if n == 7 {
			exp = now.Add(10 * time.Second) // expires first
		}
		r := cachedRecord(t, n+1, exp)
		f.keep(r)
		ids = append(ids, r.Peer.ID)
	}
	f.lookedUp, f.complete = now, true

	ctx := context.Background()
	got, err := f.Find(ctx, caps.Requirements{Salt: 1}, 3)
	require.NoError(t, err)
	require.Len(t, got, 3, "limit respected")

	firsts := map[peer.ID]bool{}
	for salt := range uint64(40) {
		got, err := f.Find(ctx, caps.Requirements{Salt: salt + 1}, 8)
		require.NoError(t, err)
		require.Len(t, got, 8)
		firsts[got[0].Peer.ID] = true
	}
	assert.Greater(t, len(firsts), 4, "different salts put different equals first")

	now = now.Add(20 * time.Second) // the eighth record has expired
	f.Forget(ids[0])
	got, err = f.Find(ctx, caps.Requirements{Salt: 7}, 8)
	require.NoError(t, err)
	assert.Len(t, got, 6)
	for _, g := range got {
		assert.NotEqual(t, ids[0], g.Peer.ID, "forgotten")
		assert.NotEqual(t, ids[7], g.Peer.ID, "expired")
	}
	_, ok := f.known(ids[7])
	assert.False(t, ok, "an expired record is dropped from the cache")

	got, err = f.Find(ctx, caps.Requirements{MinMemoryMB: 2048, Salt: 3}, 2)
	require.NoError(t, err)
	assert.Len(t, got, 2, "requirements still filter cached records")
}

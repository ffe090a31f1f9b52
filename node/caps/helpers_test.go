package caps

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

// Fixed times far in the future so fixture records never expire by accident;
// tests pass testNow explicitly.
const (
	testIssued  = int64(1_800_000_000)
	testExpires = testIssued + 3600
)

var testNow = time.Unix(testIssued+10, 0)

// testKey returns a deterministic Ed25519 key: seed bytes n, n+1, ..., n+31.
func testKey(t testing.TB, n byte) (crypto.PrivKey, peer.ID) {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = n + byte(i)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(priv)
	require.NoError(t, err)
	return priv, id
}

// baseRecord is a valid unsigned record for id.
func baseRecord(id peer.ID) Record {
	return Record{
		Version:        1,
		PeerID:         id.String(),
		Arch:           "amd64",
		OS:             "linux",
		CPUCores:       4,
		MemoryMB:       4096,
		Runtime:        "wazero",
		RuntimeVersion: "v1.12.0",
		ABIs:           []string{"wasi_snapshot_preview1"},
		Limits:         Limits{MaxModuleBytes: 8 << 20, MaxMemoryMB: 1024, MaxTimeoutSeconds: 300, MaxConcurrentJobs: 8, MaxStdinBytes: 1 << 20, MaxJobsPerPeer: 4},
		Load:           Load{RunningJobs: 1, QueuedJobs: 2},
		Seq:            1_800_000_000_000_000,
		IssuedAt:       testIssued,
		ExpiresAt:      testExpires,
	}
}

// signedRecord returns a signed copy of base for key n, after applying mod.
func signedRecord(t testing.TB, n byte, mod func(*Record)) (*Record, crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, id := testKey(t, n)
	r := baseRecord(id)
	if mod != nil {
		mod(&r)
	}
	require.NoError(t, r.Sign(priv))
	return &r, priv, id
}

func mustMarshal(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := r.Marshal()
	require.NoError(t, err)
	return b
}

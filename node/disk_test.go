package node_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/datadir"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/p2p"
)

// readOnlyFS fails every write as a read-only disk does.
type readOnlyFS struct{ datadir.OS }

func (readOnlyFS) CreateTemp(dir, pattern string) (datadir.File, error) {
	return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: syscall.EROFS}
}

// A node whose data directory cannot be written says so (health, logs) and
// keeps running jobs from memory; nothing on disk changes.
func TestReadOnlyDataDirRunsFromMemory(t *testing.T) {
	boot := startNode(t, testConfig(t))
	c := testConfig(t)
	_, err := identity.LoadOrCreate(c.DataDir) // the key was made while the disk was writable
	require.NoError(t, err)
	before, err := os.ReadDir(c.DataDir)
	require.NoError(t, err)
	c.Bootstrap = []string{bootstrapAddr(boot)}
	ro, err := node.New(context.Background(), node.Options{Config: c, FS: readOnlyFS{}})
	require.NoError(t, err, "a read-only data directory does not stop the node")
	defer ro.Close()
	require.NoError(t, ro.Start(context.Background()))

	problems := ro.Problems()
	require.Len(t, problems, 1)
	assert.Equal(t, "data_dir", problems[0].Part)
	assert.Contains(t, problems[0].Error, "read-only")
	assert.Contains(t, problems[0].Error, c.DataDir, "the error names the directory")
	_, err = os.Stat(filepath.Join(c.DataDir, "cache"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "the compile cache is kept in memory")

	job := client.Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"abc"}, Attempts: 1, TimeoutSeconds: 10}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := boot.Client().Run(ctx, job, clientOptsFor(ro))
		cancel()
		require.NoError(t, err, "job %d", i)
		assert.Equal(t, "cba\n", string(res.Stdout))
	}

	err = ro.Close()
	require.Error(t, err, "saving peers at shutdown fails, and says so")
	assert.Contains(t, err.Error(), "read-only")
	after, err := os.ReadDir(c.DataDir)
	require.NoError(t, err)
	assert.Equal(t, len(before), len(after), "nothing was written: %v", after)
}

// peers.json holds at most dht.saved_peers peers.
func TestSavedPeersBounded(t *testing.T) {
	// The nodes dial boot as they start: wait for those connections rather
	// than dial back (a dial back racing theirs once failed its handshake).
	boot, _ := startNetwork(t, 2, nil)
	require.Eventually(t, func() bool { return len(boot.Host.Network().Peers()) >= 2 },
		20*time.Second, 20*time.Millisecond, "both nodes connect to the bootstrap node")
	dir := t.TempDir()
	require.NoError(t, p2p.SavePeers(nil, dir, boot.Host, 1))
	got, err := p2p.LoadPeers(dir)
	require.NoError(t, err)
	assert.Len(t, got, 1)
	require.NoError(t, p2p.SavePeers(nil, dir, boot.Host, 0))
	got, err = p2p.LoadPeers(dir)
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, p2p.SavePeers(nil, dir, boot.Host, 64))
	got, err = p2p.LoadPeers(dir)
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

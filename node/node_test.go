package node_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
)

// testConfig is a loopback node with fast timers.
func testConfig(t testing.TB) config.Config {
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.API = ""
	c.DHT.RetryMin = config.Duration(100 * time.Millisecond)
	c.DHT.RetryMax = config.Duration(time.Second)
	c.Caps.RepublishInterval = config.Duration(2 * time.Second)
	c.Caps.TTL = config.Duration(4 * time.Second)
	c.Network.HolePunching = false
	return c
}

func startNode(t testing.TB, cfg config.Config) *node.Node {
	t.Helper()
	n, err := node.New(context.Background(), node.Options{Config: cfg})
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	require.NoError(t, n.Start(context.Background()))
	return n
}

func bootstrapAddr(n *node.Node) string { return n.Addrs()[0].String() }

// startNetwork starts a bootstrap node and count more nodes joining it;
// mod may vary each node's config by index (the bootstrap node is -1).
func startNetwork(t testing.TB, count int, mod func(i int, c *config.Config)) (*node.Node, []*node.Node) {
	t.Helper()
	bc := testConfig(t)
	if mod != nil {
		mod(-1, &bc)
	}
	boot := startNode(t, bc)
	nodes := make([]*node.Node, count)
	for i := range nodes {
		c := testConfig(t)
		c.Bootstrap = []string{bootstrapAddr(boot)}
		if mod != nil {
			mod(i, &c)
		}
		nodes[i] = startNode(t, c)
	}
	return boot, nodes
}

// findIDs runs Find and returns the peer IDs found (empty on no match).
func findIDs(t testing.TB, n *node.Node, req caps.Requirements) []peer.ID {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, _ := n.Find(ctx, req, 0)
	ids := make([]peer.ID, 0, len(found))
	for _, f := range found {
		ids = append(ids, f.Peer.ID)
	}
	return ids
}

func idsOf(ns ...*node.Node) []peer.ID {
	out := make([]peer.ID, len(ns))
	for i, n := range ns {
		out[i] = n.Host.ID()
	}
	return out
}

func sameSet(a, b []peer.ID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestDHT1_CAP5_CAP6_TwentyNodesDiscoverAndClientFindsOnlyCapable(t *testing.T) {
	// Even-numbered nodes offer 2 GB per job, odd ones 256 MB.
	boot, nodes := startNetwork(t, 20, func(i int, c *config.Config) {
		c.Jobs.MaxMemoryMB = 256
		if i >= 0 && i%2 == 0 {
			c.Jobs.MaxMemoryMB = 2048
		}
	})
	var big []*node.Node
	for i, n := range nodes {
		if i%2 == 0 {
			big = append(big, n)
		}
	}
	// A pure client joins through the one bootstrap address.
	cc := testConfig(t)
	cc.DHT.ClientMode = true
	cc.Bootstrap = []string{bootstrapAddr(boot)}
	client := startNode(t, cc)
	<-client.Ready()

	all := append([]*node.Node{boot}, nodes...)
	require.Eventually(t, func() bool {
		return sameSet(findIDs(t, client, caps.Requirements{}), idsOf(all...))
	}, 90*time.Second, 250*time.Millisecond, "the client finds all 21 nodes")
	// CAP-6: a 1 GB job matches every node (each offers 2 GB or more in
	// all); those with ≥1 GB per job, which run it unclamped, come first.
	require.Eventually(t, func() bool {
		found := findIDs(t, client, caps.Requirements{MinMemoryMB: 1024})
		return len(found) == len(all) && sameSet(found[:len(big)], idsOf(big...))
	}, 30*time.Second, 250*time.Millisecond, "the nodes with ≥1 GB per job are found first")
	assert.Empty(t, findIDs(t, client, caps.Requirements{MinMemoryMB: 1 << 20}), "no node offers 1 TB")
	assert.Empty(t, findIDs(t, client, caps.Requirements{Runtime: "wasmtime"}), "no node runs another runtime")

	// Every node sees the others in its routing table.
	for _, n := range all {
		assert.GreaterOrEqual(t, n.DHT.RoutingTable().Size(), 10, "routing table of %s", n.Host.ID())
	}
}

func TestClientSeesLiveLoad(t *testing.T) {
	loaded := make(chan struct{})
	var once sync.Once
	_, nodes := startNetwork(t, 2, nil)
	cc := testConfig(t)
	cc.DHT.ClientMode = true
	cc.Bootstrap = []string{bootstrapAddr(nodes[0])}
	client := startNode(t, cc)
	target := nodes[1]
	require.Eventually(t, func() bool { return slices.Contains(findIDs(t, client, caps.Requirements{}), target.Host.ID()) },
		20*time.Second, 100*time.Millisecond)

	// A job that spins until its deadline makes the node busy.
	go func() {
		defer once.Do(func() { close(loaded) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client.Client().Run(ctx, loopJob(t), clientOptsFor(target))
	}()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		found, err := client.Find(ctx, caps.Requirements{}, 0)
		if err != nil {
			return false
		}
		for _, f := range found {
			if f.Peer.ID == target.Host.ID() && f.Live && f.Record.Load.RunningJobs == 1 {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the live record shows the running job")
	<-loaded
}

func TestLeavingNodeDropsOutWhenRecordExpires(t *testing.T) {
	boot, nodes := startNetwork(t, 3, nil)
	cc := testConfig(t)
	cc.DHT.ClientMode = true
	cc.Bootstrap = []string{bootstrapAddr(boot)}
	client := startNode(t, cc)
	leaver := nodes[0]
	require.Eventually(t, func() bool { return slices.Contains(findIDs(t, client, caps.Requirements{}), leaver.Host.ID()) },
		20*time.Second, 100*time.Millisecond)
	require.NoError(t, leaver.Close())
	// Its provider records outlive it; its signed record does not.
	require.Eventually(t, func() bool { return !slices.Contains(findIDs(t, client, caps.Requirements{}), leaver.Host.ID()) },
		20*time.Second, 200*time.Millisecond, "the departed node drops out once its record expires")
	assert.Contains(t, findIDs(t, client, caps.Requirements{}), nodes[1].Host.ID(), "the others stay")
}

func TestCAP2_CAP5_ForgedRecordsNeverReachFind(t *testing.T) {
	boot, nodes := startNetwork(t, 2, nil)
	cc := testConfig(t)
	cc.DHT.ClientMode = true
	cc.Bootstrap = []string{bootstrapAddr(boot)}
	client := startNode(t, cc)
	honest := nodes[0]
	require.Eventually(t, func() bool { return slices.Contains(findIDs(t, client, caps.Requirements{}), honest.Host.ID()) },
		20*time.Second, 100*time.Millisecond)

	// Alter the honest node's signed record and push it into the DHT from
	// another node: every honest DHT node must refuse it.
	rec := honest.Record()
	require.NotNil(t, rec)
	rec.MemoryMB = 1 << 20
	rec.Seq++
	data, err := rec.Marshal()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = nodes[1].DHT.PutValue(ctx, caps.Key(honest.Host.ID()), data)
	require.Error(t, err, "the sender's own validator refuses the forged record")

	assert.Empty(t, findIDs(t, client, caps.Requirements{MinMemoryMB: 1 << 19}), "no forged capability is found")
	for _, f := range mustFind(t, client) {
		require.NoError(t, caps.Verify(f.Record, time.Now()), "every record Find returns verifies")
	}
}

func mustFind(t *testing.T, n *node.Node) []caps.Found {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, err := n.Find(ctx, caps.Requirements{}, 0)
	require.NoError(t, err)
	return found
}

func TestRestartRejoinsThroughSavedPeers(t *testing.T) {
	boot, nodes := startNetwork(t, 2, nil)
	a, b := nodes[0], nodes[1]
	require.Eventually(t, func() bool {
		return slices.Contains(a.Host.Network().Peers(), b.Host.ID()) || len(findIDs(t, a, caps.Requirements{})) >= 2
	},
		20*time.Second, 100*time.Millisecond)
	// Make sure a knows b directly, then stop a (saving its peers) and the
	// bootstrap node.
	require.NoError(t, a.Host.Connect(context.Background(), peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}))
	cfgA := a.Config()
	require.NoError(t, a.Close())
	require.NoError(t, boot.Close())

	// a restarts with the same data dir; its bootstrap node is gone.
	a2 := startNode(t, cfgA)
	require.Equal(t, a.Host.ID(), a2.Host.ID(), "same identity after restart")
	select {
	case <-a2.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("restarted node did not rejoin")
	}
	assert.Contains(t, a2.Host.Network().Peers(), b.Host.ID(), "rejoined through a saved peer")
	require.Eventually(t, func() bool { return slices.Contains(findIDs(t, a2, caps.Requirements{}), b.Host.ID()) },
		20*time.Second, 200*time.Millisecond, "and finds it through the DHT")
}

func TestDHT3_NodeWithoutReachableBootstrapKeepsRetrying(t *testing.T) {
	// The bootstrap node's identity and port exist before it does.
	bootDir := filepath.Join(t.TempDir(), "boot")
	bootID, err := identity.LoadOrCreate(bootDir)
	require.NoError(t, err)
	port := freePort(t)
	c := testConfig(t)
	c.Bootstrap = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, bootID.ID)}
	n := startNode(t, c)
	select {
	case <-n.Ready():
		t.Fatal("ready without any peer")
	case <-time.After(time.Second):
	}
	// The bootstrap node comes up later; the retry loop finds it.
	bc := testConfig(t)
	bc.DataDir = bootDir
	bc.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	startNode(t, bc)
	select {
	case <-n.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("node did not join once its bootstrap peer appeared")
	}
	assert.Contains(t, n.Host.Network().Peers(), bootID.ID)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func loopJob(t *testing.T) client.Job {
	return client.Job{Module: testwasm.Bytes(t, testwasm.Loop), TimeoutSeconds: 3, MemoryMB: 16, Attempts: 1}
}

func clientOptsFor(n *node.Node) client.Options {
	return client.Options{Candidates: []peer.AddrInfo{{ID: n.Host.ID(), Addrs: n.Host.Addrs()}}}
}

func TestBadConfigIsRefused(t *testing.T) {
	c := testConfig(t)
	c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4747"}
	_, err := node.New(context.Background(), node.Options{Config: c})
	require.ErrorContains(t, err, "/p2p/")

	busy := startNode(t, testConfig(t))
	c = testConfig(t)
	c.Listen = []string{busy.Host.Addrs()[0].String()}
	_, err = node.New(context.Background(), node.Options{Config: c})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen", fmt.Sprintf("a busy port is named: %v", err))
}

package node_test

import (
	"context"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/discovery"
)

// benchNetwork is a 20-node loopback network and a client that has
// joined it and can already find every node.
func benchNetwork(b *testing.B) (*node.Node, []*node.Node, *node.Node) {
	boot, nodes := startNetwork(b, 19, nil)
	cc := testConfig(b)
	cc.DHT.ClientMode = true
	cc.Bootstrap = []string{bootstrapAddr(boot)}
	client := startNode(b, cc)
	all := append([]*node.Node{boot}, nodes...)
	deadline := time.Now().Add(2 * time.Minute)
	for !sameSet(findIDs(b, client, caps.Requirements{}), idsOf(all...)) {
		if time.Now().After(deadline) {
			b.Fatal("network did not converge")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return boot, nodes, client
}

// BenchmarkFind20Nodes: one Find for a capable node (memory ≥ 128 MB) by
// a client of a converged 20-node loopback network that has no records
// cached (discovery.Find, as a fresh client's first Find); reports the
// median and p90.
func BenchmarkFind20Nodes(b *testing.B) {
	_, _, client := benchNetwork(b)
	benchFind(b, func(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
		return discovery.Find(ctx, client.Host, client.DHT, req, limit)
	})
}

// BenchmarkFind20NodesCached: the same Find through the node's caching
// Finder, as a client's later jobs see it.
func BenchmarkFind20NodesCached(b *testing.B) {
	_, _, client := benchNetwork(b)
	benchFind(b, client.Find)
}

func benchFind(b *testing.B, find func(context.Context, caps.Requirements, int) ([]caps.Found, error)) {
	req := caps.Requirements{MinMemoryMB: 128}
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		found, err := find(ctx, req, 3)
		times = append(times, time.Since(start))
		cancel()
		if err != nil || len(found) == 0 {
			b.Fatalf("find: %v (%d found)", err, len(found))
		}
	}
	reportMedian(b, times)
}

// BenchmarkTimeToDiscoverable: from starting a node to a client of a
// 20-node network finding it.
func BenchmarkTimeToDiscoverable(b *testing.B) {
	boot, _, client := benchNetwork(b)
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		c := testConfig(b)
		c.Bootstrap = []string{bootstrapAddr(boot)}
		start := time.Now()
		n := startNode(b, c)
		for !slices.Contains(findIDs(b, client, caps.Requirements{}), n.Host.ID()) {
			if time.Since(start) > time.Minute {
				b.Fatal("new node never became discoverable")
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, time.Since(start))
	}
	reportMedian(b, times)
}

// BenchmarkIdleNodeMemory: heap held per idle node (after GC), 20 nodes.
func BenchmarkIdleNodeMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		_, nodes, _ := benchNetwork(b)
		time.Sleep(2 * time.Second) // idle: let start-up garbage go
		runtime.GC()
		runtime.ReadMemStats(&after)
		count := float64(len(nodes) + 2)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/count/(1<<20), "heapMB/node")
		b.ReportMetric(float64(after.Sys-before.Sys)/count/(1<<20), "sysMB/node")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/count, "goroutines/node")
		for _, n := range nodes {
			require.NoError(b, n.Close())
		}
	}
}

func reportMedian(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
}

// BenchmarkFirstJobNewNode: a client's first job to a node it has never
// met — connect, offer, send the module, compile it (cold cache), run,
// verify. The node is started outside the timed part.
func BenchmarkFirstJobNewNode(b *testing.B) {
	for _, mod := range []string{testwasm.Tiny, testwasm.Hello} {
		b.Run(mod, func(b *testing.B) {
			module := testwasm.Bytes(b, mod)
			cc := testConfig(b)
			cc.DHT.ClientMode = true
			submitter := startNode(b, cc)
			var times []time.Duration
			for b.Loop() {
				b.StopTimer()
				n := startNode(b, testConfig(b))
				opts := client.Options{Candidates: []peer.AddrInfo{{ID: n.Host.ID(), Addrs: n.Host.Addrs()}}}
				b.StartTimer()
				start := time.Now()
				res, err := submitter.Client().Run(context.Background(), client.Job{Module: module, Args: []string{"x"}, Attempts: 1}, opts)
				times = append(times, time.Since(start))
				if err != nil || res.Outcome != "exited" {
					b.Fatalf("first job: %v", err)
				}
				b.StopTimer()
				n.Close()
				b.StartTimer()
			}
			reportMedian(b, times)
		})
	}
}

package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
)

// BenchmarkClientRunTinyLoopback is one full job against the real server
// over loopback TCP, with the connection already open and the module
// already held (and compiled) by the node: offer, accepted (have_module),
// payload, run, result, receipt verification.
func BenchmarkClientRunTinyLoopback(b *testing.B) {
	node := newNode(b, nil, func(c *config.Jobs) { c.MaxPerPeer = 64 })
	c := newTestClient(b)
	ctx := context.Background()
	require.NoError(b, c.Host.Connect(ctx, node.info()))
	job := client.Job{Module: testwasm.Bytes(b, testwasm.Tiny)}
	opts := client.Options{Candidates: []peer.AddrInfo{node.info()}, Fanout: 1, AttemptTimeout: 30 * time.Second}
	_, err := c.Run(ctx, job, opts) // warm: the node stores and compiles the module
	require.NoError(b, err)

	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Run(ctx, job, opts)
		if err != nil {
			b.Fatal(err)
		}
		if string(res.Stdout) != "ok\n" {
			b.Fatalf("stdout %q", res.Stdout)
		}
	}
}

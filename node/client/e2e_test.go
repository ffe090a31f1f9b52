package client

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// realNode is a node running the real job server (node/jobs).
type realNode struct {
	srv *jobs.Server
	m   *metrics.Metrics
	id  peer.ID
	ai  peer.AddrInfo
}

func newRealNode(tb testing.TB, exec *wasm.Executor, mutate func(*config.Jobs)) *realNode {
	tb.Helper()
	cfg := config.Default().Jobs
	cfg.StepTimeout = config.Duration(time.Minute) // compiling under -race is slow
	cfg.MaxTimeoutSeconds = 10
	cfg.MaxMemoryMB = 256
	cfg.StdoutCap = 64 << 10
	cfg.StderrCap = 16 << 10
	cfg.ModuleStoreMB = 64
	if mutate != nil {
		mutate(&cfg)
	}
	id := newIdentity(tb)
	h := newHost(tb, id)
	m := metrics.New()
	srv, err := jobs.NewServer(h, exec, id, cfg, m, nil)
	require.NoError(tb, err)
	srv.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &realNode{srv: srv, m: m, id: h.ID(), ai: peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}}
}

// The whole path against the real server: the job crosses the network,
// runs there, and comes back with a receipt this client verified.
func TestEndToEndRealServer(t *testing.T) {
	exec := newExecutor(t)
	node := newRealNode(t, exec, nil)
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{node.ai}
	hello := testwasm.Bytes(t, testwasm.Hello)

	res, err := c.Run(context.Background(), Job{Module: hello, Args: []string{"plasm", "phase"}}, opts)
	require.NoError(t, err)
	assert.Equal(t, node.id, res.Node)
	assert.Equal(t, "esahp msalp\n", string(res.Stdout))
	assert.Equal(t, wire.OutcomeExited, res.Outcome)
	assert.Equal(t, node.id.String(), res.Receipt.NodePeerID)
	assert.Equal(t, c.Host.ID().String(), res.Receipt.Requester)
	assert.Equal(t, receipt.InputHash([]string{"plasm", "phase"}, nil), res.Receipt.InputHash)

	// Second run: the server has the module and it is not sent again.
	res, err = c.Run(context.Background(), Job{Module: hello, Stdin: []byte("stdin")}, opts)
	require.NoError(t, err)
	assert.Equal(t, "nidts\n", string(res.Stdout))
	assert.Equal(t, 1.0, metricValue(t, node.m.ModuleCache.WithLabelValues("hit")), "the server should have answered have_module")

	// A guest failure is a verified result too.
	res, err = c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Exit7)}, opts)
	require.NoError(t, err)
	assert.Equal(t, 7, res.ExitCode)
	assert.Equal(t, "bye", string(res.Stderr))
	assert.Zero(t, counterValue(t, c, receipt.CheckSignature))
}

// Real servers with a lying fake among them, and replicas.
func TestEndToEndReplicasWithLiar(t *testing.T) {
	exec := newExecutor(t)
	liar := newFakeNode(t, exec, liarBehaviour())
	a := newRealNode(t, exec, nil)
	b := newRealNode(t, exec, nil)
	c := newTestClient(t)
	opts := quickOpts(liar)
	opts.Candidates = append(opts.Candidates, a.ai, b.ai)
	opts.Replicas = 2
	opts.Fanout = 1

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"abc"}, Deterministic: true, Seed: 1}, opts)
	require.NoError(t, err)
	assert.Equal(t, "cba\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.ElementsMatch(t, []peer.ID{a.id, b.id}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	assert.Contains(t, res.Disagreement, shortID(liar.h.ID()))
}

// A real server that refuses the job: the client moves on to the next one,
// and the refusal is in the attempts.
func TestEndToEndServerRejects(t *testing.T) {
	exec := newExecutor(t)
	small := newRealNode(t, exec, func(c *config.Jobs) { c.MaxStdinBytes = 4 })
	free := newRealNode(t, exec, nil)
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{small.ai, free.ai}
	opts.Fanout = 1

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Hello), Stdin: []byte("0123456789")}, opts)
	require.NoError(t, err)
	assert.Equal(t, "9876543210\n", string(res.Stdout))
	assert.Equal(t, free.id, res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, small.id, res.Attempts[0].Node)
	assert.Equal(t, AttemptRejected, res.Attempts[0].Outcome)
	assert.Equal(t, wire.ReasonTooLarge, res.Attempts[0].Reason)
	assert.Contains(t, res.Attempts[0].Detail, "stdin_size 10")
}

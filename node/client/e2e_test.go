package client_test

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
)

// The whole path against the real server: the job crosses the network,
// runs there, and comes back with a receipt this client verified.
func TestEndToEndRealServer(t *testing.T) {
	node := honest(t)
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{node.info()}
	hello := testwasm.Bytes(t, testwasm.Hello)

	res, err := c.Run(context.Background(), client.Job{Module: hello, Args: []string{"plasm", "phase"}}, opts)
	require.NoError(t, err)
	assert.Equal(t, node.id(), res.Node)
	assert.Equal(t, "esahp msalp\n", string(res.Stdout))
	assert.Equal(t, phase.OutcomeExited, res.Outcome)
	assert.Equal(t, node.id().String(), res.Receipt.NodePeerID)
	assert.Equal(t, c.Host.ID().String(), res.Receipt.Requester)
	assert.Equal(t, receipt.InputHash([]string{"plasm", "phase"}, nil), res.Receipt.InputHash)

	// Second run: the server has the module and it is not sent again.
	res, err = c.Run(context.Background(), client.Job{Module: hello, Stdin: []byte("stdin")}, opts)
	require.NoError(t, err)
	assert.Equal(t, "nidts\n", string(res.Stdout))
	assert.Equal(t, 1.0, metricValue(t, node.metrics().ModuleCache.WithLabelValues("hit")), "the server should have answered have_module")

	// A guest failure is a verified result too.
	res, err = c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Exit7)}, opts)
	require.NoError(t, err)
	assert.Equal(t, 7, res.ExitCode)
	assert.Equal(t, "bye", string(res.Stderr))
	assert.Zero(t, counterValue(t, c, receipt.CheckSignature))
}

// Real servers with a lying fake among them, and replicas.
func TestEndToEndReplicasWithLiar(t *testing.T) {
	liar := newNode(t, liarHooks(t), nil)
	a := honest(t)
	b := honest(t)
	c := newTestClient(t)
	opts := quickOpts(liar)
	opts.Candidates = append(opts.Candidates, a.info(), b.info())
	opts.Fanout = 1

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"abc"}, Deterministic: true, Seed: 1, Replicas: 2}, opts)
	require.NoError(t, err)
	assert.Equal(t, "cba\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.ElementsMatch(t, []peer.ID{a.id(), b.id()}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	assert.Contains(t, res.Disagreement, phase.ShortID(liar.id().String()))
}

// A real server that refuses the job: the client moves on to the next one,
// and the refusal is in the attempts.
func TestEndToEndServerRejects(t *testing.T) {
	small := newNode(t, nil, func(c *config.Jobs) { c.MaxStdinBytes = 4 })
	free := honest(t)
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{small.info(), free.info()}
	opts.Fanout = 1

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Hello), Stdin: []byte("0123456789")}, opts)
	require.NoError(t, err)
	assert.Equal(t, "9876543210\n", string(res.Stdout))
	assert.Equal(t, free.id(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, small.id(), res.Attempts[0].Node)
	assert.Equal(t, client.AttemptRejected, res.Attempts[0].Outcome)
	assert.Equal(t, phase.ReasonTooLarge, res.Attempts[0].Reason)
	assert.Contains(t, res.Attempts[0].Detail, "stdin_size 10")
}

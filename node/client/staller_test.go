package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/scripted"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

// oldStaller accepts, takes the payload and never answers, like stalls,
// but never promises progress either, as a node from before progress
// messages would: only the hedge, not the stall timeout, can leave it.
func oldStaller(tb testing.TB) *testNode {
	h := scripted.StallAfterAccept(nil)
	h.Offer = func(_ context.Context, o *wire.Offer, d session.Decision) session.Decision {
		o.Progress = false
		return d
	}
	return newNode(tb, h, nil)
}

// Five Sybil nodes that accept every job and never answer, offered first,
// and one honest node offered last: the job still succeeds within 15 s
// (hedges after 2 s of silence, stalls detected from missing progress),
// not after five attempt timeouts; and the client's next job offers the
// honest node before every staller that cost the first job time.
func TestStallingSybilsCostSecondsNotTimeouts(t *testing.T) {
	var nodes []*testNode
	for i := range 5 {
		if i%2 == 0 {
			nodes = append(nodes, stalls(t)) // promises progress, sends none
		} else {
			nodes = append(nodes, oldStaller(t))
		}
	}
	good := honest(t)
	nodes = append(nodes, good)

	c := newTestClient(t)
	opts := quickOpts(nodes...)
	opts.Fanout = 0         // the default
	opts.AttemptTimeout = 0 // the default: the job's timeout + 30 s
	opts.Deadline = time.Minute
	job := client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), TimeoutSeconds: 10, Attempts: len(nodes)}

	start := time.Now()
	res, err := c.Run(context.Background(), job, opts)
	took := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, good.id(), res.Node)
	assert.LessOrEqual(t, took, 15*time.Second, "attempts: %v", res.Attempts)
	t.Logf("first job: %s, %d attempts", took.Round(time.Millisecond), len(res.Attempts))
	for _, a := range res.Attempts {
		t.Logf("  %s after %s", a, a.Duration.Round(time.Millisecond))
	}

	// Stallers that cost the first job time: timed out, or were outrun by
	// a hedge after saying nothing for well over the hedge delay.
	met := map[string]bool{}
	for _, a := range res.Attempts {
		if a.Node != good.id() && (a.Outcome == client.AttemptTimeout || a.Duration > client.DefaultHedgeAfter+time.Second) {
			met[a.Node.String()] = true
		}
	}
	require.NotEmpty(t, met)

	start = time.Now()
	res, err = c.Run(context.Background(), job, opts)
	require.NoError(t, err)
	assert.Equal(t, good.id(), res.Node)
	for _, a := range res.Attempts {
		assert.False(t, met[a.Node.String()], "a staller met before is ranked after the honest node: %v", res.Attempts)
	}
	assert.LessOrEqual(t, time.Since(start), 15*time.Second, "attempts: %v", res.Attempts)
}

package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/scripted"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

func TestRCPT10_RunHonestNode(t *testing.T) {
	node := honest(t)
	c := newTestClient(t)
	module := testwasm.Bytes(t, testwasm.Hello)

	res, err := c.Run(context.Background(), client.Job{Module: module, Args: []string{"hello", "world"}}, quickOpts(node))
	require.NoError(t, err)

	assert.Equal(t, node.id(), res.Node)
	assert.Equal(t, phase.OutcomeExited, res.Outcome)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "dlrow olleh\n", string(res.Stdout))
	require.Len(t, res.Attempts, 1)
	assert.Equal(t, client.AttemptOK, res.Attempts[0].Outcome)
	assert.Equal(t, node.id(), res.Attempts[0].Node)

	// The receipt is bound to this client, this module, this input and
	// these bytes, and verifies again from its JSON alone.
	rc, err := receipt.Parse(res.ReceiptJSON)
	require.NoError(t, err)
	require.NoError(t, receipt.Verify(rc, receipt.Expect{
		PeerID:     node.id(),
		Requester:  c.Host.ID().String(),
		ModuleHash: phase.HashBytes(module),
		InputHash:  receipt.InputHash([]string{"hello", "world"}, nil),
		Stdout:     res.Stdout, CheckStdout: true,
	}))
	assert.Equal(t, rc, res.Receipt)
	assert.Nil(t, res.Replicas)
	assert.Empty(t, res.Disagreement)
}

// EXEC-7: the node clamps requests to its own limits and the receipt says
// what it applied.
func TestEXEC7_RunStdinAndNodeClamping(t *testing.T) {
	node := honest(t)
	c := newTestClient(t)
	job := client.Job{
		Module: testwasm.Bytes(t, testwasm.Hello), Stdin: []byte("abc"),
		MemoryMB: 1024, TimeoutSeconds: 3600, // over the node's 256 MB and 10 s
	}
	res, err := c.Run(context.Background(), job, quickOpts(node))
	require.NoError(t, err)
	assert.Equal(t, "cba\n", string(res.Stdout))
	assert.Equal(t, 256, res.Receipt.Limits.MemoryMB)
	assert.Equal(t, int64(10000), res.Receipt.Limits.TimeoutMS)
}

// Guest failures are results: a verified receipt for them ends the job, and
// no other node is tried.
func TestRunOutcomesAreResults(t *testing.T) {
	tests := []struct {
		name     string
		module   []byte
		timeout  int
		memory   int
		outcome  string
		exitCode int
		stderr   string
	}{
		{name: "exit7", module: testwasm.Bytes(t, testwasm.Exit7), outcome: phase.OutcomeExited, exitCode: 7, stderr: "bye"},
		{name: "trap", module: testwasm.Bytes(t, testwasm.Trap), outcome: phase.OutcomeTrapped, exitCode: -1},
		{name: "loop", module: testwasm.Bytes(t, testwasm.Loop), timeout: 1, outcome: phase.OutcomeTimeout, exitCode: -1},
		{name: "grow", module: testwasm.Bytes(t, testwasm.Grow), memory: 2, outcome: phase.OutcomeMemoryLimit, exitCode: -1},
		{name: "garbage", module: []byte("\x00asm but not really"), outcome: phase.OutcomeInvalidModule, exitCode: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := honest(t)
			second := honest(t)
			c := newTestClient(t)
			opts := quickOpts(first, second)
			opts.Fanout = 1
			res, err := c.Run(context.Background(), client.Job{Module: tt.module, TimeoutSeconds: tt.timeout, MemoryMB: tt.memory}, opts)
			require.NoError(t, err)
			assert.Equal(t, tt.outcome, res.Outcome)
			assert.Equal(t, tt.exitCode, res.ExitCode)
			assert.Contains(t, string(res.Stderr), tt.stderr)
			assert.Equal(t, first.id(), res.Node)
			assert.Len(t, res.Attempts, 1)
			assert.Zero(t, second.offers.Load(), "a guest failure must not be retried elsewhere")
		})
	}
}

// Misbehaving nodes: each one's receipt fails a named check, the attempt is
// recorded as bad_receipt (or protocol), the metric counts it, and the job
// finishes on the honest node.
func TestRCPT10_RunRejectsBadReceipts(t *testing.T) {
	tests := []struct {
		name    string
		behave  func(testing.TB) *jobs.Hooks
		outcome string
		reason  string
	}{
		{
			name: "forged: claims the node's key, signed by another",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				signWith(tb, r.Receipt, newIdentity(tb).Ed25519())
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckSignature,
		},
		{
			name:    "altered after signing",
			behave:  lie(func(tb testing.TB, r *jobs.Ran) { r.Receipt.WallTimeMS += 1000 }, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckSignature,
		},
		{
			name: "someone else's receipt, validly signed by another node",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				require.NoError(tb, scripted.ResignAs(r.Receipt, newIdentity(tb)))
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckSigner,
		},
		{
			name: "replayed receipt from an earlier job",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				r.Receipt.JobID = "earlier-job"
				r.Receipt.Nonce = strings.Repeat("ab", 32)
				resign(tb, r)
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckJobID,
		},
		{
			name: "old nonce under the current job id",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				r.Receipt.Nonce = strings.Repeat("cd", 32)
				resign(tb, r)
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckNonce,
		},
		{
			name: "receipt for another requester",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				r.Receipt.Requester = r.Receipt.NodePeerID
				resign(tb, r)
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckRequester,
		},
		{
			name: "receipt for other input",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				r.Receipt.InputHash = receipt.InputHash([]string{"other"}, nil)
				resign(tb, r)
			}, nil),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckInputHash,
		},
		{
			name:    "wrong stdout bytes",
			behave:  lie(nil, func(rep *session.Reply) { rep.Stdout = []byte("not what ran\n") }),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckStdoutHash,
		},
		{
			name:    "wrong stderr bytes",
			behave:  lie(nil, func(rep *session.Reply) { rep.Stderr = []byte("noise") }),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckStderrHash,
		},
		{
			name:    "result outcome differs from the receipt",
			behave:  lie(nil, func(rep *session.Reply) { rep.Result.Outcome = phase.OutcomeTrapped }),
			outcome: client.AttemptBadReceipt, reason: session.CheckOutcome,
		},
		{
			name:    "result exit code differs from the receipt",
			behave:  lie(nil, func(rep *session.Reply) { rep.Result.ExitCode = 3 }),
			outcome: client.AttemptBadReceipt, reason: session.CheckExitCode,
		},
		{
			name:    "result truncation differs from the receipt",
			behave:  lie(nil, func(rep *session.Reply) { rep.Result.StdoutTruncated = true }),
			outcome: client.AttemptBadReceipt, reason: session.CheckTruncated,
		},
		{
			name: "receipt limits differ from the accepted ones",
			behave: lie(func(tb testing.TB, r *jobs.Ran) {
				r.Receipt.Limits.MemoryMB = 1
				resign(tb, r)
			}, nil),
			outcome: client.AttemptBadReceipt, reason: session.CheckLimits,
		},
		{
			name:    "malformed receipt",
			behave:  lie(nil, func(rep *session.Reply) { rep.Result.Receipt = json.RawMessage(`{"version":"1"}`) }),
			outcome: client.AttemptBadReceipt, reason: receipt.CheckFormat,
		},
		{
			name: "accepted limits above the manifest",
			behave: func(testing.TB) *jobs.Hooks {
				return &jobs.Hooks{Offer: func(_ context.Context, o *wire.Offer, d session.Decision) session.Decision {
					acc := *d.Accept
					acc.Limits.MemoryMB = o.Manifest.MemoryMB + 1
					d.Accept = &acc
					return d
				}}
			},
			outcome: client.AttemptProtocol, reason: string(session.StepAnswer),
		},
		{
			name:    "node error internal",
			behave:  func(testing.TB) *jobs.Hooks { return scripted.ErrorAtOffer(phase.CodeInternal, "scripted node error") },
			outcome: client.AttemptError, reason: phase.CodeInternal,
		},
		{
			name:    "result outcome hash_mismatch",
			behave:  lie(nil, func(rep *session.Reply) { rep.Result.Outcome = phase.OutcomeHashMismatch }),
			outcome: client.AttemptError, reason: phase.CodeHashMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			liar := newNode(t, tt.behave(t), nil)
			honest := honest(t)
			c := newTestClient(t)
			opts := quickOpts(liar, honest)
			opts.Fanout = 1 // the liar is offered first, alone

			res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
			require.NoError(t, err)
			assert.Equal(t, honest.id(), res.Node)
			assert.Equal(t, "ok\n", string(res.Stdout))
			require.Len(t, res.Attempts, 2)
			a := res.Attempts[0]
			assert.Equal(t, liar.id(), a.Node)
			assert.Equal(t, tt.outcome, a.Outcome, "detail: %s", a.Detail)
			assert.Equal(t, tt.reason, a.Reason, "detail: %s", a.Detail)
			assert.True(t, a.Retryable)
			assert.Equal(t, client.AttemptOK, res.Attempts[1].Outcome)
			if tt.outcome == client.AttemptBadReceipt {
				assert.Equal(t, 1.0, counterValue(t, c, tt.reason))
			}
		})
	}
}

// A node that accepts and then never answers costs one attempt timeout.
func TestJOB14_RunAcceptThenStall(t *testing.T) {
	staller := stalls(t)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(staller, honest)
	opts.Fanout = 1
	opts.AttemptTimeout = 500 * time.Millisecond

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.id(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, client.AttemptTimeout, res.Attempts[0].Outcome)
	assert.Equal(t, staller.id(), res.Attempts[0].Node)
}

// A node killed while the job runs: the stream breaks, and the job finishes
// on another node long before the attempt timeout.
func TestRunNodeKilledMidJob(t *testing.T) {
	victim := stalls(t)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(victim, honest)
	opts.Fanout = 1
	opts.AttemptTimeout = time.Minute // so only the kill can end the first attempt
	opts.Deadline = 2 * time.Minute

	go func() {
		<-victim.held
		_ = victim.n.Host.Close() // a crash: the connections drop, nothing is said
	}()
	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.id(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, victim.id(), res.Attempts[0].Node)
	assert.Equal(t, client.AttemptStreamError, res.Attempts[0].Outcome, "detail: %s", res.Attempts[0].Detail)
	assert.Less(t, res.Attempts[0].Duration, opts.AttemptTimeout)
}

// An unresponsive node must not hold the job up: with fanout, another node
// accepts first, so the job completes although the accept timeout is longer
// than the whole deadline.
func TestRunUnresponsiveNodeFanout(t *testing.T) {
	silent := newNode(t, scripted.StallOffer(), nil)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(silent, honest)
	opts.AcceptTimeout = time.Minute
	opts.Deadline = 20 * time.Second

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.id(), res.Node)
	require.Len(t, res.Attempts, 1, "the withdrawn offer is not an attempt")
}

// Without fanout, an unresponsive node costs exactly the accept timeout.
func TestRunUnresponsiveNodeAcceptTimeout(t *testing.T) {
	silent := newNode(t, scripted.StallOffer(), nil)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(silent, honest)
	opts.Fanout = 1
	opts.AcceptTimeout = 300 * time.Millisecond

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.id(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, client.AttemptTimeout, res.Attempts[0].Outcome)
	assert.Equal(t, string(session.StepAnswer), res.Attempts[0].Reason)
	assert.Contains(t, res.Attempts[0].String(), "no answer to the offer within 300ms")
}

// Every node rejecting gives one error that names each node and its reason.
func TestRunEveryNodeRejects(t *testing.T) {
	reasons := []string{phase.ReasonQueueFull, phase.ReasonInsufficientResources, phase.ReasonTooLarge, phase.ReasonUnauthorized}
	var nodes []*testNode
	for _, r := range reasons {
		nodes = append(nodes, newNode(t, scripted.Reject(r, "scripted node says "+r), nil))
	}
	c := newTestClient(t)
	opts := quickOpts(nodes...)
	// More attempts than there are nodes: each is still tried once.
	_, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), Attempts: 10}, opts)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, client.ErrExhausted)
	require.Len(t, e.Attempts, len(nodes))
	got := map[peer.ID]string{}
	for _, a := range e.Attempts {
		assert.Equal(t, client.AttemptRejected, a.Outcome)
		assert.True(t, a.Retryable)
		got[a.Node] = a.Reason
	}
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "no node could run the job"), msg)
	for i, n := range nodes {
		assert.Equal(t, reasons[i], got[n.id()])
		assert.Equal(t, int32(1), n.offers.Load(), "never the same node twice")
		assert.Contains(t, msg, phase.ShortID(n.id().String())+": rejected "+reasons[i]+" (scripted node says "+reasons[i]+")")
	}
	assert.Len(t, strings.Split(msg, "\n"), 1+len(nodes), "one line per node tried:\n%s", msg)
}

// invalid_request says the job itself is bad: it is not retried.
func TestRunNotRetried(t *testing.T) {
	tests := []struct {
		name   string
		behave func(testing.TB) *jobs.Hooks
	}{
		{"rejected invalid_request", func(testing.TB) *jobs.Hooks { return scripted.Reject(phase.ReasonInvalidRequest, "bad job") }},
		{"error invalid_request", func(testing.TB) *jobs.Hooks { return scripted.ErrorAtOffer(phase.CodeInvalidRequest, "bad job") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newNode(t, tt.behave(t), nil)
			honest := honest(t)
			c := newTestClient(t)
			opts := quickOpts(bad, honest)
			opts.Fanout = 1
			_, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
			var e *client.Error
			require.ErrorAs(t, err, &e)
			assert.ErrorIs(t, err, client.ErrJobRefused)
			require.Len(t, e.Attempts, 1)
			assert.False(t, e.Attempts[0].Retryable)
			assert.Zero(t, honest.offers.Load())
		})
	}
}

// The overall deadline ends a Run whose every node stalls.
func TestRunDeadline(t *testing.T) {
	a := stalls(t)
	b := newNode(t, scripted.StallOffer(), nil)
	c := newTestClient(t)
	opts := quickOpts(a, b)
	opts.AttemptTimeout = time.Minute
	opts.AcceptTimeout = time.Minute
	opts.Deadline = 500 * time.Millisecond

	_, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "overall deadline of 500ms passed")
	require.Len(t, e.Attempts, 1, "the node that accepted was tried; the silent one was only asked")
	assert.Equal(t, a.id(), e.Attempts[0].Node)
	assert.Equal(t, client.AttemptTimeout, e.Attempts[0].Outcome)
}

// The caller's context ends a Run too.
func TestRunCallerCancel(t *testing.T) {
	a := stalls(t)
	c := newTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-a.held
		cancel()
	}()
	_, err := c.Run(ctx, client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, quickOpts(a))
	assert.ErrorIs(t, err, context.Canceled)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Len(t, e.Attempts, 1)
	assert.Equal(t, client.AttemptCancelled, e.Attempts[0].Outcome)
}

// A node that failed this client is offered last in later runs.
func TestRunDemotesFailedNodes(t *testing.T) {
	liar := newNode(t, lie(nil, func(rep *session.Reply) { rep.Stdout = []byte("lie") })(t), nil)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(liar, honest)
	opts.Fanout = 1
	job := client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}

	res, err := c.Run(context.Background(), job, opts)
	require.NoError(t, err)
	require.Len(t, res.Attempts, 2)

	res, err = c.Run(context.Background(), job, opts)
	require.NoError(t, err)
	require.Len(t, res.Attempts, 1, "the liar should have been demoted below the honest node")
	assert.Equal(t, honest.id(), res.Node)
	assert.Equal(t, int32(1), liar.offers.Load())
}

// A node that already holds the module is not sent it again.
func TestJOB16_RunHaveModule(t *testing.T) {
	node := honest(t)
	c := newTestClient(t)
	job := client.Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"ab"}}
	for i := range 3 {
		res, err := c.Run(context.Background(), job, quickOpts(node))
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, "ba\n", string(res.Stdout))
	}
	assert.Equal(t, int32(1), node.modules.Load(), "module frame sent once")
	assert.Equal(t, int32(3), node.offers.Load())
}

func TestRunReplicasAgree(t *testing.T) {
	a := honest(t)
	b := honest(t)
	c := newTestClient(t)
	opts := quickOpts(a, b)
	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"xyz"}, Deterministic: true, Seed: 7, Replicas: 2}, opts)
	require.NoError(t, err)
	assert.Equal(t, "zyx\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.NotEqual(t, res.Replicas[0].Node, res.Replicas[1].Node)
	assert.ElementsMatch(t, []peer.ID{a.id(), b.id()}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	for _, r := range res.Replicas {
		assert.Equal(t, phase.HashBytes([]byte("zyx\n")), r.StdoutHash)
		assert.True(t, r.Receipt.Deterministic)
	}
	assert.Empty(t, res.Disagreement)
}

// liarHooks run the job, change the output and sign the changed output
// honestly: the receipt verifies, only comparison can catch it.
func liarHooks(tb testing.TB) *jobs.Hooks {
	return lie(func(tb testing.TB, r *jobs.Ran) {
		require.NoError(tb, r.Restate([]byte("a confident lie\n"), r.Result.Stderr))
	}, nil)(tb)
}

func TestRunReplicasDisagreement(t *testing.T) {
	liar := newNode(t, liarHooks(t), nil)
	honest := honest(t)
	c := newTestClient(t)
	opts := quickOpts(liar, honest)

	_, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), Deterministic: true, Replicas: 2}, opts)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, client.ErrDisagreement)
	assert.Contains(t, e.Disagreement, phase.ShortID(liar.id().String())+" said outcome=exited exit_code=0 stdout="+phase.HashBytes([]byte("a confident lie\n"))[:19])
	assert.Contains(t, e.Disagreement, phase.ShortID(honest.id().String())+" said outcome=exited exit_code=0 stdout="+phase.HashBytes([]byte("ok\n"))[:19])
	assert.Contains(t, err.Error(), e.Disagreement)
	require.Len(t, e.Attempts, 2)
	for _, a := range e.Attempts {
		assert.Equal(t, client.AttemptDisagreed, a.Outcome)
	}
}

// With a third honest node, the majority path finds two agreeing results.
func TestRunReplicasMajority(t *testing.T) {
	liar := newNode(t, liarHooks(t), nil)
	h1 := honest(t)
	h2 := honest(t)
	c := newTestClient(t)
	opts := quickOpts(liar, h1, h2)
	opts.Fanout = 1 // the two first replicas are the liar and h1

	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), Deterministic: true, Replicas: 2}, opts)
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.ElementsMatch(t, []peer.ID{h1.id(), h2.id()}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	assert.Contains(t, res.Disagreement, phase.ShortID(liar.id().String()))
	require.Len(t, res.Attempts, 3)
	for _, a := range res.Attempts {
		if a.Node == liar.id() {
			assert.Equal(t, client.AttemptDisagreed, a.Outcome)
		} else {
			assert.Equal(t, client.AttemptOK, a.Outcome)
		}
	}
}

// Replicas with more replicas than nodes able to run: a clear error.
func TestRunReplicasTooFewNodes(t *testing.T) {
	a := honest(t)
	b := newNode(t, scripted.Reject(phase.ReasonQueueFull, "busy"), nil)
	c := newTestClient(t)
	opts := quickOpts(a, b)
	_, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), Replicas: 2}, opts)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, client.ErrExhausted)
	assert.Contains(t, err.Error(), "only 1 of 2 replicas")
	assert.Len(t, e.Attempts, 2)
}

func TestRunFinder(t *testing.T) {
	node := honest(t)
	c := newTestClient(t)
	var asked caps.Requirements
	c.Find = func(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
		asked = req
		assert.Positive(t, limit)
		return []caps.Found{{Peer: node.info()}}, nil
	}
	opts := quickOpts()
	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny), MemoryMB: 64, Arch: "x86_64"}, opts)
	require.NoError(t, err)
	assert.Equal(t, node.id(), res.Node)
	assert.Equal(t, 64, asked.MinMemoryMB)
	assert.Equal(t, "x86_64", asked.Arch)
	assert.Equal(t, phase.ABIWASIP1, asked.ABI)

	c.Find = func(context.Context, caps.Requirements, int) ([]caps.Found, error) {
		return nil, fmt.Errorf("find: %w: no providers", caps.ErrNoMatch)
	}
	_, err = c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	assert.ErrorIs(t, err, client.ErrNoCandidates)
	assert.ErrorIs(t, err, caps.ErrNoMatch)

	// A Finder that ignores its context cannot hold Run past the deadline.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.Find = func(context.Context, caps.Requirements, int) ([]caps.Found, error) {
		<-release
		return nil, nil
	}
	opts.Deadline = 200 * time.Millisecond
	_, err = c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "overall deadline of 200ms passed")
}

func TestRunNoCandidates(t *testing.T) {
	c := newTestClient(t)
	other := newHost(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	tests := []struct {
		name string
		opts client.Options
		want string
	}{
		{"none and no finder", client.Options{}, "no Candidates given and the client has no Finder"},
		{"only self", client.Options{Candidates: []peer.AddrInfo{{ID: c.Host.ID()}}}, "all 1 candidates are excluded or this host itself"},
		{"only excluded", client.Options{Candidates: []peer.AddrInfo{{ID: other.ID()}}, Exclude: []peer.ID{other.ID()}}, "all 1 candidates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Run(context.Background(), client.Job{Module: tiny}, tt.opts)
			assert.ErrorIs(t, err, client.ErrNoCandidates)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "(no node was tried)")
		})
	}
}

func TestRunUnreachableNode(t *testing.T) {
	live := honest(t)
	gone := honest(t)
	info := gone.info()
	require.NoError(t, gone.n.Close())
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{info, live.info()}
	opts.Fanout = 1
	opts.DialTimeout = 2 * time.Second
	res, err := c.Run(context.Background(), client.Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, live.id(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, client.AttemptUnreachable, res.Attempts[0].Outcome)
}

// The job is checked before anything is sent, with the wording every front
// end shares (phase.Job.Validate).
func TestMAN1_RunInvalidJob(t *testing.T) {
	c := newTestClient(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	opts := client.Options{Candidates: []peer.AddrInfo{{ID: c.Host.ID()}}}
	tests := []struct {
		name string
		job  client.Job
		opts client.Options
		want string
	}{
		{"empty module", client.Job{}, opts, "module: missing or empty"},
		{"NUL in arg", client.Job{Module: tiny, Args: []string{"a", "b\x00c"}}, opts, "args[1]: contains a NUL character"},
		{"too many args", client.Job{Module: tiny, Args: make([]string, phase.MaxArgs+1)}, opts, "args: 1025 entries"},
		{"bad arch", client.Job{Module: tiny, Arch: "vax"}, opts, "unknown architecture"},
		{"require arch without arch", client.Job{Module: tiny, RequireArch: true}, opts, "require_arch: is true but arch is absent"},
		{"seed without deterministic", client.Job{Module: tiny, Seed: 3}, opts, "seed: is set but deterministic is false"},
		{"memory over the protocol's range", client.Job{Module: tiny, MemoryMB: 1 << 20}, opts, "memory_mb: 1048576 out of range"},
		{"attempts below replicas", client.Job{Module: tiny, Attempts: 1, Replicas: 2}, opts, "attempts: 1 is fewer than replicas 2"},
		{"negative fanout", client.Job{Module: tiny}, client.Options{Fanout: -1}, "option Fanout is negative"},
		{"negative deadline", client.Job{Module: tiny}, client.Options{Deadline: -time.Second}, "option Deadline is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Run(context.Background(), tt.job, tt.opts)
			assert.ErrorIs(t, err, client.ErrInvalidJob)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := (&client.Client{}).Run(context.Background(), client.Job{Module: tiny}, opts)
	assert.ErrorIs(t, err, client.ErrInvalidJob)
	assert.Contains(t, err.Error(), "no libp2p host")
}

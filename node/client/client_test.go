package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

func TestRunHonestNode(t *testing.T) {
	exec := newExecutor(t)
	node := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	module := testwasm.Bytes(t, testwasm.Hello)

	res, err := c.Run(context.Background(), Job{Module: module, Args: []string{"hello", "world"}}, quickOpts(node))
	require.NoError(t, err)

	assert.Equal(t, node.h.ID(), res.Node)
	assert.Equal(t, wire.OutcomeExited, res.Outcome)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "dlrow olleh\n", string(res.Stdout))
	require.Len(t, res.Attempts, 1)
	assert.Equal(t, AttemptOK, res.Attempts[0].Outcome)
	assert.Equal(t, node.h.ID(), res.Attempts[0].Node)

	// The receipt is bound to this client, this module, this input and
	// these bytes, and verifies again from its JSON alone.
	rc, err := receipt.Parse(res.ReceiptJSON)
	require.NoError(t, err)
	require.NoError(t, receipt.Verify(rc, receipt.Expect{
		PeerID:     node.h.ID(),
		Requester:  c.Host.ID().String(),
		ModuleHash: receipt.HashBytes(module),
		InputHash:  receipt.InputHash([]string{"hello", "world"}, nil),
		Stdout:     res.Stdout, CheckStdout: true,
	}))
	assert.Equal(t, rc, res.Receipt)
	assert.Nil(t, res.Replicas)
	assert.Empty(t, res.Disagreement)
}

func TestRunStdinAndManifestClamping(t *testing.T) {
	exec := newExecutor(t)
	node := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	job := Job{
		Module: testwasm.Bytes(t, testwasm.Hello), Stdin: []byte("abc"),
		MemoryMB: 1 << 20, TimeoutSeconds: -5, CPUCores: 1000, // clamped into the manifest ranges
	}
	res, err := c.Run(context.Background(), job, quickOpts(node))
	require.NoError(t, err)
	assert.Equal(t, "cba\n", string(res.Stdout))
	// The fake node clamps memory to 256 MB and the timeout to what was asked
	// (1 s after clamping -5 up to the minimum).
	assert.Equal(t, 256, res.Receipt.Limits.MemoryMB)
	assert.Equal(t, int64(1000), res.Receipt.Limits.TimeoutMS)
}

// Guest failures are results: a verified receipt for them ends the job, and
// no other node is tried.
func TestRunOutcomesAreResults(t *testing.T) {
	exec := newExecutor(t)
	tests := []struct {
		name     string
		module   []byte
		timeout  int
		memory   int
		outcome  string
		exitCode int
		stderr   string
	}{
		{name: "exit7", module: testwasm.Bytes(t, testwasm.Exit7), outcome: wire.OutcomeExited, exitCode: 7, stderr: "bye"},
		{name: "trap", module: testwasm.Bytes(t, testwasm.Trap), outcome: wire.OutcomeTrapped, exitCode: -1},
		{name: "loop", module: testwasm.Bytes(t, testwasm.Loop), timeout: 1, outcome: wire.OutcomeTimeout, exitCode: -1},
		{name: "grow", module: testwasm.Bytes(t, testwasm.Grow), memory: 2, outcome: wire.OutcomeMemoryLimit, exitCode: -1},
		{name: "garbage", module: []byte("\x00asm but not really"), outcome: wire.OutcomeInvalidModule, exitCode: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := newFakeNode(t, exec, behaviour{})
			second := newFakeNode(t, exec, behaviour{})
			c := newTestClient(t)
			opts := quickOpts(first, second)
			opts.Fanout = 1
			res, err := c.Run(context.Background(), Job{Module: tt.module, TimeoutSeconds: tt.timeout, MemoryMB: tt.memory}, opts)
			require.NoError(t, err)
			assert.Equal(t, tt.outcome, res.Outcome)
			assert.Equal(t, tt.exitCode, res.ExitCode)
			assert.Contains(t, string(res.Stderr), tt.stderr)
			assert.Equal(t, first.h.ID(), res.Node)
			assert.Len(t, res.Attempts, 1)
			assert.Zero(t, second.offers.Load(), "a guest failure must not be retried elsewhere")
		})
	}
}

// Misbehaving nodes: each one's receipt fails a named check, the attempt is
// recorded as bad_receipt (or protocol), the metric counts it, and the job
// finishes on the honest node.
func TestRunRejectsBadReceipts(t *testing.T) {
	exec := newExecutor(t)
	tests := []struct {
		name    string
		behave  behaviour
		outcome string
		reason  string
	}{
		{
			name: "forged: claims the node's key, signed by another",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				signWith(tb, e.receipt, newIdentity(tb).Ed25519())
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckSignature,
		},
		{
			name: "altered after signing",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.receipt.WallTimeMS += 1000
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckSignature,
		},
		{
			name: "someone else's receipt, validly signed by another node",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				other := newIdentity(tb)
				e.receipt.NodePubkey = other.PublicKeyHex()
				e.receipt.NodePeerID = other.ID.String()
				e.receipt.Signature = ""
				require.NoError(tb, e.receipt.Sign(other.Ed25519()))
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckSigner,
		},
		{
			name: "replayed receipt from an earlier job",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				old := *e.receipt
				old.JobID = "earlier-job"
				old.Nonce = strings.Repeat("ab", 32)
				old.Signature = ""
				require.NoError(tb, old.Sign(e.node.id.Ed25519()))
				e.receipt = &old
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckJobID,
		},
		{
			name: "old nonce under the current job id",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.receipt.Nonce = strings.Repeat("cd", 32)
				e.resign(tb)
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckNonce,
		},
		{
			name: "receipt for another requester",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.receipt.Requester = e.node.id.ID.String()
				e.resign(tb)
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckRequester,
		},
		{
			name: "receipt for other input",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.receipt.InputHash = receipt.InputHash([]string{"other"}, nil)
				e.resign(tb)
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckInputHash,
		},
		{
			name: "wrong stdout bytes",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.stdout = []byte("not what ran\n")
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckStdoutHash,
		},
		{
			name: "wrong stderr bytes",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.stderr = []byte("noise")
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckStderrHash,
		},
		{
			name: "result outcome differs from the receipt",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.result.Outcome = wire.OutcomeTrapped
			}},
			outcome: AttemptBadReceipt, reason: CheckOutcome,
		},
		{
			name: "result exit code differs from the receipt",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.result.ExitCode = 3
			}},
			outcome: AttemptBadReceipt, reason: CheckExitCode,
		},
		{
			name: "result truncation differs from the receipt",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.result.StdoutTruncated = true
			}},
			outcome: AttemptBadReceipt, reason: CheckTruncated,
		},
		{
			name: "receipt limits differ from the accepted ones",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.receipt.Limits.MemoryMB = 1
				e.resign(tb)
			}},
			outcome: AttemptBadReceipt, reason: CheckLimits,
		},
		{
			name: "malformed receipt",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.rawReceipt = json.RawMessage(`{"version":"1"}`)
			}},
			outcome: AttemptBadReceipt, reason: receipt.CheckFormat,
		},
		{
			name:    "accepted limits above the manifest",
			behave:  behaviour{raiseLimits: true},
			outcome: AttemptProtocol, reason: stepAccept,
		},
		{
			name:    "node error internal",
			behave:  behaviour{errorCode: wire.CodeInternal},
			outcome: AttemptError, reason: wire.CodeInternal,
		},
		{
			name: "result outcome hash_mismatch",
			behave: behaviour{tamper: func(tb testing.TB, e *exchange) {
				e.result.Outcome = wire.OutcomeHashMismatch
			}},
			outcome: AttemptError, reason: wire.CodeHashMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			liar := newFakeNode(t, exec, tt.behave)
			honest := newFakeNode(t, exec, behaviour{})
			c := newTestClient(t)
			opts := quickOpts(liar, honest)
			opts.Fanout = 1 // the liar is offered first, alone

			res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
			require.NoError(t, err)
			assert.Equal(t, honest.h.ID(), res.Node)
			assert.Equal(t, "ok\n", string(res.Stdout))
			require.Len(t, res.Attempts, 2)
			a := res.Attempts[0]
			assert.Equal(t, liar.h.ID(), a.Node)
			assert.Equal(t, tt.outcome, a.Outcome, "detail: %s", a.Detail)
			assert.Equal(t, tt.reason, a.Reason, "detail: %s", a.Detail)
			assert.True(t, a.Retryable)
			assert.Equal(t, AttemptOK, res.Attempts[1].Outcome)
			if tt.outcome == AttemptBadReceipt {
				assert.Equal(t, 1.0, counterValue(t, c, tt.reason))
			}
		})
	}
}

// A node that accepts and then never answers costs one attempt timeout.
func TestRunAcceptThenStall(t *testing.T) {
	exec := newExecutor(t)
	staller := newFakeNode(t, exec, behaviour{hold: true})
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(staller, honest)
	opts.Fanout = 1
	opts.AttemptTimeout = 500 * time.Millisecond

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.h.ID(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, AttemptTimeout, res.Attempts[0].Outcome)
	assert.Equal(t, staller.h.ID(), res.Attempts[0].Node)
}

// A node killed while the job runs: the stream breaks, and the job finishes
// on another node long before the attempt timeout.
func TestRunNodeKilledMidJob(t *testing.T) {
	exec := newExecutor(t)
	victim := newFakeNode(t, exec, behaviour{hold: true})
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(victim, honest)
	opts.Fanout = 1
	opts.AttemptTimeout = time.Minute // so only the kill can end the first attempt
	opts.Deadline = 2 * time.Minute

	go func() {
		<-victim.running
		_ = victim.h.Close()
	}()
	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.h.ID(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, victim.h.ID(), res.Attempts[0].Node)
	assert.Equal(t, AttemptStreamError, res.Attempts[0].Outcome, "detail: %s", res.Attempts[0].Detail)
	assert.Less(t, res.Attempts[0].Duration, opts.AttemptTimeout)
}

// An unresponsive node must not hold the job up: with fanout, another node
// accepts first, so the job completes although the accept timeout is longer
// than the whole deadline.
func TestRunUnresponsiveNodeFanout(t *testing.T) {
	exec := newExecutor(t)
	silent := newFakeNode(t, exec, behaviour{silent: true})
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(silent, honest)
	opts.AcceptTimeout = time.Minute
	opts.Deadline = 20 * time.Second

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.h.ID(), res.Node)
	require.Len(t, res.Attempts, 1, "the withdrawn offer is not an attempt")
}

// Without fanout, an unresponsive node costs exactly the accept timeout.
func TestRunUnresponsiveNodeAcceptTimeout(t *testing.T) {
	exec := newExecutor(t)
	silent := newFakeNode(t, exec, behaviour{silent: true})
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(silent, honest)
	opts.Fanout = 1
	opts.AcceptTimeout = 300 * time.Millisecond

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.h.ID(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, AttemptTimeout, res.Attempts[0].Outcome)
	assert.Equal(t, stepAccept, res.Attempts[0].Reason)
	assert.Contains(t, res.Attempts[0].String(), "no answer to the offer within 300ms")
}

// Every node rejecting gives one error that names each node and its reason.
func TestRunEveryNodeRejects(t *testing.T) {
	exec := newExecutor(t)
	reasons := []string{wire.ReasonQueueFull, wire.ReasonInsufficientResources, wire.ReasonTooLarge, wire.ReasonUnauthorized}
	var nodes []*fakeNode
	for _, r := range reasons {
		nodes = append(nodes, newFakeNode(t, exec, behaviour{reject: r}))
	}
	c := newTestClient(t)
	opts := quickOpts(nodes...)
	opts.Attempts = 10 // more than there are nodes: each is still tried once

	_, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, ErrExhausted)
	require.Len(t, e.Attempts, len(nodes))
	got := map[peer.ID]string{}
	for _, a := range e.Attempts {
		assert.Equal(t, AttemptRejected, a.Outcome)
		assert.True(t, a.Retryable)
		got[a.Node] = a.Reason
	}
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "no node could run the job"), msg)
	for i, n := range nodes {
		assert.Equal(t, reasons[i], got[n.h.ID()])
		assert.Equal(t, int32(1), n.offers.Load(), "never the same node twice")
		assert.Contains(t, msg, shortID(n.h.ID())+": rejected "+reasons[i]+" (fake node says "+reasons[i]+")")
	}
	assert.Len(t, strings.Split(msg, "\n"), 1+len(nodes), "one line per node tried:\n%s", msg)
}

// invalid_request says the job itself is bad: it is not retried.
func TestRunNotRetried(t *testing.T) {
	exec := newExecutor(t)
	tests := []struct {
		name   string
		behave behaviour
	}{
		{"rejected invalid_request", behaviour{reject: wire.ReasonInvalidRequest}},
		{"error invalid_request", behaviour{errorCode: wire.CodeInvalidRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newFakeNode(t, exec, tt.behave)
			honest := newFakeNode(t, exec, behaviour{})
			c := newTestClient(t)
			opts := quickOpts(bad, honest)
			opts.Fanout = 1
			_, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.ErrorIs(t, err, ErrJobRefused)
			require.Len(t, e.Attempts, 1)
			assert.False(t, e.Attempts[0].Retryable)
			assert.Zero(t, honest.offers.Load())
		})
	}
}

// The overall deadline ends a Run whose every node stalls.
func TestRunDeadline(t *testing.T) {
	exec := newExecutor(t)
	a := newFakeNode(t, exec, behaviour{hold: true})
	b := newFakeNode(t, exec, behaviour{silent: true})
	c := newTestClient(t)
	opts := quickOpts(a, b)
	opts.AttemptTimeout = time.Minute
	opts.AcceptTimeout = time.Minute
	opts.Deadline = 500 * time.Millisecond

	_, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "overall deadline of 500ms passed")
	require.Len(t, e.Attempts, 1, "the node that accepted was tried; the silent one was only asked")
	assert.Equal(t, a.h.ID(), e.Attempts[0].Node)
	assert.Equal(t, AttemptTimeout, e.Attempts[0].Outcome)
}

// The caller's context ends a Run too.
func TestRunCallerCancel(t *testing.T) {
	exec := newExecutor(t)
	a := newFakeNode(t, exec, behaviour{hold: true})
	c := newTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-a.running
		cancel()
	}()
	_, err := c.Run(ctx, Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, quickOpts(a))
	assert.ErrorIs(t, err, context.Canceled)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Len(t, e.Attempts, 1)
	assert.Equal(t, AttemptCancelled, e.Attempts[0].Outcome)
}

// A node that failed this client is offered last in later runs.
func TestRunDemotesFailedNodes(t *testing.T) {
	exec := newExecutor(t)
	liar := newFakeNode(t, exec, behaviour{tamper: func(tb testing.TB, e *exchange) { e.stdout = []byte("lie") }})
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(liar, honest)
	opts.Fanout = 1
	job := Job{Module: testwasm.Bytes(t, testwasm.Tiny)}

	res, err := c.Run(context.Background(), job, opts)
	require.NoError(t, err)
	require.Len(t, res.Attempts, 2)

	res, err = c.Run(context.Background(), job, opts)
	require.NoError(t, err)
	require.Len(t, res.Attempts, 1, "the liar should have been demoted below the honest node")
	assert.Equal(t, honest.h.ID(), res.Node)
	assert.Equal(t, int32(1), liar.offers.Load())
}

// A node that already holds the module is not sent it again.
func TestRunHaveModule(t *testing.T) {
	exec := newExecutor(t)
	node := newFakeNode(t, exec, behaviour{remember: true})
	c := newTestClient(t)
	job := Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"ab"}}
	for i := range 3 {
		res, err := c.Run(context.Background(), job, quickOpts(node))
		require.NoError(t, err, "run %d", i)
		assert.Equal(t, "ba\n", string(res.Stdout))
	}
	assert.Equal(t, int32(1), node.modules.Load(), "module frame sent once")
	assert.Equal(t, int32(3), node.offers.Load())
}

func TestRunReplicasAgree(t *testing.T) {
	exec := newExecutor(t)
	a := newFakeNode(t, exec, behaviour{})
	b := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(a, b)
	opts.Replicas = 2
	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"xyz"}, Deterministic: true, Seed: 7}, opts)
	require.NoError(t, err)
	assert.Equal(t, "zyx\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.NotEqual(t, res.Replicas[0].Node, res.Replicas[1].Node)
	assert.ElementsMatch(t, []peer.ID{a.h.ID(), b.h.ID()}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	for _, r := range res.Replicas {
		assert.Equal(t, receipt.HashBytes([]byte("zyx\n")), r.StdoutHash)
		assert.True(t, r.Receipt.Deterministic)
	}
	assert.Empty(t, res.Disagreement)
}

// liarBehaviour runs the job, changes the output and signs the changed
// output honestly: its receipt verifies, only comparison can catch it.
func liarBehaviour() behaviour {
	return behaviour{tamper: func(tb testing.TB, e *exchange) {
		e.stdout = []byte("a confident lie\n")
		e.receipt.StdoutHash = receipt.HashBytes(e.stdout)
		e.resign(tb)
	}}
}

func TestRunReplicasDisagreement(t *testing.T) {
	exec := newExecutor(t)
	liar := newFakeNode(t, exec, liarBehaviour())
	honest := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(liar, honest)
	opts.Replicas = 2

	_, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny), Deterministic: true}, opts)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, ErrDisagreement)
	assert.Contains(t, e.Disagreement, shortID(liar.h.ID())+" said outcome=exited exit_code=0 stdout="+receipt.HashBytes([]byte("a confident lie\n"))[:19])
	assert.Contains(t, e.Disagreement, shortID(honest.h.ID())+" said outcome=exited exit_code=0 stdout="+receipt.HashBytes([]byte("ok\n"))[:19])
	assert.Contains(t, err.Error(), e.Disagreement)
	require.Len(t, e.Attempts, 2)
	for _, a := range e.Attempts {
		assert.Equal(t, AttemptDisagreed, a.Outcome)
	}
}

// With a third honest node, the majority path finds two agreeing results.
func TestRunReplicasMajority(t *testing.T) {
	exec := newExecutor(t)
	liar := newFakeNode(t, exec, liarBehaviour())
	h1 := newFakeNode(t, exec, behaviour{})
	h2 := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	opts := quickOpts(liar, h1, h2)
	opts.Replicas = 2
	opts.Fanout = 1 // the two first replicas are the liar and h1

	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny), Deterministic: true}, opts)
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(res.Stdout))
	require.Len(t, res.Replicas, 2)
	assert.ElementsMatch(t, []peer.ID{h1.h.ID(), h2.h.ID()}, []peer.ID{res.Replicas[0].Node, res.Replicas[1].Node})
	assert.Contains(t, res.Disagreement, shortID(liar.h.ID()))
	require.Len(t, res.Attempts, 3)
	for _, a := range res.Attempts {
		if a.Node == liar.h.ID() {
			assert.Equal(t, AttemptDisagreed, a.Outcome)
		} else {
			assert.Equal(t, AttemptOK, a.Outcome)
		}
	}
}

// Replicas with more replicas than nodes able to run: a clear error.
func TestRunReplicasTooFewNodes(t *testing.T) {
	exec := newExecutor(t)
	a := newFakeNode(t, exec, behaviour{})
	b := newFakeNode(t, exec, behaviour{reject: wire.ReasonQueueFull})
	c := newTestClient(t)
	opts := quickOpts(a, b)
	opts.Replicas = 2
	_, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, ErrExhausted)
	assert.Contains(t, err.Error(), "only 1 of 2 replicas")
	assert.Len(t, e.Attempts, 2)
}

func TestRunFinder(t *testing.T) {
	exec := newExecutor(t)
	node := newFakeNode(t, exec, behaviour{})
	c := newTestClient(t)
	var asked caps.Requirements
	c.Find = func(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
		asked = req
		assert.Positive(t, limit)
		return []caps.Found{{Peer: node.info()}}, nil
	}
	opts := quickOpts()
	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny), MemoryMB: 64, Arch: "x86_64"}, opts)
	require.NoError(t, err)
	assert.Equal(t, node.h.ID(), res.Node)
	assert.Equal(t, 64, asked.MinMemoryMB)
	assert.Equal(t, "x86_64", asked.Arch)
	assert.Equal(t, caps.DefaultABI, asked.ABI)

	c.Find = func(context.Context, caps.Requirements, int) ([]caps.Found, error) {
		return nil, fmt.Errorf("find: %w: no providers", caps.ErrNoMatch)
	}
	_, err = c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	assert.ErrorIs(t, err, ErrNoCandidates)
	assert.ErrorIs(t, err, caps.ErrNoMatch)

	// A Finder that ignores its context cannot hold Run past the deadline.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.Find = func(context.Context, caps.Requirements, int) ([]caps.Found, error) {
		<-release
		return nil, nil
	}
	opts.Deadline = 200 * time.Millisecond
	_, err = c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "overall deadline of 200ms passed")
}

func TestRunNoCandidates(t *testing.T) {
	c := newTestClient(t)
	other := newHost(t, nil)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"none and no finder", Options{}, "no Candidates given and the client has no Finder"},
		{"only self", Options{Candidates: []peer.AddrInfo{{ID: c.Host.ID()}}}, "all 1 candidates are excluded or this host itself"},
		{"only excluded", Options{Candidates: []peer.AddrInfo{{ID: other.ID()}}, Exclude: []peer.ID{other.ID()}}, "all 1 candidates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Run(context.Background(), Job{Module: tiny}, tt.opts)
			assert.ErrorIs(t, err, ErrNoCandidates)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "(no node was tried)")
		})
	}
}

func TestRunUnreachableNode(t *testing.T) {
	exec := newExecutor(t)
	honest := newFakeNode(t, exec, behaviour{})
	gone := newFakeNode(t, exec, behaviour{})
	info := gone.info()
	require.NoError(t, gone.h.Close())
	c := newTestClient(t)
	opts := quickOpts()
	opts.Candidates = []peer.AddrInfo{info, honest.info()}
	opts.Fanout = 1
	opts.DialTimeout = 2 * time.Second
	res, err := c.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, opts)
	require.NoError(t, err)
	assert.Equal(t, honest.h.ID(), res.Node)
	require.Len(t, res.Attempts, 2)
	assert.Equal(t, AttemptUnreachable, res.Attempts[0].Outcome)
}

func TestRunInvalidJob(t *testing.T) {
	c := newTestClient(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	opts := Options{Candidates: []peer.AddrInfo{{ID: c.Host.ID()}}}
	tests := []struct {
		name string
		job  Job
		opts Options
		want string
	}{
		{"empty module", Job{}, opts, "module is empty"},
		{"NUL in arg", Job{Module: tiny, Args: []string{"a", "b\x00c"}}, opts, "args[1] contains a NUL"},
		{"too many args", Job{Module: tiny, Args: make([]string, wire.MaxArgs+1)}, opts, "1025 args"},
		{"bad arch", Job{Module: tiny, Arch: "vax"}, opts, "unknown architecture"},
		{"require arch without arch", Job{Module: tiny, RequireArch: true}, opts, "RequireArch is set but Arch is empty"},
		{"seed without deterministic", Job{Module: tiny, Seed: 3}, opts, "Seed is set but Deterministic is false"},
		{"attempts below replicas", Job{Module: tiny}, Options{Attempts: 1, Replicas: 2}, "Attempts (1) is less than Replicas (2)"},
		{"negative fanout", Job{Module: tiny}, Options{Fanout: -1}, "option Fanout is negative"},
		{"negative deadline", Job{Module: tiny}, Options{Deadline: -time.Second}, "option Deadline is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Run(context.Background(), tt.job, tt.opts)
			assert.ErrorIs(t, err, ErrInvalidJob)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := (&Client{}).Run(context.Background(), Job{Module: tiny}, opts)
	assert.ErrorIs(t, err, ErrInvalidJob)
	assert.Contains(t, err.Error(), "no libp2p host")
}

func TestSettingsDefaults(t *testing.T) {
	c := newTestClient(t)
	tests := []struct {
		name     string
		job      Job
		opts     Options
		attempts int
		attempt  time.Duration
		deadline time.Duration
	}{
		{"zero", Job{Module: []byte{1}}, Options{}, 5, 60 * time.Second, 5 * time.Minute},
		{"replicas raise attempts", Job{Module: []byte{1}}, Options{Replicas: 4}, 6, 60 * time.Second, 6 * time.Minute},
		{"long job caps the deadline", Job{Module: []byte{1}, TimeoutSeconds: 3600}, Options{}, 5, 3630 * time.Second, 7260 * time.Second},
		{"explicit", Job{Module: []byte{1}}, Options{Attempts: 2, AttemptTimeout: time.Second, Deadline: time.Minute}, 2, time.Second, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.settings(tt.job, tt.opts)
			require.NoError(t, err)
			assert.Equal(t, tt.attempts, s.Attempts)
			assert.Equal(t, tt.attempt, s.AttemptTimeout)
			assert.Equal(t, tt.deadline, s.Deadline)
			assert.Equal(t, DefaultFanout, s.Fanout)
			assert.Equal(t, DefaultAcceptTimeout, s.AcceptTimeout)
			assert.NoError(t, s.manifest.Validate())
			assert.Equal(t, receipt.HashBytes(tt.job.Module), s.moduleHash)
		})
	}
}

func TestBackoff(t *testing.T) {
	r := &run{s: settings{Options: Options{BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}}}
	tests := []struct {
		failed int
		max    time.Duration
	}{
		{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{5, 1600 * time.Millisecond}, {6, 2 * time.Second}, {60, 2 * time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			d := r.backoff(tt.failed)
			assert.GreaterOrEqual(t, d, tt.max/2, "failed=%d", tt.failed)
			assert.LessOrEqual(t, d, tt.max, "failed=%d", tt.failed)
		}
	}
}

func TestPool(t *testing.T) {
	ids := []peer.ID{"a", "b", "c", "d"}
	cands := make([]peer.AddrInfo, len(ids))
	for i, id := range ids {
		cands[i] = peer.AddrInfo{ID: id}
	}
	p := newPool(cands, 3)

	got, wait := p.take(2)
	require.Len(t, got, 2)
	assert.Nil(t, wait)
	assert.Equal(t, peer.ID("a"), got[0].ID)

	// Budget 3 with 2 in flight: only one more may go out.
	more, _ := p.take(5)
	require.Len(t, more, 1)
	assert.Equal(t, peer.ID("c"), more[0].ID)
	none, wait := p.take(1)
	assert.Empty(t, none)
	require.NotNil(t, wait, "a release may still free budget")

	p.release([]peer.AddrInfo{got[1]})
	select {
	case <-wait:
	default:
		t.Fatal("release did not signal waiters")
	}
	p.commit(Attempt{Node: "a", Outcome: AttemptRejected})
	p.commit(Attempt{Node: "c", Outcome: AttemptRejected})
	again, _ := p.take(3)
	require.Len(t, again, 1)
	assert.Equal(t, peer.ID("b"), again[0].ID, "a withdrawn node comes back first")
	p.commit(Attempt{Node: "b", Outcome: AttemptOK})
	last, wait := p.take(1)
	assert.Empty(t, last)
	assert.Nil(t, wait, "budget used up: nothing can change")
	assert.Len(t, p.snapshot(), 3)
}

func TestRankDemotes(t *testing.T) {
	c := newTestClient(t)
	ids := []peer.ID{"p1", "p2", "p3", "p4"}
	cands := []peer.AddrInfo{{ID: "p1"}, {ID: "p2"}, {ID: "p2"}, {ID: c.Host.ID()}, {ID: "p3"}, {ID: "p4"}}
	c.score(Attempt{Node: "p1", Outcome: AttemptBadReceipt})
	c.score(Attempt{Node: "p2", Outcome: AttemptTimeout})
	c.score(Attempt{Node: "p4", Outcome: AttemptCancelled}) // says nothing about the node
	got := c.rank(cands, []peer.ID{"p3"})
	var order []peer.ID
	for _, ai := range got {
		order = append(order, ai.ID)
	}
	assert.Equal(t, []peer.ID{ids[3], ids[1], ids[0]}, order)

	// Success halves the score until the node is back in Find's order.
	for range 4 {
		c.score(Attempt{Node: "p1", Outcome: AttemptOK})
		c.score(Attempt{Node: "p2", Outcome: AttemptOK})
	}
	got = c.rank(cands, nil)
	order = order[:0]
	for _, ai := range got {
		order = append(order, ai.ID)
	}
	assert.Equal(t, []peer.ID{"p1", "p2", "p3", "p4"}, order)
}

func TestErrorFormat(t *testing.T) {
	a, b := peer.ID("12D3KooWabcdefghijklmnop"), peer.ID("12D3KooWqrstuvwxyz012345")
	e := &Error{
		Err: ErrExhausted,
		Attempts: []Attempt{
			{Node: a, Outcome: AttemptRejected, Reason: wire.ReasonQueueFull, Detail: "node busy"},
			{Node: b, Outcome: AttemptTimeout, Reason: stepAccept, Detail: "no answer to the offer within 2s"},
		},
	}
	want := "no node could run the job; 2 node(s) tried:\n" +
		"  " + shortID(a) + ": rejected queue_full (node busy)\n" +
		"  " + shortID(b) + ": timeout accept (no answer to the offer within 2s)"
	assert.Equal(t, want, e.Error())
	assert.ErrorIs(t, e, ErrExhausted)
	assert.Equal(t, "no node could run the job (no node was tried)", (&Error{Err: ErrExhausted}).Error())
}

func TestPeerText(t *testing.T) {
	assert.Equal(t, `line\nbreak \x1b[31m`, peerText("line\nbreak \x1b[31m"))
	long := peerText(strings.Repeat("x", 1000))
	assert.Less(t, len(long), maxDetail+10)
	assert.Empty(t, peerText(""))
}

// counterValue reads the client's receipts-rejected counter for one check.
func counterValue(tb testing.TB, c *Client, check string) float64 {
	tb.Helper()
	return metricValue(tb, c.Metrics.ReceiptsRejected.WithLabelValues(check))
}

func metricValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	require.NoError(tb, c.Write(&m))
	return m.GetCounter().GetValue()
}

package client_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/scripted"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// exec is the one executor every node of this test binary runs jobs on, so
// each module is compiled once, not per node. Set once in TestMain.
var exec *wasm.Executor

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plasm-client-test-")
	if err != nil {
		panic(err)
	}
	exec, err = wasm.New(context.Background(), wasm.Config{CacheDir: dir})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = exec.Close(context.Background())
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testNode is a real node (scripted: honest unless its hooks say
// otherwise) that counts what it saw.
type testNode struct {
	n       *node.Node
	offers  atomic.Int32  // offers received
	modules atomic.Int32  // offers accepted without have_module: module frames asked for
	held    chan struct{} // one value each time a stalled job has its payload
}

func (n *testNode) id() peer.ID { return n.n.Host.ID() }
func (n *testNode) info() peer.AddrInfo {
	return peer.AddrInfo{ID: n.n.Host.ID(), Addrs: n.n.Host.Addrs()}
}
func (n *testNode) metrics() *metrics.Metrics { return n.n.Metrics }

// newNode starts a node on loopback with a small, quick job configuration
// (256 MB and 10 s per job at most, 64 KiB stdout, 16 KiB stderr), edited
// by mutate, and the hooks.
func newNode(tb testing.TB, hooks *jobs.Hooks, mutate func(*config.Jobs)) *testNode {
	tb.Helper()
	tn := &testNode{held: make(chan struct{}, 16)}
	cfg := scripted.LoopbackConfig("")
	cfg.Jobs.StepTimeout = config.Duration(time.Minute) // compiling under -race is slow
	cfg.Jobs.MaxTimeoutSeconds = 10
	cfg.Jobs.MaxMemoryMB = 256
	cfg.Jobs.StdoutCap = 64 << 10
	cfg.Jobs.StderrCap = 16 << 10
	cfg.Jobs.ModuleStoreMB = 64
	if mutate != nil {
		mutate(&cfg.Jobs)
	}
	h := jobs.Hooks{}
	if hooks != nil {
		h = *hooks
	}
	inner := h.Offer
	h.Offer = func(ctx context.Context, o *wire.Offer, d session.Decision) session.Decision {
		tn.offers.Add(1)
		if d.Accept != nil && !d.Accept.HaveModule {
			tn.modules.Add(1)
		}
		if inner != nil {
			return inner(ctx, o, d)
		}
		return d
	}
	n, err := scripted.Start(context.Background(), scripted.Options{Config: cfg, Hooks: &h, Executor: exec})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = n.Close() })
	tn.n = n
	return tn
}

func honest(tb testing.TB) *testNode { return newNode(tb, nil, nil) }

// stalls accepts, takes the payload, and never answers.
func stalls(tb testing.TB) *testNode {
	var tn *testNode
	tn = newNode(tb, scripted.StallAfterAccept(func() { tn.held <- struct{}{} }), nil)
	return tn
}

func infos(nodes ...*testNode) []peer.AddrInfo {
	out := make([]peer.AddrInfo, len(nodes))
	for i, n := range nodes {
		out[i] = n.info()
	}
	return out
}

// lie changes what an honest node would send back: before edits the run
// (receipt, output) before the message is built, after edits the message.
// Output sizes follow the (edited) output frames.
func lie(before func(tb testing.TB, r *jobs.Ran), after func(rep *session.Reply)) func(testing.TB) *jobs.Hooks {
	return func(tb testing.TB) *jobs.Hooks {
		return &jobs.Hooks{Reply: func(_ context.Context, r *jobs.Ran, _ session.Reply) session.Reply {
			if before != nil {
				before(tb, r)
			}
			rep := r.Reply()
			if after != nil {
				after(&rep)
				rep.Result.StdoutSize, rep.Result.StderrSize = int64(len(rep.Stdout)), int64(len(rep.Stderr))
			}
			return rep
		}}
	}
}

// resign signs the edited receipt again with the node's own key.
func resign(tb testing.TB, r *jobs.Ran) {
	tb.Helper()
	require.NoError(tb, r.Resign())
}

// signWith signs r with priv without the checks Receipt.Sign makes, so a
// test can claim one key and sign with another.
func signWith(tb testing.TB, r *receipt.Receipt, priv ed25519.PrivateKey) {
	tb.Helper()
	r.Signature = ""
	msg, err := r.SigningBytes()
	require.NoError(tb, err)
	r.Signature = hex.EncodeToString(ed25519.Sign(priv, msg))
}

func newIdentity(tb testing.TB) *identity.Identity {
	tb.Helper()
	id, err := identity.Generate()
	require.NoError(tb, err)
	return id
}

// newHost starts a bare libp2p host listening on loopback TCP.
func newHost(tb testing.TB) host.Host {
	tb.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = h.Close() })
	return h
}

// newTestClient returns a client on its own host, with metrics.
func newTestClient(tb testing.TB) *client.Client {
	tb.Helper()
	return &client.Client{Host: newHost(tb), Metrics: metrics.New()}
}

// quickOpts are options for tests: short timeouts, short backoff, and a
// deadline that turns any hang into a failure instead of a stuck test.
func quickOpts(cands ...*testNode) client.Options {
	return client.Options{
		Candidates:     infos(cands...),
		AcceptTimeout:  2 * time.Second,
		AttemptTimeout: 2 * time.Minute, // compiling the Go-built hello module under -race is slow
		Deadline:       4 * time.Minute,
		BackoffMin:     time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
	}
}

// counterValue reads the client's receipts-rejected counter for one check.
func counterValue(tb testing.TB, c *client.Client, check string) float64 {
	tb.Helper()
	return metricValue(tb, c.Metrics.ReceiptsRejected.WithLabelValues(check))
}

func metricValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	require.NoError(tb, c.Write(&m))
	return m.GetCounter().GetValue()
}

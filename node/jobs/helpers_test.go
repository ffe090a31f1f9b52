package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// compileCacheDir is a wazero compilation cache shared by every executor in
// this test binary, so the Go hello module is compiled once, not per test.
// Set once in TestMain and never changed.
var compileCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plasm-jobs-test-")
	if err != nil {
		panic(err)
	}
	compileCacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testConfig is a small, fast server configuration.
func testConfig() config.Jobs {
	c := config.Default().Jobs
	c.StepTimeout = config.Duration(5 * time.Second)
	c.MaxTimeoutSeconds = 10
	c.MaxMemoryMB = 256
	c.StdoutCap = 64 << 10
	c.StderrCap = 16 << 10
	c.ModuleStoreMB = 64
	return c
}

// newHost starts a libp2p host on loopback TCP.
func newHost(tb testing.TB, id *identity.Identity) host.Host {
	tb.Helper()
	opts := []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics()}
	if id != nil {
		opts = append(opts, libp2p.Identity(id.PrivKey))
	}
	h, err := libp2p.New(opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = h.Close() })
	return h
}

type testNode struct {
	srv  *Server
	host host.Host
	id   *identity.Identity
	m    *metrics.Metrics
}

// newTestNode starts a job server with testConfig changed by mutate.
func newTestNode(tb testing.TB, mutate func(*config.Jobs)) *testNode {
	tb.Helper()
	return newTestNodeLog(tb, mutate, nil)
}

// newTestNodeLog is newTestNode with the server logging to log.
func newTestNodeLog(tb testing.TB, mutate func(*config.Jobs), log *slog.Logger) *testNode {
	tb.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	id, err := identity.Generate()
	require.NoError(tb, err)
	h := newHost(tb, id)
	exec, err := wasm.New(context.Background(), wasm.Config{CacheDir: compileCacheDir})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = exec.Close(context.Background()) })
	m := metrics.New()
	srv, err := NewServer(Options{Host: h, Exec: exec, Identity: id, Config: cfg, Metrics: m, Log: log})
	require.NoError(tb, err)
	srv.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &testNode{srv: srv, host: h, id: id, m: m}
}

// testClient is a minimal job client that speaks node/wire directly.
type testClient struct {
	h    host.Host
	node peer.ID
}

func (n *testNode) client(tb testing.TB) *testClient {
	tb.Helper()
	h := newHost(tb, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(tb, h.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}))
	return &testClient{h: h, node: n.host.ID()}
}

// jobSpec is what a test client submits.
type jobSpec struct {
	module []byte
	args   []string
	stdin  []byte
	mf     manifest.Manifest // zero: a default manifest for module
	nonce  string            // "": fresh
	edit   func(*wire.Offer) // changes the offer before it is sent
}

func (j jobSpec) manifest() manifest.Manifest {
	if j.mf.Version != "" {
		return j.mf
	}
	return manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(j.module), CPUCores: 1, MemoryMB: 64, TimeoutSeconds: 10}
}

// clientExchange is one stream's worth of client-side state and what came
// back. The steps run through session.Client, the client side every
// client uses; tests reach past it (s, br) only to send what no honest
// client would.
type clientExchange struct {
	s        network.Stream
	sc       *session.Client
	br       *bufio.Reader // sc's reader, for raw reads after a step
	offer    wire.Offer
	accepted *wire.Accepted
	rejected *wire.Rejected
	result   *wire.Result
	stdout   []byte
	stderr   []byte
	err      error // a *wire.ErrorMsg (errors.As) or a stream error
}

func (c *testClient) open(tb testing.TB) *clientExchange {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.node, phase.ProtocolJob)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = s.Reset() })
	sc := session.NewClient(s, wire.Caps{})
	return &clientExchange{s: s, sc: sc, br: sc.Reader()}
}

// exchangeTimeout is generous: the first hello run compiles a 2.6 MB
// module, slow under -race.
const exchangeTimeout = 3 * time.Minute

// sendOffer sends the offer for j (as edited, not validated: tests send bad
// offers too) and reads accepted, rejected or error.
func (x *clientExchange) sendOffer(tb testing.TB, j jobSpec) {
	tb.Helper()
	nonce := j.nonce
	if nonce == "" {
		nonce = phase.NewNonce()
	}
	x.offer = wire.Offer{
		JobID: phase.NewJobID(), Nonce: nonce, Manifest: j.manifest(),
		ModuleSize: int64(len(j.module)), StdinSize: int64(len(j.stdin)), ArgsCount: len(j.args),
	}
	if j.edit != nil {
		j.edit(&x.offer)
	}
	body, err := json.Marshal(x.offer)
	require.NoError(tb, err)
	x.accepted, x.rejected, x.err = x.sc.OfferFrame(x.offer, wire.AppendFrame(nil, body), exchangeTimeout)
}

// sendPayload sends args, the module unless the node has it, and stdin.
func (x *clientExchange) sendPayload(tb testing.TB, j jobSpec) {
	tb.Helper()
	require.NoError(tb, x.sc.Send(j.args, j.module, j.stdin, time.Now().Add(exchangeTimeout)))
}

// readResult reads result, stdout and stderr (or an error message), then
// checks that nothing follows (JOB-17).
func (x *clientExchange) readResult(tb testing.TB) {
	tb.Helper()
	out, err := x.sc.Result(time.Now().Add(exchangeTimeout), 0, nil)
	if err != nil {
		x.err = err
		return
	}
	x.result, x.stdout, x.stderr = out.Result, out.Stdout, out.Stderr
	_, err = x.br.ReadByte()
	require.ErrorIs(tb, err, io.EOF)
}

// run does a whole exchange.
func (c *testClient) run(tb testing.TB, j jobSpec) *clientExchange {
	tb.Helper()
	x := c.open(tb)
	x.sendOffer(tb, j)
	if x.accepted == nil {
		return x
	}
	x.sendPayload(tb, j)
	x.readResult(tb)
	return x
}

// verify checks the receipt as a careful client does (session.Check).
func (c *testClient) verify(tb testing.TB, x *clientExchange, j jobSpec) *receipt.Receipt {
	tb.Helper()
	require.NotNil(tb, x.result, "no result: %v", x.err)
	rc, check, err := session.Check(&session.Output{Result: x.result, Stdout: x.stdout, Stderr: x.stderr}, x.accepted, session.Expect{
		Receipt: receipt.Expect{
			PeerID:     x.s.Conn().RemotePeer(),
			JobID:      x.offer.JobID,
			Nonce:      x.offer.Nonce,
			Requester:  c.h.ID().String(),
			ModuleHash: x.offer.Manifest.ModuleHash,
			InputHash:  receipt.InputHash(j.args, j.stdin),
		},
		Deterministic: x.offer.Deterministic,
	})
	require.NoError(tb, err, "check %s", check)
	return rc
}

// peerErr returns the error message the node ended the exchange with.
func peerErr(tb testing.TB, err error) *wire.ErrorMsg {
	tb.Helper()
	var em *wire.ErrorMsg
	require.True(tb, errors.As(err, &em), "want an error message from the node, got %v", err)
	return em
}

// value reads a counter's value, or a histogram's sample count.
func value(tb testing.TB, c prometheus.Metric) float64 {
	tb.Helper()
	var d dto.Metric
	require.NoError(tb, c.Write(&d))
	if h := d.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return d.GetCounter().GetValue()
}

func jobsCount(tb testing.TB, m *metrics.Metrics, outcome string) float64 {
	return value(tb, m.Jobs.WithLabelValues(outcome))
}

func rejections(tb testing.TB, m *metrics.Metrics, reason string) float64 {
	return value(tb, m.JobRejections.WithLabelValues(reason))
}

func cacheLookups(tb testing.TB, m *metrics.Metrics, result string) float64 {
	return value(tb, m.ModuleCache.WithLabelValues(result))
}

// eventually polls cond until it holds or wait runs out.
func eventually(tb testing.TB, wait time.Duration, cond func() bool, msg string) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting blind
	}
}

package client

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// compileCacheDir is a wazero compilation cache shared by every executor in
// this test binary, so each module is compiled once, not per test. Set once
// in TestMain and never changed.
var compileCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plasm-client-test-")
	if err != nil {
		panic(err)
	}
	compileCacheDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// newHost starts a libp2p host listening on loopback TCP only.
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

func newExecutor(tb testing.TB) *wasm.Executor {
	tb.Helper()
	exec, err := wasm.New(context.Background(), wasm.Config{CacheDir: compileCacheDir})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = exec.Close(context.Background()) })
	return exec
}

func newIdentity(tb testing.TB) *identity.Identity {
	tb.Helper()
	id, err := identity.Generate()
	require.NoError(tb, err)
	return id
}

// newTestClient returns a client on its own host, with metrics.
func newTestClient(tb testing.TB) *Client {
	tb.Helper()
	return &Client{Host: newHost(tb, nil), Metrics: metrics.New()}
}

// exchange is what a fake node's tamper hook may change before it answers:
// everything it is about to send.
type exchange struct {
	node    *fakeNode
	offer   *wire.Offer
	result  *wire.Result
	receipt *receipt.Receipt
	stdout  []byte
	stderr  []byte
	// rawReceipt, when set, is sent instead of the marshalled receipt.
	rawReceipt json.RawMessage
}

// resign signs the (changed) receipt again with the node's own key.
func (e *exchange) resign(tb testing.TB) {
	tb.Helper()
	e.receipt.Signature = ""
	require.NoError(tb, e.receipt.Sign(e.node.id.Ed25519()))
}

// behaviour is how a fake node departs from the protocol. The zero value is
// an honest node.
type behaviour struct {
	reject       string // answer every offer with this rejection reason
	errorCode    string // answer every offer with this error code
	silent       bool   // read the offer, never answer
	hold         bool   // accept, read the payload, then never answer
	raiseLimits  bool   // accept with more memory than the manifest asked for
	remember     bool   // keep modules by hash and answer have_module
	tamper       func(tb testing.TB, e *exchange)
	resultDetail string
}

// fakeNode is a test-only job node: it speaks node/wire, runs jobs with
// node/wasm and signs receipts with node/receipt, honestly unless its
// behaviour says otherwise.
type fakeNode struct {
	tb     testing.TB
	h      host.Host
	id     *identity.Identity
	exec   *wasm.Executor
	behave behaviour

	offers  atomic.Int32  // offers received
	modules atomic.Int32  // module frames received
	running chan struct{} // one value each time a held job has its payload
	quit    chan struct{} // closed at test end: releases held handlers

	mu       sync.Mutex
	store    map[string][]byte
	receipts []*receipt.Receipt // every receipt signed, for replay
}

func newFakeNode(tb testing.TB, exec *wasm.Executor, b behaviour) *fakeNode {
	tb.Helper()
	id := newIdentity(tb)
	n := &fakeNode{
		tb: tb, h: newHost(tb, id), id: id, exec: exec, behave: b,
		running: make(chan struct{}, 16),
		quit:    make(chan struct{}),
		store:   map[string][]byte{},
	}
	tb.Cleanup(func() { close(n.quit) })
	n.h.SetStreamHandler(wire.ProtocolJob, n.handle)
	return n
}

func (n *fakeNode) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

func infos(nodes ...*fakeNode) []peer.AddrInfo {
	out := make([]peer.AddrInfo, len(nodes))
	for i, n := range nodes {
		out[i] = n.info()
	}
	return out
}

func (n *fakeNode) handle(s network.Stream) {
	defer func() { _ = s.Close() }()
	_ = s.SetDeadline(time.Now().Add(3 * time.Minute)) // generous: compiling under -race is slow
	br := bufio.NewReader(s)
	msg, err := wire.ReadExpect(br, wire.TypeOffer)
	if err != nil {
		_ = s.Reset()
		return
	}
	offer := msg.(*wire.Offer)
	n.offers.Add(1)
	b := n.behave
	switch {
	case b.silent:
		<-n.quit // hold the stream until the test ends; the client gives up on its own
		_ = s.Reset()
		return
	case b.reject != "":
		_ = wire.WriteControl(s, wire.Rejected{Reason: b.reject, Detail: "fake node says " + b.reject})
		return
	case b.errorCode != "":
		_ = wire.WriteControl(s, wire.ErrorMsg{Code: b.errorCode, Detail: "fake node error"})
		return
	}

	limits := wire.AppliedLimits{
		MemoryMB:  min(offer.Manifest.MemoryMB, 256),
		TimeoutMS: int64(min(offer.Manifest.TimeoutSeconds, 10)) * 1000,
		StdoutCap: 64 << 10,
		StderrCap: 16 << 10,
	}
	if b.raiseLimits {
		limits.MemoryMB = offer.Manifest.MemoryMB + 1
	}
	n.mu.Lock()
	stored, have := n.store[offer.Manifest.ModuleHash]
	n.mu.Unlock()
	have = have && b.remember
	if err := wire.WriteControl(s, wire.Accepted{HaveModule: have, Limits: limits}); err != nil {
		return
	}
	pm, err := wire.ReadExpect(br, wire.TypePayload)
	if err != nil {
		return
	}
	payload := pm.(*wire.Payload)
	module := stored
	if !have {
		if module, err = wire.ReadDeclared(br, offer.ModuleSize, 64<<20, wire.KindModule); err != nil {
			return
		}
		n.modules.Add(1)
	}
	stdin, err := wire.ReadDeclared(br, offer.StdinSize, 16<<20, wire.KindStdin)
	if err != nil {
		return
	}
	if b.remember {
		n.mu.Lock()
		n.store[offer.Manifest.ModuleHash] = module
		n.mu.Unlock()
	}
	if b.hold {
		n.running <- struct{}{}
		<-n.quit
		_ = s.Reset()
		return
	}

	res, err := n.exec.Run(context.Background(), wasm.Job{
		Module: module, ModuleHash: offer.Manifest.ModuleHash, Args: payload.Args, Stdin: stdin,
		Limits: wasm.Limits{
			MemoryMB: limits.MemoryMB, Timeout: time.Duration(limits.TimeoutMS) * time.Millisecond,
			StdoutCap: limits.StdoutCap, StderrCap: limits.StderrCap,
		},
		Deterministic: offer.Deterministic, Seed: offer.Seed,
	})
	if err != nil {
		_ = wire.WriteControl(s, wire.ErrorMsg{Code: wire.CodeInternal, Detail: err.Error()})
		return
	}
	rc := n.sign(offer, s.Conn().RemotePeer().String(), payload.Args, stdin, res, limits)
	e := &exchange{
		node: n, offer: offer, receipt: rc, stdout: res.Stdout, stderr: res.Stderr,
		result: &wire.Result{
			Outcome: string(res.Outcome), ExitCode: res.ExitCode, Detail: b.resultDetail,
			StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
			WallTimeMS: res.WallTime.Milliseconds(),
		},
	}
	if b.tamper != nil {
		b.tamper(n.tb, e)
	}
	raw := e.rawReceipt
	if raw == nil {
		raw, err = json.Marshal(e.receipt)
		if err != nil {
			return
		}
	}
	e.result.Receipt = raw
	e.result.StdoutSize = int64(len(e.stdout))
	e.result.StderrSize = int64(len(e.stderr))
	if err := wire.WriteControl(s, e.result); err != nil {
		return
	}
	if err := wire.WriteFrame(s, e.stdout); err != nil {
		return
	}
	_ = wire.WriteFrame(s, e.stderr)
}

// sign builds and signs the receipt an honest node would.
func (n *fakeNode) sign(offer *wire.Offer, requester string, args []string, stdin []byte, res wasm.Result, l wire.AppliedLimits) *receipt.Receipt {
	exit := res.ExitCode
	if res.Outcome != wasm.OutcomeExited {
		exit = receipt.NoExitCode
	}
	rc := &receipt.Receipt{
		Version:         receipt.Version,
		ModuleHash:      offer.Manifest.ModuleHash,
		ExitCode:        exit,
		WallTimeMS:      res.WallTime.Milliseconds(),
		NodePubkey:      n.id.PublicKeyHex(),
		JobID:           offer.JobID,
		Nonce:           offer.Nonce,
		Requester:       requester,
		NodePeerID:      n.id.ID.String(),
		InputHash:       receipt.InputHash(args, stdin),
		StdoutHash:      receipt.HashBytes(res.Stdout),
		StderrHash:      receipt.HashBytes(res.Stderr),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		Outcome:         string(res.Outcome),
		Deterministic:   offer.Deterministic,
		Limits:          receipt.Limits{MemoryMB: l.MemoryMB, TimeoutMS: l.TimeoutMS, StdoutCap: l.StdoutCap, StderrCap: l.StderrCap},
	}
	rc.SetTimes(res.Started, res.Finished)
	require.NoError(n.tb, rc.Sign(n.id.Ed25519()))
	n.mu.Lock()
	n.receipts = append(n.receipts, rc)
	n.mu.Unlock()
	return rc
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

// quickOpts are options for tests: short timeouts, short backoff, and a
// deadline that turns any hang into a failure instead of a stuck test.
func quickOpts(cands ...*fakeNode) Options {
	return Options{
		Candidates:     infos(cands...),
		AcceptTimeout:  2 * time.Second,
		AttemptTimeout: 2 * time.Minute, // compiling the Go-built hello module under -race is slow
		Deadline:       4 * time.Minute,
		BackoffMin:     time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
	}
}

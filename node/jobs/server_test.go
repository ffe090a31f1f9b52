package jobs

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

func TestJOB5_JOB9_HelloRoundTrip(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Hello), args: []string{"Hello,", "World"}}
	x := c.run(t, j)
	require.NotNil(t, x.result, "%v", x.err)
	assert.False(t, x.accepted.HaveModule)
	assert.Equal(t, phase.OutcomeExited, x.result.Outcome)
	assert.Equal(t, 0, x.result.ExitCode)
	assert.Equal(t, "dlroW ,olleH\n", string(x.stdout))
	assert.Empty(t, x.stderr)
	rc := c.verify(t, x, j)
	assert.Equal(t, n.host.ID().String(), rc.NodePeerID)
	// The server records its metrics after the last frame is on the wire.
	require.Eventually(t, func() bool {
		return jobsCount(t, n.m, phase.OutcomeExited) == 1 && value(t, n.m.JobSeconds) == 1
	}, 5*time.Second, 5*time.Millisecond, "job counted once, by outcome and in the latency histogram")

	// The same job through stdin instead of args.
	j2 := jobSpec{module: j.module, stdin: []byte("abc\n")}
	x2 := c.run(t, j2)
	require.NotNil(t, x2.result, "%v", x2.err)
	assert.Equal(t, "cba\n", string(x2.stdout))
	c.verify(t, x2, j2)
	running, queued := n.srv.Load()
	assert.Equal(t, [2]int{0, 0}, [2]int{running, queued})
}

func TestJOB16_HaveModuleOnSecondOffer(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Tiny)}

	first := c.run(t, j)
	require.NotNil(t, first.result, "%v", first.err)
	assert.False(t, first.accepted.HaveModule)
	second := c.run(t, j)
	require.NotNil(t, second.result, "%v", second.err)
	assert.True(t, second.accepted.HaveModule, "JOB-16: the node holds the module now")
	assert.Equal(t, "ok\n", string(second.stdout))
	c.verify(t, second, j)
	assert.Equal(t, 1.0, cacheLookups(t, n.m, "miss"))
	assert.Equal(t, 1.0, cacheLookups(t, n.m, "hit"))

	// A module that failed to load is not kept.
	bad := jobSpec{module: []byte("\x00asm\x01\x00\x00\x00garbage")}
	for range 2 {
		x := c.run(t, bad)
		require.NotNil(t, x.result, "%v", x.err)
		assert.False(t, x.accepted.HaveModule)
	}
}

func TestJOB8_MAN2_WrongModuleHash(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	j := jobSpec{module: tiny, mf: manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule([]byte("other")), CPUCores: 1, MemoryMB: 16, TimeoutSeconds: 5}}
	x := c.run(t, j)
	require.Nil(t, x.result)
	em := peerErr(t, x.err)
	assert.Equal(t, phase.CodeHashMismatch, em.Code)
	assert.Contains(t, em.Detail, wasm.HashModule(tiny))
	// Counted when the exchange ends, after the node lingered (JOB-19).
	eventually(t, 5*time.Second, func() bool { return jobsCount(t, n.m, phase.OutcomeHashMismatch) == 1 }, "hash_mismatch not counted")
	assert.Equal(t, 0, n.srv.Store().Len(), "mismatching bytes must not be stored")

	// The node is still fine, and does not claim to hold the bad bytes.
	ok := c.run(t, jobSpec{module: tiny})
	require.NotNil(t, ok.result, "%v", ok.err)
	assert.False(t, ok.accepted.HaveModule)
}

func TestWIRE10_JOB6_SizeLimits(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.MaxModuleBytes = 1024; c.MaxStdinBytes = 16 })
	c := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)

	big := c.run(t, jobSpec{module: testwasm.Bytes(t, testwasm.Hello)})
	require.NotNil(t, big.rejected, "%v", big.err)
	assert.Equal(t, phase.ReasonTooLarge, big.rejected.Reason)
	assert.Contains(t, big.rejected.Detail, "module_size")

	stdin := c.run(t, jobSpec{module: tiny, stdin: make([]byte, 17)})
	require.NotNil(t, stdin.rejected, "%v", stdin.err)
	assert.Equal(t, phase.ReasonTooLarge, stdin.rejected.Reason)
	assert.Contains(t, stdin.rejected.Detail, "stdin_size")
	assert.Equal(t, 2.0, rejections(t, n.m, phase.ReasonTooLarge))

	// A module frame whose length differs from module_size (JOB-6).
	j := jobSpec{module: tiny}
	x := c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)
	require.NoError(t, wire.WriteControl(x.s, wire.Payload{Args: []string{}}))
	require.NoError(t, wire.WriteFrame(x.s, append(tiny, 0)))
	x.readResult(t)
	em := peerErr(t, x.err)
	assert.Equal(t, phase.CodeInvalidRequest, em.Code)
	assert.Contains(t, em.Detail, "differs from declared size")

	// Args count differs from args_count (JOB-7).
	x = c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)
	require.NoError(t, wire.WriteControl(x.s, wire.Payload{Args: []string{"extra"}}))
	x.readResult(t)
	em = peerErr(t, x.err)
	assert.Equal(t, phase.CodeInvalidRequest, em.Code)
	assert.Contains(t, em.Detail, "args_count")

	ok := c.run(t, j)
	require.NotNil(t, ok.result, "%v", ok.err)
}

func TestRCPT1_EXEC5_GuestFailures(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.StdoutCap = 4096 })
	c := n.client(t)
	// Jobs meant to time out get 1 s; the others 10 s, so that a loaded
	// machine cannot turn their outcome into a timeout.
	short := func(module []byte, memMB int, outcome string) manifest.Manifest {
		secs := 10
		if outcome == phase.OutcomeTimeout {
			secs = 1
		}
		return manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(module), CPUCores: 1, MemoryMB: memMB, TimeoutSeconds: secs}
	}
	invalid := []byte("this is not a wasm module")
	for _, tc := range []struct {
		name      string
		module    []byte
		mem       int
		outcome   string
		exit      int
		truncated bool
	}{
		{"invalid wasm", invalid, 16, phase.OutcomeInvalidModule, -1, false},
		{"infinite loop", testwasm.Bytes(t, testwasm.Loop), 16, phase.OutcomeTimeout, -1, false},
		{"memory bomb", testwasm.Bytes(t, testwasm.Grow), 16, phase.OutcomeMemoryLimit, -1, false},
		{"output flood", testwasm.Bytes(t, testwasm.Flood), 16, phase.OutcomeTimeout, -1, true},
		{"trap", testwasm.Bytes(t, testwasm.Trap), 16, phase.OutcomeTrapped, -1, false},
		{"exit 7", testwasm.Bytes(t, testwasm.Exit7), 16, phase.OutcomeExited, 7, false},
		{"declared memory over the limit", testwasm.Bytes(t, testwasm.BigMem), 64, phase.OutcomeMemoryLimit, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jobSpec{module: tc.module, mf: short(tc.module, tc.mem, tc.outcome)}
			x := c.run(t, j)
			require.NotNil(t, x.result, "%v", x.err)
			assert.Equal(t, tc.outcome, x.result.Outcome, x.result.Detail)
			assert.Equal(t, tc.exit, x.result.ExitCode)
			assert.Equal(t, tc.truncated, x.result.StdoutTruncated)
			if tc.truncated {
				assert.Len(t, x.stdout, 4096, "stdout is capped at the accepted stdout_cap")
			}
			c.verify(t, x, j)

			// The node stays healthy: the next job runs normally.
			next := c.run(t, jobSpec{module: testwasm.Bytes(t, testwasm.Tiny)})
			require.NotNil(t, next.result, "%v", next.err)
			assert.Equal(t, "ok\n", string(next.stdout))
		})
	}
	assert.Equal(t, 2.0, jobsCount(t, n.m, phase.OutcomeTimeout))
	assert.Equal(t, 2.0, jobsCount(t, n.m, phase.OutcomeMemoryLimit))
}

func TestEXEC7_JOB11_LimitsClamped(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.MaxMemoryMB = 32; c.MaxTimeoutSeconds = 2 })
	c := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	j := jobSpec{module: tiny, mf: manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(tiny), CPUCores: 1, MemoryMB: 200, TimeoutSeconds: 600}}
	x := c.run(t, j)
	require.NotNil(t, x.result, "%v", x.err)
	assert.Equal(t, 32, x.accepted.Limits.MemoryMB)
	assert.Equal(t, int64(2000), x.accepted.Limits.TimeoutMS)
	rc := c.verify(t, x, j)
	assert.Equal(t, 32, rc.Limits.MemoryMB)
}

func TestJOB15_ReplayedNonce(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Tiny), nonce: phase.NewNonce()}
	first := c.run(t, j)
	require.NotNil(t, first.result, "%v", first.err)
	second := c.run(t, j)
	require.NotNil(t, second.rejected, "%v", second.err)
	assert.Equal(t, phase.ReasonReplayedNonce, second.rejected.Reason)
	// Another peer replaying the same offer is refused too.
	third := n.client(t).run(t, j)
	require.NotNil(t, third.rejected, "%v", third.err)
	assert.Equal(t, phase.ReasonReplayedNonce, third.rejected.Reason)
	assert.Equal(t, 2.0, rejections(t, n.m, phase.ReasonReplayedNonce))
}

// rawStream opens a job stream and writes raw bytes on it.
func rawStream(t *testing.T, c *testClient, b []byte) *clientExchange {
	t.Helper()
	x := c.open(t)
	_, err := x.s.Write(b)
	require.NoError(t, err)
	return x
}

func frame(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func TestJOB3_JOB13_BadOfferFrames(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	oversized := frame(bytes.Repeat([]byte("x"), phase.MaxControlFrame+1))
	for _, tc := range []struct {
		name   string
		bytes  []byte
		reject string // want rejected with this reason
		code   string // or an error with this code
	}{
		{"oversized control frame", oversized, phase.ReasonTooLarge, ""},
		{"malformed JSON", frame([]byte(`{"type":"offer",`)), phase.ReasonInvalidRequest, ""},
		{"not an object", frame([]byte(`[1,2]`)), phase.ReasonInvalidRequest, ""},
		{"offer missing fields", frame([]byte(`{"type":"offer","job_id":"x"}`)), phase.ReasonInvalidRequest, ""},
		{"non-minimal varint", []byte{0x80, 0x00}, "", phase.CodeProtocol},
		{"payload before offer", frame([]byte(`{"type":"payload","args":[]}`)), "", phase.CodeProtocol},
		{"truncated offer frame", []byte{0x40, '{'}, "", phase.CodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := rawStream(t, c, tc.bytes)
			_ = x.s.CloseWrite()
			msg, err := wire.ReadControl(x.br)
			require.NoError(t, err)
			if tc.reject != "" {
				rej, ok := msg.(*wire.Rejected)
				require.True(t, ok, "got %#v", msg)
				assert.Equal(t, tc.reject, rej.Reason)
				assert.NotEmpty(t, rej.Detail)
			} else {
				em, ok := msg.(*wire.ErrorMsg)
				require.True(t, ok, "got %#v", msg)
				assert.Equal(t, tc.code, em.Code)
			}
			// Then the node ends the stream.
			_, err = x.br.ReadByte()
			require.Error(t, err)

			ok := c.run(t, jobSpec{module: tiny})
			require.NotNil(t, ok.result, "server must still serve: %v", ok.err)
		})
	}
	// A rejected offer names the bad field.
	x := c.run(t, jobSpec{module: tiny, edit: func(o *wire.Offer) { o.Manifest.MemoryMB = 0 }})
	require.NotNil(t, x.rejected, "%v", x.err)
	assert.Equal(t, phase.ReasonInvalidRequest, x.rejected.Reason)
	assert.Contains(t, x.rejected.Detail, "memory_mb")
}

func TestJOB6_JOB7_JOB13_BadPayloadFrames(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  string
	}{
		{"oversized control frame", frame(bytes.Repeat([]byte(" "), phase.MaxControlFrame+1)), phase.CodeTooLarge},
		{"malformed JSON", frame([]byte(`{"type":"payload"`)), phase.CodeInvalidRequest},
		{"second offer", frame([]byte(`{"type":"caps_request"}`)), phase.CodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := c.open(t)
			x.sendOffer(t, jobSpec{module: tiny})
			require.NotNil(t, x.accepted)
			_, err := x.s.Write(tc.bytes)
			require.NoError(t, err)
			_ = x.s.CloseWrite()
			x.readResult(t)
			assert.Equal(t, tc.code, peerErr(t, x.err).Code)
			eventually(t, 5*time.Second, func() bool { r, q := n.srv.Load(); return r == 0 && q == 0 }, "job slot not released")

			ok := c.run(t, jobSpec{module: tiny})
			require.NotNil(t, ok.result, "server must still serve: %v", ok.err)
		})
	}
}

func TestWIRE7_TruncatedStream(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	hello := testwasm.Bytes(t, testwasm.Hello)
	j := jobSpec{module: hello}
	x := c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)
	require.NoError(t, wire.WriteControl(x.s, wire.Payload{Args: []string{}}))
	require.NoError(t, wire.WriteFrameHeader(x.s, int64(len(hello))))
	_, err := x.s.Write(hello[:len(hello)/2])
	require.NoError(t, err)
	require.NoError(t, x.s.CloseWrite()) // the client gives up mid-module
	x.readResult(t)
	em := peerErr(t, x.err)
	assert.Equal(t, phase.CodeProtocol, em.Code)
	assert.Contains(t, em.Detail, "module")
	eventually(t, 5*time.Second, func() bool { r, q := n.srv.Load(); return r == 0 && q == 0 }, "job slot not released")
	assert.Equal(t, 0, n.srv.Store().Len())

	// And a client that resets mid-module.
	x = c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)
	require.NoError(t, wire.WriteControl(x.s, wire.Payload{Args: []string{}}))
	require.NoError(t, wire.WriteFrameHeader(x.s, int64(len(hello))))
	_, err = x.s.Write(hello[:1000])
	require.NoError(t, err)
	require.NoError(t, x.s.Reset())
	eventually(t, 5*time.Second, func() bool { r, q := n.srv.Load(); return r == 0 && q == 0 }, "job slot not released after reset")

	ok := c.run(t, jobSpec{module: testwasm.Bytes(t, testwasm.Tiny)})
	require.NotNil(t, ok.result, "%v", ok.err)
}

func TestJOB14_StalledPeerDoesNotBlockOthers(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) {
		c.StepTimeout = config.Duration(4 * time.Second)
		c.MaxConcurrent = 2
		c.MaxPerPeer = 2
	})
	staller := n.client(t)
	tiny := testwasm.Bytes(t, testwasm.Tiny)

	// One stream that never sends its offer, two accepted offers whose
	// payload never comes (the peer's whole per-peer allowance).
	hello := jobSpec{module: testwasm.Bytes(t, testwasm.Hello), args: []string{"abc"}}
	other := n.client(t)
	warm := other.run(t, hello) // compile hello before the clock matters
	require.NotNil(t, warm.result, "%v %v", warm.rejected, warm.err)

	silent := rawStream(t, staller, []byte{0x80}) // half a frame length, then nothing
	var stalled []*clientExchange
	for range 2 {
		x := staller.open(t)
		x.sendOffer(t, jobSpec{module: tiny})
		require.NotNil(t, x.accepted, "%v %v", x.rejected, x.err)
		stalled = append(stalled, x)
	}
	// Accepted streams whose payload has not come hold no job slot.
	_, queued := n.srv.Load()
	require.Equal(t, 0, queued)
	require.Equal(t, 2, n.srv.UploadStats().Uploads)

	// Another peer is served meanwhile, hello and all.
	j := hello
	x := other.run(t, j)
	require.NotNil(t, x.result, "%v %v", x.rejected, x.err)
	assert.Equal(t, "cba\n", string(x.stdout))
	other.verify(t, x, j)
	assert.Equal(t, 2, n.srv.UploadStats().Uploads, "the stalled jobs are still waiting for their payload, not cut early")

	// The stallers are cut at the step deadline with a timeout error.
	for _, sx := range append(stalled, silent) {
		_, err := wire.ReadExpect(sx.br, wire.TypeResult)
		assert.Equal(t, phase.CodeTimeout, peerErr(t, err).Code)
	}
	eventually(t, 5*time.Second, func() bool { return n.srv.UploadStats().Uploads == 0 }, "stalled jobs not released")
}

func TestQueueFull(t *testing.T) {
	t.Run("per peer", func(t *testing.T) {
		n := newTestNode(t, func(c *config.Jobs) { c.MaxConcurrent = 4; c.MaxPerPeer = 1 })
		a := n.client(t)
		tiny := testwasm.Bytes(t, testwasm.Tiny)
		held := a.open(t)
		held.sendOffer(t, jobSpec{module: tiny})
		require.NotNil(t, held.accepted)

		j := jobSpec{module: tiny, nonce: phase.NewNonce()}
		x := a.run(t, j)
		require.NotNil(t, x.rejected, "%v", x.err)
		assert.Equal(t, phase.ReasonQueueFull, x.rejected.Reason)
		assert.Contains(t, x.rejected.Detail, "in flight")

		// Another peer still gets in.
		b := n.client(t).run(t, jobSpec{module: tiny})
		require.NotNil(t, b.result, "%v %v", b.rejected, b.err)

		// Once the held job completes, the same offer (same nonce: a
		// rejected nonce is not recorded) is accepted.
		held.sendPayload(t, jobSpec{module: tiny})
		held.readResult(t)
		require.NotNil(t, held.result, "%v", held.err)
		x = a.run(t, j)
		require.NotNil(t, x.result, "%v %v", x.rejected, x.err)
		assert.Equal(t, 1.0, rejections(t, n.m, phase.ReasonQueueFull))
	})
	t.Run("global", func(t *testing.T) {
		n := newTestNode(t, func(c *config.Jobs) { c.MaxConcurrent = 1; c.MaxPerPeer = 1 })
		tiny := testwasm.Bytes(t, testwasm.Tiny)
		loop := testwasm.Bytes(t, testwasm.Loop)
		j := jobSpec{module: loop, mf: manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(loop), CPUCores: 1, MemoryMB: 16, TimeoutSeconds: 3}}
		// An accepted stream that has not sent its payload takes no place.
		held := n.client(t).open(t)
		held.sendOffer(t, jobSpec{module: tiny})
		require.NotNil(t, held.accepted, "%v %v", held.rejected, held.err)
		for range 2 { // one running slot plus one queue place, taken by jobs whose payload arrived
			x := n.client(t).open(t)
			x.sendOffer(t, j)
			require.NotNil(t, x.accepted, "%v %v", x.rejected, x.err)
			x.sendPayload(t, j)
		}
		eventually(t, 5*time.Second, func() bool { r, q := n.srv.Load(); return r == 1 && q == 1 }, "jobs not queued")
		x := n.client(t).run(t, jobSpec{module: tiny})
		require.NotNil(t, x.rejected, "%v", x.err)
		assert.Equal(t, phase.ReasonQueueFull, x.rejected.Reason)
		assert.Contains(t, x.rejected.Detail, "busy")
	})
}

func TestAuthorization(t *testing.T) {
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	t.Run("denylist", func(t *testing.T) {
		n := newTestNode(t, nil)
		bad, good := n.client(t), n.client(t)
		n.srv.UpdatePolicy(func(p *Policy) { p.Deny[bad.h.ID()] = true })
		x := bad.run(t, jobSpec{module: tiny})
		require.NotNil(t, x.rejected, "%v", x.err)
		assert.Equal(t, phase.ReasonUnauthorized, x.rejected.Reason)
		y := good.run(t, jobSpec{module: tiny})
		require.NotNil(t, y.result, "%v %v", y.rejected, y.err)
	})
	t.Run("allowlist from config", func(t *testing.T) {
		allowedID := newHost(t, nil)
		n := newTestNode(t, func(c *config.Jobs) {
			c.Auth = config.Auth{Mode: AuthAllowlist, Allow: []string{allowedID.ID().String()}}
		})
		stranger := n.client(t)
		x := stranger.run(t, jobSpec{module: tiny})
		require.NotNil(t, x.rejected, "%v", x.err)
		assert.Equal(t, phase.ReasonUnauthorized, x.rejected.Reason)
		assert.Contains(t, x.rejected.Detail, "allowlist")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, allowedID.Connect(ctx, n.host.Peerstore().PeerInfo(n.host.ID())))
		allowed := &testClient{h: allowedID, node: n.host.ID()}
		y := allowed.run(t, jobSpec{module: tiny})
		require.NotNil(t, y.result, "%v %v", y.rejected, y.err)

		// Deny wins over allow.
		n.srv.UpdatePolicy(func(p *Policy) { p.Deny[allowedID.ID()] = true })
		z := allowed.run(t, jobSpec{module: tiny})
		require.NotNil(t, z.rejected, "%v", z.err)
		assert.Equal(t, phase.ReasonUnauthorized, z.rejected.Reason)
		assert.Equal(t, 2.0, rejections(t, n.m, phase.ReasonUnauthorized))
	})
}

func TestLoadAndClose(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.MaxConcurrent = 2 })
	var changes atomic.Int64
	n.srv.OnLoadChange(func() { changes.Add(1) })
	c := n.client(t)
	loop := testwasm.Bytes(t, testwasm.Loop)
	j := jobSpec{module: loop, mf: manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(loop), CPUCores: 1, MemoryMB: 16, TimeoutSeconds: 10}}
	x := c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)
	r, q := n.srv.Load()
	assert.Equal(t, [2]int{0, 0}, [2]int{r, q}, "an accepted stream holds no job slot until its payload arrived")
	assert.Equal(t, 1, n.srv.UploadStats().Uploads)
	x.sendPayload(t, j)
	eventually(t, 5*time.Second, func() bool { r, _ := n.srv.Load(); return r == 1 }, "job never started")
	assert.GreaterOrEqual(t, changes.Load(), int64(2), "accepted and started both change the load")

	// Close gives up waiting for the 10 s loop, stops it and resets its stream.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := n.srv.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = io.ReadAll(x.br)
	require.Error(t, err, "the running job's stream is reset")
	r, q = n.srv.Load()
	assert.Equal(t, [2]int{0, 0}, [2]int{r, q})

	// No new streams after Close.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	s, err := c.h.NewStream(sctx, c.node, phase.ProtocolJob)
	if err == nil { // lazy protocol negotiation: the failure shows on first read
		_ = wire.WriteControl(s, wire.CapsRequest{})
		_, err = wire.ReadControl(s)
		_ = s.Reset()
	}
	require.Error(t, err)
	require.NoError(t, n.srv.Close(context.Background()), "closing twice is fine")
}

func TestCloseWaitsForJobs(t *testing.T) {
	n := newTestNode(t, nil)
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Hello), args: []string{"xyz"}}
	x := c.open(t)
	x.sendOffer(t, j)
	require.NotNil(t, x.accepted)

	closed := make(chan error, 1)
	go func() { closed <- n.srv.Close(context.Background()) }()
	// A graceful close lets the accepted job finish and deliver its result.
	x.sendPayload(t, j)
	x.readResult(t)
	require.NotNil(t, x.result, "%v", x.err)
	assert.Equal(t, "zyx\n", string(x.stdout))
	c.verify(t, x, j)
	require.NoError(t, <-closed)
}

func TestNewServerErrors(t *testing.T) {
	base := newTestNode(t, nil) // a working host and identity to borrow
	exec, err := wasm.New(context.Background(), wasm.Config{})
	require.NoError(t, err)
	defer exec.Close(context.Background())
	other := newHost(t, nil)
	for _, tc := range []struct {
		name string
		make func() (*Server, error)
		want string
	}{
		{"nil host", func() (*Server, error) {
			return NewServer(Options{Host: nil, Exec: exec, Identity: base.id, Config: testConfig()})
		}, "nil host"},
		{"nil executor", func() (*Server, error) {
			return NewServer(Options{Host: base.host, Exec: nil, Identity: base.id, Config: testConfig()})
		}, "nil executor"},
		{"identity of another peer", func() (*Server, error) {
			return NewServer(Options{Host: other, Exec: exec, Identity: base.id, Config: testConfig()})
		}, "not the host's peer ID"},
		{"bad config", func() (*Server, error) {
			c := testConfig()
			c.MaxConcurrent = 0
			return NewServer(Options{Host: base.host, Exec: exec, Identity: base.id, Config: c})
		}, "jobs.max_concurrent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.make()
			require.Error(t, err)
			assert.True(t, strings.Contains(err.Error(), tc.want), err.Error())
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m), "log line %q", l)
		out = append(out, m)
	}
	return out
}

func TestJobLogs(t *testing.T) {
	var buf syncBuffer
	n := newTestNodeLog(t, nil, slog.New(slog.NewJSONHandler(&buf, nil)))
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Hello), args: []string{"TUPTUO-TERCES\x1b[31m"}}
	x := c.run(t, j)
	require.NotNil(t, x.result, "%v", x.err)
	require.Contains(t, string(x.stdout), "SECRET-OUTPUT")
	rej := c.run(t, jobSpec{module: j.module, nonce: x.offer.Nonce})
	require.NotNil(t, rej.rejected)

	// job_finished is logged after the last frame is on the wire.
	var events map[string]map[string]any
	require.Eventually(t, func() bool {
		events = map[string]map[string]any{}
		for _, l := range buf.lines(t) {
			ev, ok := l["event"].(string)
			require.True(t, ok, "every line has an event: %v", l)
			events[ev] = l
		}
		return events["job_finished"] != nil
	}, 5*time.Second, 5*time.Millisecond)
	require.Contains(t, events, "job_accepted")
	require.Contains(t, events, "job_rejected")
	fin := events["job_finished"]
	require.NotNil(t, fin)
	assert.Equal(t, x.offer.JobID, fin["job_id"])
	assert.Equal(t, c.h.ID().String(), fin["peer"])
	assert.Equal(t, phase.OutcomeExited, fin["outcome"])
	assert.Contains(t, fin, "wall_ms")
	assert.Equal(t, phase.ReasonReplayedNonce, events["job_rejected"]["reason"])
	buf.mu.Lock()
	raw := buf.b.String()
	buf.mu.Unlock()
	assert.NotContains(t, raw, "SECRET-OUTPUT", "guest output is never logged")
	assert.NotContains(t, raw, "\x1b", "no raw control bytes in the log")
}

func TestJOB10_ZeroOutputCaps(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.StdoutCap = 0; c.StderrCap = 0 })
	c := n.client(t)
	j := jobSpec{module: testwasm.Bytes(t, testwasm.Exit7)}
	x := c.run(t, j)
	require.NotNil(t, x.result, "%v", x.err)
	assert.Zero(t, x.accepted.Limits.StdoutCap)
	assert.Empty(t, x.stderr, "a zero cap carries nothing")
	assert.True(t, x.result.StderrTruncated, `the guest wrote "bye"`)
	assert.False(t, x.result.StdoutTruncated)
	rc := c.verify(t, x, j)
	assert.Zero(t, rc.Limits.StderrCap)
}

package node_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

// The tests in this file attack one node on loopback the way an outsider
// would: every attacker identity is a fresh key (identities are free), and
// an honest client keeps submitting meanwhile.

// sybil is a fresh identity connected to the target node.
func sybil(tb testing.TB, target *node.Node) host.Host {
	tb.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(tb, h.Connect(ctx, peer.AddrInfo{ID: target.Host.ID(), Addrs: target.Host.Addrs()}))
	return h
}

// attackOffer is a valid offer for a module of size bytes the node does
// not have (a random hash), with no stdin.
func attackOffer(size int64) wire.Offer {
	junk := make([]byte, 32)
	_, _ = rand.Read(junk)
	return wire.Offer{
		JobID: phase.NewJobID(), Nonce: phase.NewNonce(),
		Manifest:   manifest.Manifest{Version: "0.1", ModuleHash: phase.HashBytes(junk), CPUCores: 1, MemoryMB: 64, TimeoutSeconds: 10},
		ModuleSize: size,
	}
}

// holdAccepted keeps one accepted stream open on h at a time until ctx
// ends: it offers, and when accepted sends the payload message and send
// bytes of the module, then stalls until the node drops the stream, and
// starts again at once (as finding 1: a slot released by the step timeout
// is taken again). held counts the streams accepted and stalled now.
func holdAccepted(ctx context.Context, h host.Host, target peer.ID, declared, send int64, held *atomic.Int64) {
	chunk := make([]byte, 256<<10)
	for ctx.Err() == nil {
		s, err := h.NewStream(ctx, target, phase.ProtocolJob)
		if err != nil {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		sc := session.NewClient(s, wire.Caps{})
		acc, _, err := sc.Offer(attackOffer(declared), 10*time.Second)
		if err != nil || acc == nil {
			_ = s.Reset()
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		_ = s.SetDeadline(time.Time{})
		held.Add(1)
		stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
		if send > 0 {
			frame, _ := wire.AppendControl(nil, wire.Payload{Args: []string{}})
			frame = binary.AppendUvarint(frame, uint64(declared)) // the module frame's length
			if _, err := s.Write(frame); err == nil {
				for left := send; left > 0 && ctx.Err() == nil; {
					n, err := s.Write(chunk[:min(left, int64(len(chunk)))])
					if err != nil {
						break
					}
					left -= int64(n)
				}
			}
		}
		_, _ = s.Read(make([]byte, 1)) // stall until the node ends it
		stop()
		held.Add(-1)
		_ = s.Reset()
	}
}

// waitHeld waits up to 15 s for want streams to be held, and returns how
// many are.
func waitHeld(held *atomic.Int64, want int64) int64 {
	for end := time.Now().Add(15 * time.Second); held.Load() < want && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	return held.Load()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// honest submits tiny jobs one after another through the client SDK until
// ctx ends, and counts those that succeeded.
type honest struct {
	ok, total atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
	failures  []string
}

func (hc *honest) run(ctx context.Context, c *client.Client, target *node.Node, module []byte) {
	for ctx.Err() == nil {
		hc.once(c, target, module)
	}
}

func (hc *honest) once(c *client.Client, target *node.Node, module []byte) {
	start := time.Now()
	jctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Run(jctx, client.Job{Module: module, TimeoutSeconds: 10, MemoryMB: 16, Attempts: 1}, clientOptsFor(target))
	hc.total.Add(1)
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if err == nil && res.Outcome == phase.OutcomeExited && res.ExitCode == 0 {
		hc.ok.Add(1)
		hc.latencies = append(hc.latencies, time.Since(start))
		return
	}
	hc.failures = append(hc.failures, fmt.Sprint(err))
}

func (hc *honest) rate() float64 {
	if hc.total.Load() == 0 {
		return 0
	}
	return float64(hc.ok.Load()) / float64(hc.total.Load())
}

// percentile of the successful latencies (p in 0–100).
func (hc *honest) percentile(p int) time.Duration {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if len(hc.latencies) == 0 {
		return 0
	}
	l := slices.Clone(hc.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*p/100)]
}

func honestClient(tb testing.TB, target *node.Node) *client.Client {
	return &client.Client{Host: sybil(tb, target)}
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Finding: identities are free, so accepted streams that never send their
// module must not hold the node's job slots. 4 and 16 identities each hold
// jobs.max_per_peer accepted streams, retaken as soon as the node drops
// them; an honest client keeps submitting.
func TestAttackAcceptedStreamsHoldNoSlot(t *testing.T) {
	for _, identities := range []int{4, 16} {
		t.Run(fmt.Sprintf("%d identities", identities), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Jobs.StepTimeout = config.Duration(5 * time.Second)
			target := startNode(t, cfg)
			tiny := testwasm.Bytes(t, testwasm.Tiny)
			c := honestClient(t, target)
			var warm honest
			warm.once(c, target, tiny)
			require.Equal(t, int64(1), warm.ok.Load(), "before the attack: %v", warm.failures)

			ctx, stop := context.WithCancel(context.Background())
			var held atomic.Int64
			var wg sync.WaitGroup
			for range identities {
				h := sybil(t, target)
				for range cfg.Jobs.MaxPerPeer {
					wg.Go(func() { holdAccepted(ctx, h, target.Host.ID(), 1<<20, 0, &held) })
				}
			}
			want := int64(identities * cfg.Jobs.MaxPerPeer)
			assert.GreaterOrEqual(t, waitHeld(&held, want), want, "accepted streams that send nothing are cheap: the node takes them all")

			var hc honest
			hctx, hstop := context.WithTimeout(context.Background(), 5*time.Second)
			hc.run(hctx, c, target, tiny)
			hstop()
			stop()
			wg.Wait()
			t.Logf("honest jobs during the attack: %d of %d succeeded; failures: %v", hc.ok.Load(), hc.total.Load(), hc.failures)
			assert.GreaterOrEqual(t, hc.total.Load(), int64(5))
			assert.GreaterOrEqual(t, hc.rate(), 0.95, "honest success with %d identities holding accepted streams", identities)
		})
	}
}

// Finding: declared sizes must not become memory. 32 accepted streams (8
// identities × 4) declare 64 MiB modules, send 60 MB each and stall. The
// bytes the node buffers stay within jobs.upload_buffer_mb, the heap stays
// far below the 1.9 GB they send, and honest jobs still pass.
func TestAttackDeclaredSizesAreNotMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends up to 2 GB over loopback")
	}
	cfg := testConfig(t)
	cfg.Jobs.MaxStdinBytes = 1 << 20
	cfg.Jobs.UploadBufferMB = 96
	target := startNode(t, cfg)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	c := honestClient(t, target)
	var warm honest
	warm.once(c, target, tiny)
	require.Equal(t, int64(1), warm.ok.Load(), "before the attack: %v", warm.failures)
	base := heapInUse()

	ctx, stop := context.WithCancel(context.Background())
	var held atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		h := sybil(t, target)
		for range 4 {
			wg.Go(func() { holdAccepted(ctx, h, target.Host.ID(), 64<<20, 60_000_000, &held) })
		}
	}
	t.Logf("%d streams accepted and holding", waitHeld(&held, 32))
	var peak int64
	var hc honest
	hctx, hstop := context.WithTimeout(context.Background(), 5*time.Second)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for hctx.Err() == nil {
			peak = max(peak, heapInUse()-base)
			sleepCtx(hctx, 500*time.Millisecond)
		}
	}()
	hc.run(hctx, c, target, tiny)
	hstop()
	<-sampled
	stats := target.Jobs.UploadStats()
	stop()
	wg.Wait()
	t.Logf("heap growth peak %d MiB; upload buffer peak %d MiB of %d; uploads dropped %d; honest %d of %d",
		peak>>20, stats.BufferedPeak>>20, stats.BufferMax>>20, stats.UploadsDropped, hc.ok.Load(), hc.total.Load())
	assert.LessOrEqual(t, stats.BufferedPeak, stats.BufferMax, "payload bytes buffered beyond jobs.upload_buffer_mb")
	assert.Less(t, peak, int64(512<<20), "the node's heap grew with the declared sizes")
	assert.GreaterOrEqual(t, hc.rate(), 0.95, "honest success while 32 streams hold 60 MB each: failures %v", hc.failures)
}

// libp2p's resource manager caps one peer's job streams at
// jobs.max_per_peer + 4, before the job server sees them: streams that never
// send an offer cannot pile up from one identity.
func TestAttackJobStreamsCappedPerPeer(t *testing.T) {
	cfg := testConfig(t)
	target := startNode(t, cfg)
	h := sybil(t, target)
	limit := cfg.Jobs.MaxPerPeer + 4
	kept := 0
	for range limit + 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := h.NewStream(ctx, target.Host.ID(), phase.ProtocolJob)
		cancel()
		if err != nil {
			continue
		}
		t.Cleanup(func() { _ = s.Reset() })
		_, _ = s.Write([]byte{0x80}) // half a frame length: the node waits for the rest
		_ = s.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = s.Read(make([]byte, 1))
		if session.IsTimeout(err) {
			kept++
		}
	}
	assert.Equal(t, limit, kept, "job streams one peer holds open")
}

package node_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

// hostile is a mix of attacks run all at once against one node, each by
// its own fresh identities.
type hostile struct {
	Stallers    int // identities whose streams never send an offer
	Holders     int // identities holding jobs.max_per_peer accepted streams that send nothing
	Trickle     int // identities holding accepted streams that send 8 MB and stall
	Junk        int // identities sending malformed and oversized frames
	Compilers   int // identities submitting compile-heavy modules, each distinct, one at a time
	Replayers   int // identities replaying a nonce the node has seen
	compileHeat int // functions in each compile-heavy module
}

// counts of what the attackers got, for the report.
type hostileCounts struct {
	opened, accepted, rejected, replayRefused, compiled atomic.Int64
}

// run starts every attack and returns once ctx ends and every attacker
// goroutine has stopped.
func (a hostile) run(ctx context.Context, tb testing.TB, target *node.Node, jc config.Jobs, c *hostileCounts) {
	id := target.Host.ID()
	var wg sync.WaitGroup
	each := func(n, streams int, f func(h host.Host)) {
		for range n {
			h := sybil(tb, target)
			for range streams {
				wg.Go(func() { f(h) })
			}
		}
	}
	perPeer := jc.MaxPerPeer
	var held atomic.Int64
	each(a.Stallers, perPeer, func(h host.Host) {
		for ctx.Err() == nil {
			s, err := h.NewStream(ctx, id, phase.ProtocolJob)
			if err != nil {
				sleepCtx(ctx, 50*time.Millisecond)
				continue
			}
			c.opened.Add(1)
			stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
			_, _ = s.Write([]byte{0x80}) // half a frame length, then nothing
			_, _ = io.Copy(io.Discard, s)
			stop()
			_ = s.Reset()
		}
	})
	each(a.Holders, perPeer, func(h host.Host) { holdAccepted(ctx, h, id, 64<<20, 0, &held) })
	each(a.Trickle, perPeer, func(h host.Host) { holdAccepted(ctx, h, id, 64<<20, 8<<20, &held) })
	junk := [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // a length overflowing 64 bits
		binary.AppendUvarint(nil, 1<<20),                                   // a control frame over the cap
		append(binary.AppendUvarint(nil, 9), `{"type":1`...),               // not JSON
		append(binary.AppendUvarint(nil, 16), `{"type":"offer"}`...),       // an offer with nothing in it
	}
	each(a.Junk, perPeer, func(h host.Host) {
		for i := 0; ctx.Err() == nil; i++ {
			s, err := h.NewStream(ctx, id, phase.ProtocolJob)
			if err != nil {
				sleepCtx(ctx, 50*time.Millisecond)
				continue
			}
			c.opened.Add(1)
			_ = s.SetDeadline(time.Now().Add(5 * time.Second))
			if i%5 == 4 { // an offer over the node's module limit
				o := attackOffer(jc.MaxModuleBytes + 1)
				if _, rej, _ := session.NewClient(s, wire.Caps{}).Offer(o, 5*time.Second); rej != nil {
					c.rejected.Add(1)
				}
			} else {
				_, _ = s.Write(junk[i%len(junk)])
				_, _ = io.Copy(io.Discard, s)
			}
			_ = s.Reset()
		}
	})
	each(a.Compilers, 1, func(h host.Host) {
		for ctx.Err() == nil {
			if runAttackJob(ctx, h, id, heavyModule(a.compileHeat), "") {
				c.compiled.Add(1)
			}
		}
	})
	each(a.Replayers, 1, func(h host.Host) {
		nonce := phase.NewNonce()
		runAttackJob(ctx, h, id, testwasm.Bytes(tb, testwasm.Tiny), nonce)
		for ctx.Err() == nil {
			s, err := h.NewStream(ctx, id, phase.ProtocolJob)
			if err != nil {
				sleepCtx(ctx, 50*time.Millisecond)
				continue
			}
			o := attackOffer(100)
			o.Nonce = nonce
			if _, rej, _ := session.NewClient(s, wire.Caps{}).Offer(o, 5*time.Second); rej != nil && rej.Reason == phase.ReasonReplayedNonce {
				c.replayRefused.Add(1)
			}
			_ = s.Reset()
		}
	})
	<-ctx.Done()
	wg.Wait()
}

// runAttackJob runs one whole job with nonce ("": fresh) and reports
// whether it got a result.
func runAttackJob(ctx context.Context, h host.Host, id peer.ID, module []byte, nonce string) bool {
	s, err := h.NewStream(ctx, id, phase.ProtocolJob)
	if err != nil {
		sleepCtx(ctx, 50*time.Millisecond)
		return false
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if nonce == "" {
		nonce = phase.NewNonce()
	}
	sc := session.NewClient(s, wire.Caps{})
	o := wire.Offer{JobID: phase.NewJobID(), Nonce: nonce, ModuleSize: int64(len(module)),
		Manifest: manifest.Manifest{Version: "0.1", ModuleHash: phase.HashBytes(module), CPUCores: 1, MemoryMB: 16, TimeoutSeconds: 5}}
	acc, _, err := sc.Offer(o, 10*time.Second)
	if err != nil || acc == nil {
		sleepCtx(ctx, 100*time.Millisecond)
		return false
	}
	deadline := time.Now().Add(60 * time.Second)
	if err := sc.Send([]string{}, module, nil, deadline); err != nil {
		return false
	}
	_, err = sc.Result(deadline, 0, nil)
	return err == nil
}

// heavyModule is a valid module of n functions with long straight-line
// bodies, slow to compile, and distinct each time (a random custom
// section), so the node's compile cache never saves it the work.
func heavyModule(n int) []byte {
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, body []byte) {
		m = append(m, id)
		m = binary.AppendUvarint(m, uint64(len(body)))
		m = append(m, body...)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	section(0, append([]byte{4, 's', 'a', 'l', 't'}, salt...)) // custom section "salt"
	section(1, []byte{1, 0x60, 0, 0})                          // one type: () -> ()
	funcs := binary.AppendUvarint(nil, uint64(n))
	for range n {
		funcs = append(funcs, 0)
	}
	section(3, funcs)
	section(7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...)) // export _start = func 0
	body := []byte{0}                                                   // no locals
	for i := range 200 {
		body = append(body, 0x41, byte(i%64), 0x1a) // i32.const; drop
	}
	body = append(body, 0x0b)
	code := binary.AppendUvarint(nil, uint64(n))
	for range n {
		code = binary.AppendUvarint(code, uint64(len(body)))
		code = append(code, body...)
	}
	section(10, code)
	return m
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// peakRSS is this process's peak resident set (VmHWM), 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// hostileReport is what one hostile run measured.
type hostileReport struct {
	before, during        *honest
	heapGrowth            int64 // peak live heap above the idle node's
	goroutinesIdle        int   // before the attack
	goroutinesPeak        int
	goroutinesAfter       int // once the attackers are gone
	diskBytes             int64
	uploadPeak, bufferMax int64
	counts                *hostileCounts
}

// hostileRun measures an honest client for warmup, then during attack
// mix a for dur, then checks the node is back to idle.
func hostileRun(t *testing.T, cfg config.Config, a hostile, warmup, dur time.Duration) hostileReport {
	target := startNode(t, cfg)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	c := honestClient(t, target)
	r := hostileReport{before: &honest{}, during: &honest{}, counts: &hostileCounts{}}
	wctx, wstop := context.WithTimeout(context.Background(), warmup)
	r.before.run(wctx, c, target, tiny)
	wstop()
	require.Equal(t, r.before.total.Load(), r.before.ok.Load(), "honest jobs failed before the attack: %v", r.before.failures)
	r.goroutinesIdle = runtime.NumGoroutine()
	base := heapInUse()

	actx, astop := context.WithTimeout(context.Background(), dur)
	defer astop()
	hosts := &cleanup{} // attacker hosts are closed below, not at the end of the test
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(actx, hosts.tb(t), target, cfg.Jobs, r.counts)
	}()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for actx.Err() == nil {
			r.heapGrowth = max(r.heapGrowth, heapInUse()-base)
			r.goroutinesPeak = max(r.goroutinesPeak, runtime.NumGoroutine())
			sleepCtx(actx, 500*time.Millisecond)
		}
	}()
	time.Sleep(min(dur/5, 2*time.Second)) // let the attack build up
	r.during.run(actx, c, target, tiny)
	<-done
	<-sampled
	stats := target.Jobs.UploadStats()
	r.uploadPeak, r.bufferMax = stats.BufferedPeak, stats.BufferMax
	hosts.run()

	// Back to idle: no upload, no job, and the goroutines of the attack gone.
	assert.Eventually(t, func() bool {
		run, queued := target.Jobs.Load()
		return target.Jobs.UploadStats().Uploads == 0 && run == 0 && queued == 0
	}, 30*time.Second, 50*time.Millisecond, "the node still holds attack streams or jobs")
	assert.Eventually(t, func() bool {
		r.goroutinesAfter = runtime.NumGoroutine()
		return r.goroutinesAfter <= r.goroutinesIdle+20
	}, 30*time.Second, 100*time.Millisecond, "goroutines did not return to idle")
	r.diskBytes = dirBytes(cfg.DataDir)
	return r
}

// cleanup runs the attackers' cleanups (closing their hosts) when asked,
// rather than at the end of the test.
type cleanup struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanup) tb(t *testing.T) testing.TB { return &cleanupTB{T: t, c: c} }

func (c *cleanup) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

type cleanupTB struct {
	*testing.T
	c *cleanup
}

func (t *cleanupTB) Cleanup(f func()) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.fns = append(t.c.fns, f)
}

func (r hostileReport) log(t testing.TB) {
	t.Logf("honest before: %d/%d ok, p50 %v p99 %v", r.before.ok.Load(), r.before.total.Load(), r.before.percentile(50), r.before.percentile(99))
	t.Logf("honest during: %d/%d ok, p50 %v p99 %v; failures %v", r.during.ok.Load(), r.during.total.Load(), r.during.percentile(50), r.during.percentile(99), r.during.failures)
	t.Logf("attack: %d streams opened by stallers and junk, %d oversized offers refused, %d replays refused, %d compile-heavy jobs run",
		r.counts.opened.Load(), r.counts.rejected.Load(), r.counts.replayRefused.Load(), r.counts.compiled.Load())
	t.Logf("heap growth peak %d MiB; upload buffer peak %d of %d MiB; goroutines idle %d, peak %d, after %d; data dir %d MiB; process peak RSS %d MiB",
		r.heapGrowth>>20, r.uploadPeak>>20, r.bufferMax>>20, r.goroutinesIdle, r.goroutinesPeak, r.goroutinesAfter, r.diskBytes>>20, peakRSS()>>20)
}

// The short hostile-load test: every attack at once for 12 s.
func TestHostileLoad(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jobs.StepTimeout = config.Duration(3 * time.Second)
	// Small caches, so that the heap bound below is set by the node's
	// configured bounds and not by how many modules a fast machine can
	// push through the caches in 12 s.
	cfg.Jobs.ModuleStoreMB = 64
	cfg.Wasm.MemoryCacheMB = 64
	a := hostile{Stallers: 4, Holders: 8, Trickle: 2, Junk: 2, Compilers: 3, Replayers: 2, compileHeat: 2000}
	r := hostileRun(t, cfg, a, 2*time.Second, 12*time.Second)
	r.log(t)
	assert.GreaterOrEqual(t, r.during.total.Load(), int64(10))
	assert.Equal(t, r.during.total.Load(), r.during.ok.Load(), "every honest job succeeds during the attack")
	assert.Positive(t, r.counts.replayRefused.Load(), "replays were refused")
	assert.LessOrEqual(t, r.uploadPeak, r.bufferMax)
	// The node's memory bounds (uploads, raw modules, compiled code) plus
	// 256 MiB for work in progress: the compiles of the modules being run
	// (each heavy module's decoded and compiled forms are tens of MB while
	// in flight) and the attackers' own state, which shares this process.
	bound := int64(cfg.Jobs.UploadBufferMB+cfg.Jobs.ModuleStoreMB+cfg.Wasm.MemoryCacheMB+256) << 20
	assert.Less(t, r.heapGrowth, bound, "heap bounded during the attack")
}

package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// clientJob is one complete client-side job on a fresh stream over an open
// connection: offer, payload (module only if the node lacks it), result,
// output, and full receipt verification. It returns errors instead of
// failing, so benchmark goroutines can call it.
func clientJob(ctx context.Context, c *testClient, module []byte, mf manifest.Manifest, args []string, stdin []byte) ([]byte, error) {
	s, err := c.h.NewStream(ctx, c.node, phase.ProtocolJob)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	defer s.Reset() // no-op once both sides closed
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(s)
	offer := wire.Offer{JobID: NewJobID(), Nonce: phase.NewNonce(), Manifest: mf,
		ModuleSize: int64(len(module)), StdinSize: int64(len(stdin)), ArgsCount: len(args)}
	if err := wire.WriteControl(s, offer); err != nil {
		return nil, err
	}
	msg, err := wire.ReadExpect(br, wire.TypeAccepted)
	if err != nil {
		return nil, fmt.Errorf("offer: %w", err)
	}
	acc := msg.(*wire.Accepted)
	bw := bufio.NewWriter(s)
	if err := wire.WriteControl(bw, wire.Payload{Args: args}); err != nil {
		return nil, err
	}
	if !acc.HaveModule {
		if err := wire.WriteFrame(bw, module); err != nil {
			return nil, err
		}
	}
	if err := wire.WriteFrame(bw, stdin); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	msg, err = wire.ReadExpect(br, wire.TypeResult)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	res := msg.(*wire.Result)
	if err := acc.CheckResult(res); err != nil {
		return nil, err
	}
	caps := wire.DefaultCaps()
	stdout, err := wire.ReadDeclared(br, res.StdoutSize, caps.Stdout, wire.KindStdout)
	if err != nil {
		return nil, err
	}
	stderr, err := wire.ReadDeclared(br, res.StderrSize, caps.Stderr, wire.KindStderr)
	if err != nil {
		return nil, err
	}
	rc, err := receipt.Parse(res.Receipt)
	if err != nil {
		return nil, err
	}
	err = receipt.Verify(rc, receipt.Expect{
		PeerID: s.Conn().RemotePeer(), JobID: offer.JobID, Nonce: offer.Nonce, Requester: c.h.ID().String(),
		ModuleHash: mf.ModuleHash, InputHash: receipt.InputHash(args, stdin),
		Stdout: stdout, Stderr: stderr, CheckStdout: true, CheckStderr: true,
	})
	if err != nil {
		return nil, err
	}
	if res.Outcome != phase.OutcomeExited || rc.Outcome != res.Outcome {
		return nil, fmt.Errorf("outcome %s (receipt %s): %s", res.Outcome, rc.Outcome, res.Detail)
	}
	return stdout, nil
}

func benchManifest(module []byte) manifest.Manifest {
	return manifest.Manifest{Version: "0.1", ModuleHash: wasm.HashModule(module), CPUCores: 1, MemoryMB: 64, TimeoutSeconds: 10}
}

// benchSingle measures one client running jobs back to back against a node
// that already holds (and has compiled) the module. It reports the median
// besides Go's mean.
func benchSingle(b *testing.B, name string, args []string, want string) {
	n := newTestNode(b, nil)
	c := n.client(b)
	module := testwasm.Bytes(b, name)
	mf := benchManifest(module)
	ctx := context.Background()
	for range 3 { // store and compile the module, warm the connection
		out, err := clientJob(ctx, c, module, mf, args, nil)
		if err != nil || string(out) != want {
			b.Fatalf("warm-up: %q, %v", out, err)
		}
	}
	times := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		out, err := clientJob(ctx, c, module, mf, args, nil)
		times = append(times, time.Since(start))
		if err != nil || string(out) != want {
			b.Fatalf("job: %q, %v", out, err)
		}
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median/op")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "ms-p99/op")
}

// BenchmarkJobTinyKnownModule: connection open, module known to the node,
// the tiny module, receipt verified on the client side. Target ≤ 3 ms/op.
func BenchmarkJobTinyKnownModule(b *testing.B) {
	benchSingle(b, testwasm.Tiny, nil, "ok\n")
}

// BenchmarkJobHelloKnownModule: as above with the Go hello module (2.6 MB,
// a Go runtime start per job). Target ≤ 10 ms/op.
func BenchmarkJobHelloKnownModule(b *testing.B) {
	benchSingle(b, testwasm.Hello, []string{"Hello,", "World"}, "dlroW ,olleH\n")
}

// BenchmarkThroughput8Clients: 8 client hosts, one goroutine each, running
// the tiny module against one node as fast as they can. Server settings:
// max_concurrent 8, max_per_peer 4 (queue 8), module store on. Reports
// jobs/s; target ≥ 500 on 2 cores.
func BenchmarkThroughput8Clients(b *testing.B) {
	const clients = 8
	n := newTestNode(b, func(c *config.Jobs) { c.MaxConcurrent = 8; c.MaxPerPeer = 4 })
	module := testwasm.Bytes(b, testwasm.Tiny)
	mf := benchManifest(module)
	ctx := context.Background()
	cs := make([]*testClient, clients)
	for i := range cs {
		cs[i] = n.client(b)
		if _, err := clientJob(ctx, cs[i], module, mf, nil, nil); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for i, c := range cs {
		jobs := b.N / clients
		if i < b.N%clients {
			jobs++
		}
		wg.Go(func() {
			for range jobs {
				if _, err := clientJob(ctx, c, module, mf, nil, nil); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	// Client and server share the process: this is both sides' CPU per job.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/job")
}

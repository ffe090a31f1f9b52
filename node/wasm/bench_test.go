package wasm

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

func benchRun(b *testing.B, e *Executor, job Job, want string) {
	b.Helper()
	ctx := context.Background()
	// Warm the in-memory cache so the loop measures cached runs only.
	if _, err := e.Run(ctx, job); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	n := 0
	for b.Loop() {
		n++
		res, err := e.Run(ctx, job)
		if err != nil {
			b.Fatal(err)
		}
		if res.Outcome != OutcomeExited || string(res.Stdout) != want || !res.CacheHit {
			b.Fatalf("unexpected result: %s %q cache_hit=%v", res.Detail, res.Stdout, res.CacheHit)
		}
	}
	reportCPU(b, cpu, n)
}

// processCPU reads the process's user+system CPU time. On a shared machine
// wall-clock ns/op mostly measures the neighbours; cpu-ns/op (all threads,
// GC included) is the figure to compare against targets.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, n int) {
	if n > 0 {
		b.ReportMetric(float64(processCPU(b)-start)/float64(n), "cpu-ns/op")
	}
}

// BenchmarkTinyCached is the per-job overhead: hash, cache lookup, sandbox
// setup, instantiate, run, close. Target ≤ 50 µs/op.
func BenchmarkTinyCached(b *testing.B) {
	e := newExecutor(b, Config{})
	benchRun(b, e, Job{Module: testwasm.Bytes(b, testwasm.Tiny)}, "ok\n")
}

// BenchmarkHelloCached runs the 2.6 MB Go example with a compiled module
// in the cache. Target ≤ 5 ms/op.
func BenchmarkHelloCached(b *testing.B) {
	e := newExecutor(b, Config{})
	benchRun(b, e, Job{Module: testwasm.Bytes(b, testwasm.Hello), Args: []string{"Hello, World"}}, "dlroW ,olleH\n")
}

// BenchmarkHelloDeterministicCached is the same in deterministic mode.
func BenchmarkHelloDeterministicCached(b *testing.B) {
	e := newExecutor(b, Config{})
	benchRun(b, e, Job{Module: testwasm.Bytes(b, testwasm.Hello), Args: []string{"Hello, World"},
		Deterministic: true, Seed: 1}, "dlroW ,olleH\n")
}

// BenchmarkHelloColdCompile includes compiling hello with a fresh executor
// and no disk cache. Run it with a small -benchtime (3x).
func BenchmarkHelloColdCompile(b *testing.B) {
	hello := testwasm.Bytes(b, testwasm.Hello)
	ctx := context.Background()
	b.ReportAllocs()
	cpu, n := processCPU(b), 0
	for b.Loop() {
		n++
		e, err := New(ctx, Config{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Run(ctx, Job{Module: hello, Args: []string{"x"}})
		if err != nil || res.Outcome != OutcomeExited || res.CacheHit {
			b.Fatalf("unexpected result: %v %s", err, res.Detail)
		}
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, n)
}

// BenchmarkHashHello is the part of every run spent hashing the module bytes.
func BenchmarkHashHello(b *testing.B) {
	hello := testwasm.Bytes(b, testwasm.Hello)
	b.SetBytes(int64(len(hello)))
	cpu, n := processCPU(b), 0
	for b.Loop() {
		n++
		HashModule(hello)
	}
	reportCPU(b, cpu, n)
}

// BenchmarkHelloCachedByHash names the cached module by hash, as a node does
// when it told the client it already has the module: no bytes, no hashing.
func BenchmarkHelloCachedByHash(b *testing.B) {
	e := newExecutor(b, Config{})
	hello := testwasm.Bytes(b, testwasm.Hello)
	if _, err := e.Run(context.Background(), Job{Module: hello}); err != nil {
		b.Fatal(err)
	}
	benchRun(b, e, Job{ModuleHash: HashModule(hello), Args: []string{"Hello, World"}}, "dlroW ,olleH\n")
}

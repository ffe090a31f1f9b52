package wasm

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
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
	e := newExecutor(b, Config{Tier: TierCompiler})
	benchRun(b, e, Job{Module: testwasm.Bytes(b, testwasm.Tiny)}, "ok\n")
}

// BenchmarkHelloCached runs the 2.6 MB Go example with a compiled module
// in the cache. Target ≤ 5 ms/op.
func BenchmarkHelloCached(b *testing.B) {
	e := newExecutor(b, Config{Tier: TierCompiler})
	benchRun(b, e, Job{Module: testwasm.Bytes(b, testwasm.Hello), Args: []string{"Hello, World"}}, "dlroW ,olleH\n")
}

// BenchmarkHelloDeterministicCached is the same in deterministic mode.
func BenchmarkHelloDeterministicCached(b *testing.B) {
	e := newExecutor(b, Config{Tier: TierCompiler})
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
		e, err := New(ctx, Config{Tier: TierCompiler})
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
	e := newExecutor(b, Config{Tier: TierCompiler})
	hello := testwasm.Bytes(b, testwasm.Hello)
	if _, err := e.Run(context.Background(), Job{Module: hello}); err != nil {
		b.Fatal(err)
	}
	benchRun(b, e, Job{ModuleHash: HashModule(hello), Args: []string{"Hello, World"}}, "dlroW ,olleH\n")
}

// firstJob times one job on a new executor with an empty disk cache (the
// executor's start and Close, which waits for a background compile, are
// not timed).
func firstJob(b *testing.B, tier Tier, job Job, want string) {
	ctx := context.Background()
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		e, err := New(ctx, Config{Tier: tier, CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := e.Run(ctx, job)
		times = append(times, time.Since(start))
		b.StopTimer()
		if err != nil || res.Outcome != OutcomeExited || string(res.Stdout) != want {
			b.Fatalf("unexpected result: %v %s %q", err, res.Detail, res.Stdout)
		}
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}

// BenchmarkFirstJob is a module's first job on a new executor: tiered
// (auto) against compile-then-run (compiler).
func BenchmarkFirstJob(b *testing.B) {
	for _, tier := range []Tier{TierAuto, TierCompiler} {
		b.Run("tier="+string(tier), func(b *testing.B) {
			b.Run("tiny", func(b *testing.B) {
				firstJob(b, tier, Job{Module: testwasm.Bytes(b, testwasm.Tiny)}, "ok\n")
			})
			b.Run("hello", func(b *testing.B) {
				firstJob(b, tier, Job{Module: testwasm.Bytes(b, testwasm.Hello), Args: []string{"abc"}}, "cba\n")
			})
		})
	}
}

// BenchmarkCPUFirstJob is a long CPU-bound first job (examples/wat/cpu,
// PLASM_BENCH_CPU_ROUNDS million rounds, 2048 by default; pick the count
// that makes the compiled run take ~5 s on the machine): the tiered path
// must not be much slower than compile-then-run. Run it with -benchtime 1x.
func BenchmarkCPUFirstJob(b *testing.B) {
	rounds := os.Getenv("PLASM_BENCH_CPU_ROUNDS")
	if rounds == "" {
		rounds = "2048"
	}
	cpu := testwasm.Bytes(b, testwasm.CPU)
	var want string
	for _, tier := range []Tier{TierAuto, TierCompiler} {
		b.Run("tier="+string(tier), func(b *testing.B) {
			if want == "" { // the answer, from the tier under comparison
				e := newExecutor(b, Config{Tier: TierCompiler, CacheDir: b.TempDir()})
				res, err := e.Run(context.Background(), Job{Module: cpu, Args: []string{rounds}, Limits: Limits{Timeout: time.Hour}})
				if err != nil || res.Outcome != OutcomeExited {
					b.Fatalf("reference run: %v %s", err, res.Detail)
				}
				want = string(res.Stdout)
				b.ResetTimer()
			}
			firstJob(b, tier, Job{Module: cpu, Args: []string{rounds}, Limits: Limits{Timeout: time.Hour}}, want)
		})
	}
}

// BenchmarkDistinctModules runs PLASM_BENCH_MODULES (150) distinct
// hello-sized modules (hello with a distinct custom section each) through
// one executor (PLASM_BENCH_TIER, compiler by default: every module is
// compiled) with the default bounds and a disk cache, waits for any
// background compiles, and reports the process's peak RSS and the cache's
// size on disk; progress goes to stderr. Run it alone with -benchtime 1x.
func BenchmarkDistinctModules(b *testing.B) {
	count := 150
	if s := os.Getenv("PLASM_BENCH_MODULES"); s != "" {
		var err error
		if count, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	hello := testwasm.Bytes(b, testwasm.Hello)
	ctx := context.Background()
	for b.Loop() {
		dir := b.TempDir()
		tier := Tier(os.Getenv("PLASM_BENCH_TIER"))
		if tier == "" {
			tier = TierCompiler
		}
		e, err := New(ctx, Config{CacheDir: dir, Tier: tier})
		if err != nil {
			b.Fatal(err)
		}
		for i := range count {
			res, err := e.Run(ctx, Job{Module: withCustomSection(hello, i), Args: []string{"ab"}})
			if err != nil || string(res.Stdout) != "ba\n" {
				b.Fatalf("module %d: %v %s", i, err, res.Detail)
			}
			if (i+1)%10 == 0 {
				st := e.Stats()
				fmt.Fprintf(os.Stderr, "%s modules=%d peak_rss_mb=%d mem_cache_mb=%d (%d modules) disk_cache_mb=%d (%d modules) evictions=%d/%d\n",
					time.Now().Format(time.TimeOnly), i+1, peakRSS(b)>>20, st.CachedBytes>>20, st.CachedModules,
					st.DiskBytes>>20, st.DiskModules, st.Evictions, st.DiskEvictions)
			}
		}
		// Let the queued background compiles finish (Close waits).
		st := e.Stats()
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
		onDisk, err := dirSize(dir)
		if err != nil {
			b.Fatal(err)
		}
		after := e.Stats()
		b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-rss-MB")
		b.ReportMetric(float64(onDisk)/(1<<20), "disk-MB")
		b.ReportMetric(float64(after.Compiles), "compiles")
		b.ReportMetric(float64(after.DiskEvictions), "disk-evictions")
		b.ReportMetric(float64(st.JobsInterpreter), "interpreter-jobs")
	}
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkHelloDiskWarm is what `plasmd run` does in a new process when
// the disk cache holds the compiled module: a new Executor loads it from
// disk, runs one job and closes.
func BenchmarkHelloDiskWarm(b *testing.B) {
	hello := testwasm.Bytes(b, testwasm.Hello)
	ctx := context.Background()
	dir := b.TempDir()
	warm, err := New(ctx, Config{CacheDir: dir, Tier: TierCompiler})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := warm.Run(ctx, Job{Module: hello}); err != nil {
		b.Fatal(err)
	}
	if err := warm.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu, n := processCPU(b), 0
	for b.Loop() {
		n++
		e, err := New(ctx, Config{CacheDir: dir, Tier: TierCompiler})
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Run(ctx, Job{Module: hello, Args: []string{"x"}})
		if err != nil || res.Outcome != OutcomeExited {
			b.Fatalf("unexpected result: %v %s", err, res.Detail)
		}
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, n)
}

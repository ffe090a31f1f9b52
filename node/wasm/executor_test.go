package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

// allTiers: the executor's limit and outcome tests run once per tier.
var allTiers = []Tier{TierInterpreter, TierCompiler, TierAuto}

func TestEXEC5_RunOutcomes(t *testing.T) {
	hello := testwasm.Bytes(t, testwasm.Hello)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	short := func(d time.Duration) Limits { return Limits{Timeout: d} }

	tests := []struct {
		name      string
		job       Job
		outcome   Outcome
		exitCode  int
		stdout    string
		stderr    string
		detail    string // substring
		truncated bool   // stdout
		maxWall   time.Duration
	}{
		{name: "hello args", job: Job{Module: hello, Args: []string{"Hello,", "World"}},
			outcome: OutcomeExited, stdout: "dlroW ,olleH\n", detail: "exited with code 0"},
		{name: "hello one arg", job: Job{Module: hello, Args: []string{"Hello, World"}},
			outcome: OutcomeExited, stdout: "dlroW ,olleH\n"},
		{name: "hello stdin", job: Job{Module: hello, Stdin: []byte("añb\n")},
			outcome: OutcomeExited, stdout: "bña\n"},
		{name: "hello no input", job: Job{Module: hello},
			outcome: OutcomeExited, stdout: "\n"},
		{name: "tiny", job: Job{Module: tiny}, outcome: OutcomeExited, stdout: "ok\n"},
		{name: "tiny matching hash", job: Job{Module: tiny, ModuleHash: HashModule(tiny)},
			outcome: OutcomeExited, stdout: "ok\n"},
		{name: "exit7", job: Job{Module: testwasm.Bytes(t, testwasm.Exit7)},
			outcome: OutcomeExited, exitCode: 7, stderr: "bye", detail: "exited with code 7"},
		{name: "trap", job: Job{Module: testwasm.Bytes(t, testwasm.Trap)},
			outcome: OutcomeTrapped, exitCode: -1, detail: "unreachable"},
		{name: "start section trap", job: Job{Module: watModule(t, watStartTrap)},
			outcome: OutcomeTrapped, exitCode: -1, detail: "unreachable"},
		{name: "loop", job: Job{Module: testwasm.Bytes(t, testwasm.Loop), Limits: short(200 * time.Millisecond)},
			outcome: OutcomeTimeout, exitCode: -1, detail: "timeout after 200ms", maxWall: 5 * time.Second},
		{name: "sleeping guest", job: Job{Module: watModule(t, watSleep), Limits: short(200 * time.Millisecond)},
			outcome: OutcomeTimeout, exitCode: -1, detail: "timeout after 200ms", maxWall: 5 * time.Second},
		{name: "grow", job: Job{Module: testwasm.Bytes(t, testwasm.Grow), Limits: Limits{MemoryMB: 2}},
			outcome: OutcomeMemoryLimit, exitCode: -1, detail: "memory limit of 2 MB reached"},
		{name: "big grow then exit 2", job: Job{Module: watModule(t, watBigGrowExit), Limits: Limits{MemoryMB: 2}},
			outcome: OutcomeMemoryLimit, exitCode: -1, detail: "guest exited with code 2"},
		{name: "big grow handled", job: Job{Module: watModule(t, watBigGrowHandled), Limits: Limits{MemoryMB: 2}},
			outcome: OutcomeExited},
		{name: "own declared max", job: Job{Module: watModule(t, watOwnMax), Limits: Limits{MemoryMB: 2}},
			outcome: OutcomeTrapped, exitCode: -1},
		{name: "flood", job: Job{Module: testwasm.Bytes(t, testwasm.Flood),
			Limits: Limits{Timeout: 300 * time.Millisecond, StdoutCap: 100 << 10}},
			outcome: OutcomeTimeout, exitCode: -1, truncated: true, maxWall: 5 * time.Second},
		{name: "bigmem", job: Job{Module: testwasm.Bytes(t, testwasm.BigMem)},
			outcome: OutcomeMemoryLimit, exitCode: -1,
			detail: "minimum memory of 40000 pages (2500 MB), over the limit of 4096 pages (256 MB)"},
		{name: "garbage", job: Job{Module: []byte("definitely not wasm")},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "bad magic"},
		{name: "empty", job: Job{Module: nil},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "empty module"},
		{name: "truncated", job: Job{Module: tiny[:len(tiny)-3]},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "runs past the end"},
		{name: "header only", job: Job{Module: []byte("\x00asm\x01\x00\x00\x00")},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "no exported _start"},
		{name: "no _start", job: Job{Module: watModule(t, `(module (func (export "main")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "no exported _start"},
		{name: "_start with params", job: Job{Module: watModule(t, `(module (func (export "_start") (param i32)))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "_start must take no parameters"},
		{name: "foreign import", job: Job{Module: watModule(t,
			`(module (import "env" "f" (func)) (func (export "_start")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: `from module "env"`},
		{name: "unknown wasi function", job: Job{Module: watModule(t,
			`(module (import "wasi_snapshot_preview1" "nope" (func)) (func (export "_start")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: `unknown function "nope"`},
		{name: "wrong wasi signature", job: Job{Module: watModule(t,
			`(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) (func (export "_start")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "wrong signature"},
		{name: "imported memory", job: Job{Module: watModule(t,
			`(module (import "wasi_snapshot_preview1" "memory" (memory 1)) (func (export "_start")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "imports memory"},
		{name: "imported global", job: Job{Module: watModule(t,
			`(module (import "wasi_snapshot_preview1" "g" (global i32)) (func (export "_start")))`)},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "imports global"},
		{name: "fails validation", job: Job{Module: watModule(t,
			`(module (func (export "_start") (result i32) (i32.const 1)) (func (drop (i32.const 1)) (drop)))`, "--no-check")},
			outcome: OutcomeInvalidModule, exitCode: -1, detail: "compile"},
		{name: "hash mismatch", job: Job{Module: tiny, ModuleHash: HashModule([]byte("other"))},
			outcome: OutcomeHashMismatch, exitCode: -1, detail: "module hash mismatch"},
		{name: "malformed hash", job: Job{Module: tiny, ModuleHash: "md5:1234"},
			outcome: OutcomeHashMismatch, exitCode: -1, detail: `"md5:1234"`},
	}
	for _, tier := range allTiers {
		e := newExecutor(t, Config{Tier: tier})
		for _, tc := range tests {
			t.Run(string(tier)+"/"+tc.name, func(t *testing.T) {
				start := time.Now()
				res, err := e.Run(context.Background(), tc.job)
				elapsed := time.Since(start)
				require.NoError(t, err)
				assert.Equal(t, tc.outcome, res.Outcome, "detail: %s", res.Detail)
				assert.Equal(t, tc.exitCode, res.ExitCode)
				if tc.truncated {
					assert.True(t, res.StdoutTruncated)
					assert.Len(t, res.Stdout, tc.job.Limits.StdoutCap)
				} else {
					assert.Equal(t, tc.stdout, string(res.Stdout))
					assert.False(t, res.StdoutTruncated)
				}
				assert.Equal(t, tc.stderr, string(res.Stderr))
				assert.Contains(t, res.Detail, tc.detail)
				assert.NotContains(t, res.Detail, "\n")
				assert.Equal(t, HashModule(tc.job.Module), res.ModuleHash)
				assert.Equal(t, res.Finished.Sub(res.Started), res.WallTime)
				if tier != TierAuto && res.Tier != "" {
					assert.Equal(t, tier, res.Tier, "the tier that ran")
				}
				if tc.maxWall > 0 {
					assert.Less(t, elapsed, tc.maxWall, "did not stop promptly")
					assert.GreaterOrEqual(t, res.WallTime, tc.job.Limits.Timeout)
				}
			})
		}
	}
}

func TestEXEC4_StderrCap(t *testing.T) {
	e := newExecutor(t, Config{})
	res, err := e.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Exit7), Limits: Limits{StderrCap: 2}})
	require.NoError(t, err)
	assert.Equal(t, "by", string(res.Stderr))
	assert.True(t, res.StderrTruncated)
	assert.False(t, res.StdoutTruncated)
	assert.Equal(t, 7, res.ExitCode)
}

func TestCacheHitOnSecondRun(t *testing.T) {
	e := newExecutor(t, Config{Tier: TierCompiler})
	job := Job{Module: testwasm.Bytes(t, testwasm.Tiny)}
	first, err := e.Run(context.Background(), job)
	require.NoError(t, err)
	assert.False(t, first.CacheHit)
	assert.Positive(t, first.CompileTime)
	second, err := e.Run(context.Background(), job)
	require.NoError(t, err)
	assert.True(t, second.CacheHit)
	assert.Zero(t, second.CompileTime)
	assert.Equal(t, "ok\n", string(second.Stdout))
	st := e.Stats()
	assert.Equal(t, uint64(1), st.Compiles)
	assert.Equal(t, uint64(1), st.CacheHits)
	assert.Equal(t, 1, st.CachedModules)
	assert.Equal(t, 0, st.Running)
}

func TestInvalidModuleIsNotCached(t *testing.T) {
	e := newExecutor(t, Config{})
	for range 2 {
		res, err := e.Run(context.Background(), Job{Module: []byte("junk")})
		require.NoError(t, err)
		assert.Equal(t, OutcomeInvalidModule, res.Outcome)
		assert.False(t, res.CacheHit)
	}
	assert.Equal(t, 0, e.Stats().CachedModules)
}

func TestEXEC6_Deterministic(t *testing.T) {
	e := newExecutor(t, Config{})
	clock := watModule(t, watClock)
	run := func(det bool, seed int64) []byte {
		t.Helper()
		res, err := e.Run(context.Background(), Job{Module: clock, Deterministic: det, Seed: seed})
		require.NoError(t, err)
		require.Equal(t, OutcomeExited, res.Outcome, res.Detail)
		require.Len(t, res.Stdout, 32)
		return res.Stdout
	}
	a, b := run(true, 42), run(true, 42)
	assert.Equal(t, a, b, "same seed must give identical output")
	c := run(true, 43)
	assert.Equal(t, a[:16], c[:16], "clocks do not depend on the seed")
	assert.NotEqual(t, a[16:], c[16:], "random bytes follow the seed")
	wall := time.Unix(0, int64(binary.LittleEndian.Uint64(a[:8])))
	assert.True(t, wall.Before(time.Now().Add(-24*time.Hour)), "deterministic walltime is a fixed epoch, got %s", wall)

	before := time.Now()
	x, y := run(false, 42), run(false, 42)
	after := time.Now()
	assert.NotEqual(t, x[16:], y[16:], "real random must differ between runs")
	real := time.Unix(0, int64(binary.LittleEndian.Uint64(x[:8])))
	assert.False(t, real.Before(before.Add(-time.Second)) || real.After(after.Add(time.Second)),
		"walltime %s not between %s and %s", real, before, after)

	hello := testwasm.Bytes(t, testwasm.Hello)
	var outs [][]byte
	for range 2 {
		res, err := e.Run(context.Background(), Job{Module: hello, Args: []string{"déterministe"}, Deterministic: true, Seed: 7})
		require.NoError(t, err)
		outs = append(outs, res.Stdout)
	}
	assert.Equal(t, "etsinimretéd\n", string(outs[0]))
	assert.Equal(t, outs[0], outs[1])
}

func TestDeterministicSleepDoesNotBlock(t *testing.T) {
	e := newExecutor(t, Config{})
	res, err := e.Run(context.Background(), Job{Module: watModule(t, watSleep), Deterministic: true,
		Limits: Limits{Timeout: 10 * time.Second}})
	require.NoError(t, err)
	assert.Equal(t, OutcomeExited, res.Outcome, res.Detail)
	assert.Less(t, res.WallTime, 5*time.Second)
}

func TestCallerContext(t *testing.T) {
	e := newExecutor(t, Config{})
	loop := testwasm.Bytes(t, testwasm.Loop)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Run(ctx, Job{Module: loop})
	require.ErrorIs(t, err, context.Canceled)

	// The caller's deadline is not the job's timeout: it is an error.
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := e.Run(ctx, Job{Module: loop, Limits: Limits{Timeout: time.Minute}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotEqual(t, OutcomeTimeout, res.Outcome)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestBadJob(t *testing.T) {
	e := newExecutor(t, Config{})
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	for name, job := range map[string]Job{
		"negative memory":  {Module: tiny, Limits: Limits{MemoryMB: -1}},
		"negative timeout": {Module: tiny, Limits: Limits{Timeout: -time.Second}},
		"negative stdout":  {Module: tiny, Limits: Limits{StdoutCap: -1}},
		"negative stderr":  {Module: tiny, Limits: Limits{StderrCap: -1}},
		"NUL in argument":  {Module: tiny, Args: []string{"a", "b\x00c"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Run(context.Background(), job)
			require.Error(t, err)
			words := strings.Fields(name)
			assert.Contains(t, strings.ToLower(err.Error()), words[len(words)-1])
		})
	}
	_, err := New(context.Background(), Config{MaxCachedModules: -1})
	require.ErrorContains(t, err, "MaxCachedModules")
}

func TestLimitsPages(t *testing.T) {
	for _, tc := range []struct {
		mb    int
		pages uint32
	}{{1, 16}, {2, 32}, {256, 4096}, {4095, 65520}, {4096, 65536}, {100000, 65536}} {
		assert.Equal(t, tc.pages, Limits{MemoryMB: tc.mb}.pages(), "%d MB", tc.mb)
	}
	l, err := Limits{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultLimits(), l)
}

func TestHashModule(t *testing.T) {
	assert.Equal(t, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", HashModule(nil))
}

func TestConcurrentFirstRunCompilesOnce(t *testing.T) {
	e := newExecutor(t, Config{})
	hello := testwasm.Bytes(t, testwasm.Hello)
	const n = 16
	start := make(chan struct{})
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.Run(context.Background(), Job{Module: hello, Args: []string{"abc"}})
		})
	}
	close(start)
	wg.Wait()
	compiled := 0
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, "cba\n", string(results[i].Stdout))
		if !results[i].CacheHit {
			compiled++
		}
	}
	assert.Equal(t, uint64(1), e.Stats().Compiles)
	t.Logf("%d of %d runs missed the in-memory cache: one compiled, the others waited for it", compiled, n)
}

func TestConcurrentMixedJobs(t *testing.T) {
	e := newExecutor(t, Config{})
	jobs := []struct {
		job     Job
		outcome Outcome
		stdout  string
	}{
		{Job{Module: testwasm.Bytes(t, testwasm.Tiny)}, OutcomeExited, "ok\n"},
		{Job{Module: testwasm.Bytes(t, testwasm.Hello), Args: []string{"xyz"}}, OutcomeExited, "zyx\n"},
		{Job{Module: testwasm.Bytes(t, testwasm.Trap)}, OutcomeTrapped, ""},
		{Job{Module: testwasm.Bytes(t, testwasm.Exit7)}, OutcomeExited, ""},
		{Job{Module: testwasm.Bytes(t, testwasm.Grow), Limits: Limits{MemoryMB: 1}}, OutcomeMemoryLimit, ""},
		{Job{Module: testwasm.Bytes(t, testwasm.Loop), Limits: Limits{Timeout: 100 * time.Millisecond}}, OutcomeTimeout, ""},
		{Job{Module: watModule(t, watNamed)}, OutcomeExited, "ok\n"},
		{Job{Module: watModule(t, watNamed)}, OutcomeExited, "ok\n"},
	}
	var wg sync.WaitGroup
	for round := range 2 {
		for i, j := range jobs {
			wg.Go(func() {
				res, err := e.Run(context.Background(), j.job)
				if assert.NoError(t, err, "round %d job %d", round, i) {
					assert.Equal(t, j.outcome, res.Outcome, "round %d job %d: %s", round, i, res.Detail)
					assert.Equal(t, j.stdout, string(res.Stdout), "round %d job %d", round, i)
				}
			})
		}
	}
	wg.Wait()
}

func TestEvictionKeepsRunningCorrectly(t *testing.T) {
	e := newExecutor(t, Config{Tier: TierCompiler, MaxCachedModules: 1})
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	exit7 := testwasm.Bytes(t, testwasm.Exit7)
	for range 3 {
		for _, m := range [][]byte{tiny, exit7} {
			res, err := e.Run(context.Background(), Job{Module: m})
			require.NoError(t, err)
			require.Equal(t, OutcomeExited, res.Outcome, res.Detail)
		}
	}
	assert.Equal(t, 1, e.Stats().CachedModules)
	assert.Equal(t, uint64(6), e.Stats().Compiles, "each run evicts the other module")
}

func TestCloseStopsRunningJobs(t *testing.T) {
	e, err := New(context.Background(), Config{})
	require.NoError(t, err)
	loop := testwasm.Bytes(t, testwasm.Loop)
	// Compile first, so the job below goes straight to the guest's loop.
	res, err := e.Run(context.Background(), Job{Module: loop, Limits: Limits{Timeout: time.Millisecond}})
	require.NoError(t, err)
	require.Equal(t, OutcomeTimeout, res.Outcome)
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background(), Job{Module: loop, Limits: Limits{Timeout: time.Minute}})
		done <- err
	}()
	eventually(t, 10*time.Second, func() bool { return e.Stats().Running == 1 }, "job never started")
	start := time.Now()
	require.NoError(t, e.Close(context.Background()))
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	assert.Less(t, time.Since(start), 20*time.Second)
	_, err = e.Run(context.Background(), Job{Module: loop})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, e.Close(context.Background()), "second Close is a no-op")
}

func TestNoGoroutineLeak(t *testing.T) {
	jobs := []Job{
		{Module: testwasm.Bytes(t, testwasm.Tiny)},
		{Module: testwasm.Bytes(t, testwasm.Loop), Limits: Limits{Timeout: 100 * time.Millisecond}},
		{Module: watModule(t, watSleep), Limits: Limits{Timeout: 100 * time.Millisecond}},
		{Module: testwasm.Bytes(t, testwasm.Flood), Limits: Limits{Timeout: 100 * time.Millisecond}},
		{Module: testwasm.Bytes(t, testwasm.Trap)},
	}
	before := runtime.NumGoroutine()
	e, err := New(context.Background(), Config{})
	require.NoError(t, err)
	for _, j := range jobs {
		_, err := e.Run(context.Background(), j)
		require.NoError(t, err)
	}
	require.NoError(t, e.Close(context.Background()))
	eventually(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
}

func TestDiskCache(t *testing.T) {
	dir := t.TempDir()
	hello := testwasm.Bytes(t, testwasm.Hello)
	job := Job{Module: hello, Args: []string{"warm"}}

	e1, err := New(context.Background(), Config{CacheDir: dir, Tier: TierCompiler})
	require.NoError(t, err)
	cold, err := e1.Run(context.Background(), job)
	require.NoError(t, err)
	require.Equal(t, "mraw\n", string(cold.Stdout))
	require.NoError(t, e1.Close(context.Background()))

	var files int
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return err
	}))
	assert.Positive(t, files, "compiled code must be written to the cache dir")

	e2 := newExecutor(t, Config{CacheDir: dir, Tier: TierCompiler})
	warm, err := e2.Run(context.Background(), job)
	require.NoError(t, err)
	assert.Equal(t, "mraw\n", string(warm.Stdout))
	assert.False(t, warm.CacheHit, "a new executor has an empty in-memory cache")
	t.Logf("compile: %s cold, %s from disk cache", cold.CompileTime, warm.CompileTime)
}

func TestDetailIsOneSafeLine(t *testing.T) {
	assert.Equal(t, "abc", oneLine("abc\nwasm stack trace"))
	assert.Equal(t, "a?b", oneLine("a\x1bb"))
	assert.Len(t, oneLine(strings.Repeat("x", 1000)), 203)
	q := quoteName(strings.Repeat("y", 200) + "\n")
	assert.NotContains(t, q, "\n")
	assert.True(t, bytes.HasSuffix([]byte(q), []byte(`..."`)))
}

func TestEXEC1_MemoryNotSharedBetweenJobs(t *testing.T) {
	// dirty fills 20 pages with 0xff; check grows to 20 pages and exits 1
	// if any byte is not zero. Pooled memory must come back clean.
	dirty := watModule(t, `(module
  (memory 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 19)))
    (memory.fill (i32.const 0) (i32.const 0xff) (i32.mul (memory.size) (i32.const 65536)))))`)
	check := watModule(t, `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (func (export "_start") (local $i i32) (local $end i32)
    (drop (memory.grow (i32.const 19)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (loop $scan
      (if (i64.ne (i64.load (local.get $i)) (i64.const 0))
        (then (call $exit (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $scan (i32.lt_u (local.get $i) (local.get $end))))))`)
	e := newExecutor(t, Config{})
	for i := range 5 {
		res, err := e.Run(context.Background(), Job{Module: dirty})
		require.NoError(t, err)
		require.Equal(t, OutcomeExited, res.Outcome, res.Detail)
		require.Equal(t, 0, res.ExitCode)
		res, err = e.Run(context.Background(), Job{Module: check})
		require.NoError(t, err)
		require.Equal(t, OutcomeExited, res.Outcome, res.Detail)
		require.Equal(t, 0, res.ExitCode, "round %d: a job saw another job's memory", i)
	}
}

func TestRunByHash(t *testing.T) {
	e := newExecutor(t, Config{Tier: TierCompiler, MaxCachedModules: 1})
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	hash := HashModule(tiny)
	assert.False(t, e.HasModule(hash))
	_, err := e.Run(context.Background(), Job{ModuleHash: hash})
	require.ErrorIs(t, err, ErrModuleNotCached)

	_, err = e.Run(context.Background(), Job{Module: tiny})
	require.NoError(t, err)
	require.True(t, e.HasModule(hash))
	res, err := e.Run(context.Background(), Job{ModuleHash: hash})
	require.NoError(t, err)
	assert.Equal(t, OutcomeExited, res.Outcome)
	assert.Equal(t, "ok\n", string(res.Stdout))
	assert.Equal(t, hash, res.ModuleHash)
	assert.True(t, res.CacheHit)

	// Evicted by another module: the caller is told to send the bytes.
	_, err = e.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Trap)})
	require.NoError(t, err)
	assert.False(t, e.HasModule(hash))
	_, err = e.Run(context.Background(), Job{ModuleHash: hash})
	require.ErrorIs(t, err, ErrModuleNotCached)
	assert.Contains(t, err.Error(), hash)
}

func TestEXEC1_CallerContextValuesDoNotReachSandbox(t *testing.T) {
	e := newExecutor(t, Config{})
	var notified atomic.Int32
	ctx := experimental.WithCloseNotifier(context.Background(),
		experimental.CloseNotifyFunc(func(context.Context, uint32) { notified.Add(1) }))
	res, err := e.Run(ctx, Job{Module: testwasm.Bytes(t, testwasm.Tiny)})
	require.NoError(t, err)
	assert.Equal(t, OutcomeExited, res.Outcome, res.Detail)
	assert.Zero(t, notified.Load(), "the caller's wazero options must not apply to the guest")
}

func TestEXEC2_GoGuestOutOfMemory(t *testing.T) {
	// hello reads all of stdin into memory: 16 MiB cannot fit in 16 MB of
	// linear memory. The Go runtime asks for a multi-megabyte block, is
	// refused well below the limit, and exits 2.
	e := newExecutor(t, Config{})
	res, err := e.Run(context.Background(), Job{
		Module: testwasm.Bytes(t, testwasm.Hello),
		Stdin:  bytes.Repeat([]byte("a"), 16<<20),
		Limits: Limits{MemoryMB: 16},
	})
	require.NoError(t, err)
	assert.Equal(t, OutcomeMemoryLimit, res.Outcome, res.Detail)
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, res.Detail, "guest exited with code 2")
	assert.Contains(t, string(res.Stderr), "out of memory")
}

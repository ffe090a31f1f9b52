package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

// watSpin runs 2^23 rounds of xorshift64 and writes the final state's low
// byte as two hex digits: several times longer on the interpreter than
// compiled, and far longer than compiling it.
const watSpin = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 0) "0123456789abcdef")
  (func (export "_start")
    (local $x i64) (local $n i32)
    (local.set $x (i64.const 0x9e3779b97f4a7c15))
    (local.set $n (i32.const 0x800000))
    (loop $round
      (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
      (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
      (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $round (local.get $n)))
    (i32.store8 (i32.const 32) (i32.load8_u (i32.wrap_i64 (i64.and (i64.shr_u (local.get $x) (i64.const 4)) (i64.const 15)))))
    (i32.store8 (i32.const 33) (i32.load8_u (i32.wrap_i64 (i64.and (local.get $x) (i64.const 15)))))
    (i32.store8 (i32.const 34) (i32.const 10))
    (i32.store (i32.const 64) (i32.const 32))
    (i32.store (i32.const 68) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))))`

// gateCompiles makes the executor's optimising compiles wait for gate,
// and counts how many run at once.
func gateCompiles(e *Executor, gate <-chan struct{}) (maxAtOnce func() int32) {
	orig := e.modules.compile
	var now, peak atomic.Int32
	e.modules.compile = func(ctx context.Context, hash string, module []byte) (*compiledModule, error) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer now.Add(-1)
		<-gate
		return orig(ctx, hash, module)
	}
	return peak.Load
}

func TestTierAutoFirstJobOnInterpreterThenCompiled(t *testing.T) {
	e := newExecutor(t, Config{CacheDir: t.TempDir()})
	hello := testwasm.Bytes(t, testwasm.Hello)
	first, err := e.Run(context.Background(), Job{Module: hello, Args: []string{"abc"}})
	require.NoError(t, err)
	assert.Equal(t, "cba\n", string(first.Stdout))
	assert.Equal(t, TierInterpreter, first.Tier, "hello runs far sooner than it compiles")
	assert.False(t, first.CacheHit)
	assert.True(t, e.HasModule(HashModule(hello)), "the interpreter's module can serve jobs by hash meanwhile")

	eventually(t, time.Minute, func() bool { return e.Stats().CachedModules == 1 }, "background compile never finished")
	second, err := e.Run(context.Background(), Job{Module: hello, Args: []string{"xyz"}})
	require.NoError(t, err)
	assert.Equal(t, "zyx\n", string(second.Stdout))
	assert.Equal(t, TierCompiler, second.Tier)
	assert.True(t, second.CacheHit)
	st := e.Stats()
	assert.EqualValues(t, 1, st.Compiles)
	assert.EqualValues(t, 1, st.BackgroundCompiles)
	assert.EqualValues(t, 1, st.InterpCompiles)
	assert.EqualValues(t, 1, st.JobsInterpreter)
	assert.EqualValues(t, 1, st.JobsCompiler)
	assert.Equal(t, 1, st.DiskModules)
	assert.Positive(t, st.DiskBytes, "the background compile fills the disk cache")
	n, _ := e.interp.usage()
	assert.Zero(t, n, "the interpreter's module is dropped once compiled code is ready")
}

func TestTierAutoLongJobSwitchesToCompiled(t *testing.T) {
	spin := watModule(t, watSpin)
	want := func(tier Tier) string {
		e := newExecutor(t, Config{Tier: tier, CacheDir: t.TempDir()})
		res, err := e.Run(context.Background(), Job{Module: spin})
		require.NoError(t, err)
		require.Equal(t, OutcomeExited, res.Outcome, res.Detail)
		return string(res.Stdout)
	}
	compiled := want(TierCompiler)
	require.Len(t, compiled, 3)

	e := newExecutor(t, Config{CacheDir: t.TempDir()})
	gate := make(chan struct{})
	gateCompiles(e, gate)
	done := make(chan Result, 1)
	go func() {
		res, err := e.Run(context.Background(), Job{Module: spin, Limits: Limits{Timeout: time.Minute}})
		assert.NoError(t, err)
		done <- res
	}()
	eventually(t, 10*time.Second, func() bool { return e.Stats().Running == 1 }, "job never started")
	close(gate) // the compiled code becomes ready while the interpreter runs

	res := <-done
	assert.Equal(t, OutcomeExited, res.Outcome, res.Detail)
	assert.Equal(t, compiled, string(res.Stdout), "the same output whatever tier ran")
	assert.Equal(t, TierCompiler, res.Tier)
	assert.EqualValues(t, 1, e.Stats().TierSwitches)
	assert.Equal(t, res.Finished.Sub(res.Started), res.WallTime)
}

func TestTierAutoRestartGetsTheWholeTimeLimit(t *testing.T) {
	// As with compile-then-run, the time limit is the compiled run's: the
	// restarted run gets all of it.
	e := newExecutor(t, Config{CacheDir: t.TempDir()})
	gate := make(chan struct{})
	gateCompiles(e, gate)
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(gate)
	}()
	res, err := e.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Loop), Limits: Limits{Timeout: time.Second}})
	require.NoError(t, err)
	assert.Equal(t, OutcomeTimeout, res.Outcome)
	assert.Equal(t, "timeout after 1s", res.Detail)
	assert.EqualValues(t, 1, e.Stats().TierSwitches)
	assert.GreaterOrEqual(t, res.WallTime, 1300*time.Millisecond, "the interpreted 0.3 s, then the whole second")
}

func TestTierAutoCompileFailureIsInvalidModuleLater(t *testing.T) {
	e := newExecutor(t, Config{CacheDir: t.TempDir()})
	var calls atomic.Int32
	e.modules.compile = func(context.Context, string, []byte) (*compiledModule, error) {
		calls.Add(1)
		return nil, invalidf("compile: injected code generation failure")
	}
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	first, err := e.Run(context.Background(), Job{Module: tiny})
	require.NoError(t, err)
	assert.Equal(t, OutcomeExited, first.Outcome, "the interpreter's run stands")
	assert.Equal(t, "ok\n", string(first.Stdout))
	eventually(t, 10*time.Second, func() bool { return e.modules.failure(HashModule(tiny)) != nil }, "failure not recorded")
	for range 2 {
		later, err := e.Run(context.Background(), Job{Module: tiny})
		require.NoError(t, err)
		assert.Equal(t, OutcomeInvalidModule, later.Outcome)
		assert.Contains(t, later.Detail, "injected code generation failure")
	}
	assert.EqualValues(t, 1, calls.Load(), "a failed module is not compiled again")
}

func TestTierAutoConcurrentFirstJobsCompileOnce(t *testing.T) {
	e := newExecutor(t, Config{CacheDir: t.TempDir()})
	hello := testwasm.Bytes(t, testwasm.Hello)
	const n = 8
	var wg sync.WaitGroup
	outs := make([]string, n)
	for i := range n {
		wg.Go(func() {
			res, err := e.Run(context.Background(), Job{Module: hello, Args: []string{"abc"}})
			assert.NoError(t, err)
			outs[i] = string(res.Stdout)
		})
	}
	wg.Wait()
	for i := range n {
		assert.Equal(t, "cba\n", outs[i])
	}
	eventually(t, time.Minute, func() bool { return e.Stats().CachedModules == 1 }, "background compile never finished")
	st := e.Stats()
	assert.EqualValues(t, 1, st.Compiles)
	assert.EqualValues(t, 1, st.InterpCompiles)
}

func TestTierAutoCompileWorkersBounded(t *testing.T) {
	e := newExecutor(t, Config{CacheDir: t.TempDir(), CompileWorkers: 1})
	gate := make(chan struct{})
	peak := gateCompiles(e, gate)
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	for i := range 3 {
		res, err := e.Run(context.Background(), Job{Module: withCustomSection(tiny, i)})
		require.NoError(t, err)
		require.Equal(t, TierInterpreter, res.Tier)
	}
	close(gate)
	eventually(t, 10*time.Second, func() bool { return e.Stats().CachedModules == 3 }, "compiles never finished")
	assert.EqualValues(t, 1, peak(), "one compile at a time with one worker")
	assert.EqualValues(t, 3, e.Stats().BackgroundCompiles)
}

func TestTierDeterministicOutputSameOnEveryTier(t *testing.T) {
	clock := watModule(t, watClock)
	hello := testwasm.Bytes(t, testwasm.Hello)
	var outs []string
	for _, tier := range []Tier{TierInterpreter, TierCompiler} {
		e := newExecutor(t, Config{Tier: tier})
		for _, job := range []Job{{Module: clock}, {Module: hello, Args: []string{"déterministe"}}} {
			job.Deterministic, job.Seed = true, 99
			res, err := e.Run(context.Background(), job)
			require.NoError(t, err)
			require.Equal(t, tier, res.Tier)
			outs = append(outs, string(res.Stdout))
		}
	}
	assert.Equal(t, outs[:2], outs[2:])
}

// withCustomSection makes a distinct module (another hash) that runs the
// same: a custom section named by i appended.
func withCustomSection(module []byte, i int) []byte {
	name := []byte{'v', byte('a' + i%26), byte('a' + i/26%26), byte('a' + i/676%26)}
	out := append([]byte{}, module...)
	return append(out, 0, byte(1+len(name)), byte(len(name)), name[0], name[1], name[2], name[3])
}

func TestMemoryAndDiskCachesStayWithinBounds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wasm")
	hello := testwasm.Bytes(t, testwasm.Hello)
	const memBound, diskBound = 24 << 20, 20 << 20 // two or three compiled hellos
	e := newExecutor(t, Config{Tier: TierCompiler, CacheDir: dir, MemoryCacheBytes: memBound, DiskCacheBytes: diskBound})
	for i := range 5 {
		res, err := e.Run(context.Background(), Job{Module: withCustomSection(hello, i), Args: []string{"ab"}})
		require.NoError(t, err)
		require.Equal(t, "ba\n", string(res.Stdout))
		st := e.Stats()
		assert.LessOrEqual(t, st.CachedBytes, int64(memBound))
		assert.LessOrEqual(t, st.DiskBytes, int64(diskBound))
		onDisk, err := dirSize(dir)
		require.NoError(t, err)
		assert.LessOrEqual(t, onDisk, int64(diskBound), "bytes really on disk")
		assert.Equal(t, st.DiskBytes, onDisk)
	}
	st := e.Stats()
	assert.Positive(t, st.Evictions)
	assert.Positive(t, st.DiskEvictions)
	assert.GreaterOrEqual(t, st.CachedModules, 1)
	t.Logf("after 5 distinct hellos: %d modules (%d MB est.) in memory, %d (%d MB) on disk",
		st.CachedModules, st.CachedBytes>>20, st.DiskModules, st.DiskBytes>>20)

	// A restarted executor finds the same bounded directory and keeps
	// the most recently used entries.
	require.NoError(t, e.Close(context.Background()))
	e2 := newExecutor(t, Config{Tier: TierCompiler, CacheDir: dir, DiskCacheBytes: diskBound})
	assert.Equal(t, st.DiskModules, e2.Stats().DiskModules)
	last := withCustomSection(hello, 4)
	assert.True(t, CompiledOnDisk(dir, HashModule(last)), "the newest module survives eviction")
	assert.False(t, CompiledOnDisk(dir, HashModule(withCustomSection(hello, 0))), "the oldest is evicted")
	res, err := e2.Run(context.Background(), Job{Module: last, Args: []string{"ab"}})
	require.NoError(t, err)
	assert.Equal(t, "ba\n", string(res.Stdout))
}

func TestCompileCacheTrust(t *testing.T) {
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	// fill makes a cache directory with one module's compiled code in it.
	fill := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "wasm")
		e, err := New(context.Background(), Config{Tier: TierCompiler, CacheDir: dir})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), Job{Module: tiny})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))
		return dir
	}
	file := func(t *testing.T, dir string) string {
		var found string
		require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				found = p
			}
			return err
		}))
		require.NotEmpty(t, found)
		return found
	}
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"own and private", func(*testing.T, string) {}, ""},
		{"cache dir world-writable", func(t *testing.T, dir string) { require.NoError(t, os.Chmod(dir, 0o777)) }, "mode 0777"},
		{"parent group-writable", func(t *testing.T, dir string) { require.NoError(t, os.Chmod(filepath.Dir(dir), 0o770)) }, "mode 0770"},
		{"code file group-writable", func(t *testing.T, dir string) { require.NoError(t, os.Chmod(file(t, dir), 0o660)) }, "mode 0660"},
		{"cache dir a symlink to a private dir", func(t *testing.T, dir string) {
			require.NoError(t, os.Rename(dir, dir+".real"))
			require.NoError(t, os.Symlink(dir+".real", dir))
		}, ""},
		{"cache dir a symlink to a world-writable dir", func(t *testing.T, dir string) {
			require.NoError(t, os.Rename(dir, dir+".real"))
			require.NoError(t, os.Chmod(dir+".real", 0o777))
			require.NoError(t, os.Symlink(dir+".real", dir))
		}, "mode 0777"},
		{"code file a symlink", func(t *testing.T, dir string) {
			f := file(t, dir)
			require.NoError(t, os.Rename(f, f+".real"))
			require.NoError(t, os.Symlink(f+".real", f))
		}, "symbolic link"},
		{"code file owned by another user", func(t *testing.T, dir string) {
			if os.Getuid() != 0 {
				// Only root can give a file away; as anyone else, the
				// same refusal is reached through a file another user
				// could have written, which the mode cases cover.
				require.NoError(t, os.Chmod(file(t, dir), 0o666))
				return
			}
			require.NoError(t, os.Lchown(file(t, dir), 65534, 65534))
		}, "refusing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fill(t)
			tc.spoil(t, dir)
			e, err := New(context.Background(), Config{CacheDir: dir})
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, e.Close(context.Background()))
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), dir, "the error names the cache")
		})
	}
	if os.Getuid() == 0 {
		dir := fill(t)
		require.NoError(t, os.Lchown(file(t, dir), 65534, 65534))
		_, err := New(context.Background(), Config{CacheDir: dir})
		assert.ErrorContains(t, err, "owned by uid 65534")
	}
}

func TestModuleCacheByteBound(t *testing.T) {
	fc := &fakeCompiler{}
	c := newModuleCache(100, func(ctx context.Context, hash string, m []byte) (*compiledModule, error) {
		cm, err := fc.compile(ctx, hash, m)
		if cm != nil {
			cm.size = int64(len(m))
		}
		return cm, err
	})
	c.maxBytes = 10
	ctx := context.Background()
	for _, h := range []string{"a", "b", "c"} {
		m, _, _, err := c.acquire(ctx, h, make([]byte, 4), true)
		require.NoError(t, err)
		c.release(m)
	}
	n, b := c.usage()
	assert.Equal(t, 2, n)
	assert.EqualValues(t, 8, b)
	assert.EqualValues(t, 1, fc.made["a"][0].closed.Load(), "least recently used closed")

	// One module alone over the bound serves its job, then is closed.
	big, _, _, err := c.acquire(ctx, "big", make([]byte, 11), true)
	require.NoError(t, err)
	assert.EqualValues(t, 0, fc.made["big"][0].closed.Load(), "never under a running job")
	c.release(big)
	assert.EqualValues(t, 1, fc.made["big"][0].closed.Load())
	n, b = c.usage()
	assert.LessOrEqual(t, b, int64(10))
	assert.Equal(t, 0, n)
	assert.False(t, errors.Is(c.failure("big"), ErrClosed))
}

func TestCollectorReportsTiers(t *testing.T) {
	e := newExecutor(t, Config{Tier: TierInterpreter})
	_, err := e.Run(context.Background(), Job{Module: testwasm.Bytes(t, testwasm.Tiny)})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(e.Collector()))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	assert.Len(t, got, 11)
	assert.Equal(t, 1.0, got["phase_wasm_jobs_total,tier=interpreter"])
	assert.Equal(t, 0.0, got["phase_wasm_jobs_total,tier=compiler"])
	assert.Equal(t, 1.0, got["phase_wasm_cache_modules,where=memory"])
}

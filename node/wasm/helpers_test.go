package wasm

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

// watModule assembles WAT source (committed under testdata/wat; see
// testwasm.Assemble).
func watModule(tb testing.TB, src string, flags ...string) []byte {
	tb.Helper()
	return testwasm.Assemble(tb, src, flags...)
}

// testCacheDir is a compilation cache shared by the package's executors so
// that hello (2.6 MB of Go) is compiled once per test binary, not per test.
// Set once by TestMain.
var testCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plasm-wasm-test-cache-")
	if err != nil {
		panic(err)
	}
	testCacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newExecutor makes an executor closed at the end of the test; without a
// CacheDir it uses the shared test cache.
func newExecutor(tb testing.TB, cfg Config) *Executor {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = testCacheDir
	}
	e, err := New(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// eventually polls cond until it holds or the wait runs out.
func eventually(tb testing.TB, wait time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf(msg, args...)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting blind
	}
}

// Hand-written guests for behaviour the shared examples do not cover.
const (
	// Prints realtime (u64), monotonic (u64) and 16 random bytes: 32 raw bytes.
	watClock = `(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\20\00\00\00")
  (func (export "_start")
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 72)))
    (drop (call $rand (i32.const 80) (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))`

	// Sleeps for an hour in poll_oneoff, then exits 0.
	watSleep = `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))`

	// Asks for 1000 pages at once; when refused exits 2 like a Go guest out
	// of memory, far below the limit.
	watBigGrowExit = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1))
      (then (call $exit (i32.const 2))))))`

	// Asks for 1000 pages at once and carries on when refused.
	watBigGrowHandled = `(module
  (memory 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 1000)))))`

	// Its own declared maximum (2 pages) refuses the grow, not our limit.
	watOwnMax = `(module
  (memory 1 2)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 5)) (i32.const -1))
      (then unreachable))))`

	// The start section traps during instantiation.
	watStartTrap = `(module
  (func $boom unreachable)
  (start $boom)
  (func (export "_start")))`

	// A name section names the module: concurrent instances must not clash.
	watNamed = `(module $named
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 0) "\08\00\00\00\03\00\00\00")
  (data (i32.const 8) "ok\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))`
)

// Package wasm is the Phase job executor: it runs one WebAssembly (WASI
// preview 1) module per job in a wazero sandbox and reports how it ended.
//
// # Sandbox
//
// Every job gets a fresh module instance with:
//
//   - no filesystem mounts, no environment variables, no sockets;
//   - argv = ["job", Job.Args...] and stdin = Job.Stdin, exactly as given
//     (an argument containing NUL is refused with an error);
//   - only wasi_snapshot_preview1 functions to import; a module importing
//     anything else (another module, a memory, a table, a global, an
//     unknown WASI name or a WASI name with the wrong signature) is an
//     invalid module and never instantiated;
//   - stdout and stderr captured into buffers that keep the first
//     StdoutCap/StderrCap bytes, count the rest and set the truncated flags.
//     Writes never fail, so a flooding guest runs on until its deadline;
//   - a wall-clock deadline (Limits.Timeout). wazero is built with
//     WithCloseOnContextDone, so a guest spinning in a loop is stopped, and
//     the guest's sleep (poll_oneoff on a clock) watches the deadline too;
//   - a memory limit of MemoryMB*16 pages (capped at 65536), enforced by a
//     per-job memory allocator (see limitAllocator for why the runtime-wide
//     wazero page limit is not used);
//   - in the default mode, the real wall clock, monotonic clock and sleep,
//     and crypto/rand; with Job.Deterministic, wazero's fake clocks (wall
//     time fixed at wazero's epoch, each reading advancing 1 ms), a sleep
//     that returns at once, and random bytes from math/rand/v2 ChaCha8
//     seeded with the 8 little-endian bytes of Job.Seed followed by 24 zero
//     bytes. The same deterministic Job gives byte-identical output on every
//     node and architecture, which redundant execution relies on.
//
// Nothing carried by the caller's context (wazero's experimental options
// are context values) reaches the sandbox; only its cancellation does.
// Guest output is never logged, and Result.Detail quotes or replaces any
// guest-chosen text, so it stays one printable line.
//
// # Outcomes
//
// Every Result has exactly one Outcome, decided in this order:
//
//   - hash_mismatch: Job.ModuleHash is set and is not the SHA-256 of the
//     bytes ("sha256:" + lowercase hex, see HashModule). Nothing is compiled.
//   - invalid_module: not a WebAssembly binary, fails to decode, validate or
//     compile, forbidden imports (above), or no _start function of type
//     () -> (). Failures are not cached.
//   - memory_limit (before running): the module declares a minimum memory
//     larger than the limit; Detail names both sizes.
//   - exited: the guest returned from _start (code 0) or called proc_exit
//     (its code), before any deadline — unless the code is not 0 and a
//     memory.grow had been refused at the limit, which is memory_limit (a Go
//     guest out of memory exits 2).
//   - timeout: the job's deadline stopped the guest. If the caller's context
//     ended it instead, or Close did, Run returns an error wrapping
//     ctx.Err() or ErrClosed, not a Result outcome.
//   - memory_limit: the guest trapped after a memory.grow was refused at
//     the limit (testwasm Grow: refused, then unreachable).
//   - trapped: any other runtime error (unreachable, out-of-bounds access,
//     stack overflow, division by zero, a trap in the start section, ...).
//
// A refused grow that the guest handles before exiting 0 is a success, and a
// refusal caused by the module's own declared maximum is not memory_limit.
// ExitCode is -1 for every outcome but exited. A failed load is never
// reported as exited.
//
// # Tiers
//
// wazero has two engines: an interpreter, which gets a module ready about
// ten times sooner than the optimising compiler (examples/hello, 2.3 MB:
// ~0.17 s against ~1.7 s), and the compiler, whose code runs several times
// faster. Config.Tier chooses:
//
//   - TierCompiler: compile, then run (every job waits for its module's
//     compilation; the behaviour before tiers existed);
//   - TierInterpreter: interpret everything;
//   - TierAuto (the default): a job whose module has compiled code in
//     memory, or on disk, uses it. Otherwise the job runs at once on the
//     interpreter while the optimising compile proceeds in the background
//     (one per module hash, at most Config.CompileWorkers at a time; it
//     fills the memory and disk caches). When that compile finishes while
//     the job is still running, the interpreted run is stopped and the job
//     starts again from the beginning on the compiled code. The time limit
//     is the compiled run's, as with compile-then-run (where it starts
//     after the compile): the restarted run gets all of it, and an
//     interpreted run that reaches the limit while the compile is still
//     going waits for it and starts again compiled. A job thus times out on
//     the tiered path exactly when it would have compiled; its wall time is
//     at most compile time plus the limit, as before.
//
// Switching when the compile finishes, rather than racing both tiers to
// the end, was chosen because it never runs two instances of a job at
// once: a job's memory limit holds for the job (the interpreted instance
// is closed before the compiled one is created), and the extra CPU is
// bounded by the compile itself plus the interpreted run up to that
// moment (on one more core), about 0.2 s for hello. A long job therefore
// ends no later than compile-then-run would have ended it, plus that
// contention; a short job ends at interpreter speed. Its cost: a job that
// the interpreter would have finished just after the compile completes is
// restarted, and work done on the interpreter is discarded.
//
// A job has no effects outside its captured output, so a restart is not
// observable: the result (outcome, exit code, output, caps, the receipt
// built from it) is that of the last run alone, and each run gets a fresh
// instance, fresh buffers and fresh memory accounting. Result.Tier names
// the engine that produced it. Only when the module could not be queued
// for compiling (the queue holds at most the memory bound's worth of
// module bytes) or fails to compile does the interpreter's run decide a
// timeout. In deterministic mode
// each run starts from the same fake clocks and seed, so the interpreter
// and the compiler give byte-identical output (tested); the engines could
// differ only where WebAssembly itself is nondeterministic (NaN bit
// patterns), as different architectures already may.
//
// A module that the interpreter accepts but the optimising compile
// rejects runs on the interpreter for the job that brought it; the failure
// is remembered (bounded) and later jobs of that module end invalid_module
// without compiling again. A panic in either compiler is an
// invalid_module, never a crash.
//
// # Compiled modules
//
// Compiled modules are cached by module hash in an LRU bounded by count
// (Config.MaxCachedModules) and by estimated bytes
// (Config.MemoryCacheBytes; under TierAuto half of it holds the
// interpreter's modules of compiles still pending). wazero does not report
// a module's size: it is estimated as its on-disk entry plus the module's
// bytes, or a multiple of the module's bytes without one (moduleSize). An
// evicted module is closed when its last running job releases it, never
// under a running instance. Concurrent first runs of a module share one
// compilation.
//
// Each compiled module has a wazero runtime of its own, so closing it frees
// its code, and with Config.CacheDir its own directory in the on-disk
// compile cache (named by the module hash), so a restarted node stays warm
// (it still decodes and validates the module, but skips code generation).
// wazero never deletes what it writes there: the directories are kept
// within Config.DiskCacheBytes by removing the least recently used (the
// directory's mtime records use across restarts). A compile that fails
// only because the cache cannot be written (a full or read-only disk) is
// retried in memory and logged.
//
// The compile cache holds native code that the node maps executable and
// runs without checking it again: whoever can write it can run any code as
// the node. New therefore refuses a cache directory (or its parent, or
// anything in it) that is not owned by the node's user (or root), that is
// writable by group or others, or that contains a symbolic link, with an
// error naming the path and the fix.
//
// Before compiling, the data section of a module with many small active
// segments (every Go wasip1 binary: examples/hello has 30,695) is rewritten
// into a few large ones when that provably leaves the memory image unchanged
// (see coalesceData); applying those segments was most of the per-job cost
// of a cached Go module.
//
// A Job may name an already cached module by ModuleHash alone (empty
// Module): the node then needs neither the bytes nor to hash them again.
// HasModule says whether that will work; Run returns ErrModuleNotCached when
// it no longer does.
package wasm

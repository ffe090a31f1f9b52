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
// # Compiled modules
//
// One wazero Runtime serves all jobs. Compiled modules are cached by module
// hash in a bounded LRU (Config.MaxCachedModules); an evicted module is
// closed when its last running job releases it. Concurrent first runs of a
// module share one compilation. With Config.CacheDir, wazero's compilation
// cache also keeps machine code on disk, so a restarted node stays warm (it
// still decodes and validates the module, but skips code generation).
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

package wasm

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Outcome says how a job ended. Exactly one applies to every Result.
type Outcome string

const (
	OutcomeExited        Outcome = "exited"         // guest returned or called proc_exit; ExitCode valid
	OutcomeTrapped       Outcome = "trapped"        // runtime trap (unreachable, OOB, stack overflow, ...)
	OutcomeTimeout       Outcome = "timeout"        // wall-clock deadline hit
	OutcomeMemoryLimit   Outcome = "memory_limit"   // memory grow refused at limit (and the guest then failed), or declared min memory > limit
	OutcomeInvalidModule Outcome = "invalid_module" // not wasm / fails to compile / no _start / imports other than wasi_snapshot_preview1
	OutcomeHashMismatch  Outcome = "hash_mismatch"  // Job.ModuleHash given and != sha256 of bytes
)

// ProgramName is argv[0] of every job.
const ProgramName = "job"

// WASIModule is the only import module a job may use.
const WASIModule = wasi_snapshot_preview1.ModuleName

const (
	pageSize = 64 << 10
	maxPages = 65536 // wasm32: 4 GiB
)

// Limits bound one job. A zero field takes its DefaultLimits value; a
// negative field is an error.
type Limits struct {
	MemoryMB  int           // max linear memory; pages = MemoryMB*16 (64KiB pages), capped at 65536 pages
	Timeout   time.Duration // wall-clock deadline
	StdoutCap int           // bytes kept of stdout; beyond that is dropped and StdoutTruncated=true
	StderrCap int
}

// DefaultLimits is 256 MB of memory, 30 s, 1 MiB of stdout and 64 KiB of stderr.
func DefaultLimits() Limits {
	return Limits{MemoryMB: 256, Timeout: 30 * time.Second, StdoutCap: 1 << 20, StderrCap: 64 << 10}
}

// withDefaults fills zero fields and rejects negative ones.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	switch {
	case l.MemoryMB < 0:
		return l, fmt.Errorf("invalid limits: MemoryMB is %d", l.MemoryMB)
	case l.Timeout < 0:
		return l, fmt.Errorf("invalid limits: Timeout is %s", l.Timeout)
	case l.StdoutCap < 0:
		return l, fmt.Errorf("invalid limits: StdoutCap is %d", l.StdoutCap)
	case l.StderrCap < 0:
		return l, fmt.Errorf("invalid limits: StderrCap is %d", l.StderrCap)
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = d.MemoryMB
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.StdoutCap == 0 {
		l.StdoutCap = d.StdoutCap
	}
	if l.StderrCap == 0 {
		l.StderrCap = d.StderrCap
	}
	return l, nil
}

// pages is the memory limit in 64 KiB pages.
func (l Limits) pages() uint32 {
	if l.MemoryMB >= maxPages/16 {
		return maxPages
	}
	return uint32(l.MemoryMB) * 16
}

// Job is one run of a module.
//
// A Job with an empty Module and a ModuleHash runs the module already
// compiled under that hash (see HasModule) without the bytes, so a node that
// has a module need not receive or hash it again; if it is not cached, Run
// fails with ErrModuleNotCached.
type Job struct {
	Module        []byte
	ModuleHash    string   // optional "sha256:<64 hex>"; if set must match
	Args          []string // argv[1:]; argv[0] is the fixed program name "job"
	Stdin         []byte
	Limits        Limits
	Deterministic bool // fixed clock and seeded random (Seed) so every node gives identical output
	Seed          int64
}

// Result is what came out of a job.
type Result struct {
	Outcome           Outcome
	ExitCode          int    // guest code when Outcome==exited (0 when _start returns normally); -1 otherwise
	Detail            string // one line for humans, e.g. "timeout after 1s", "memory limit of 16 MB reached", "invalid module: ..."
	Stdout, Stderr    []byte
	StdoutTruncated   bool
	StderrTruncated   bool
	ModuleHash        string
	Started, Finished time.Time     // around instantiation and execution; equal when the module never ran
	WallTime          time.Duration // Finished - Started
	CompileTime       time.Duration // 0 when the compiled module came from the in-memory cache
	CacheHit          bool          // the compiled module was ready in the in-memory cache
	Tier              Tier          // the engine whose run gave this result (TierInterpreter or TierCompiler); "" when nothing ran
}

// Config configures an Executor.
type Config struct {
	CacheDir         string       // on-disk compile cache (one directory per module, see diskCache); "" = memory only
	MaxCachedModules int          // in-memory compiled module LRU size (default 64)
	MemoryCacheBytes int64        // estimated bytes of compiled modules kept in memory (default 256 MiB)
	DiskCacheBytes   int64        // bytes of compiled code kept in CacheDir (default 1 GiB)
	Tier             Tier         // "" = TierAuto
	CompileWorkers   int          // background optimising compiles at once (default half the CPUs, at least 1)
	Logger           *slog.Logger // optional
}

// Defaults of Config.
const (
	DefaultMaxCachedModules = 64
	DefaultMemoryCacheBytes = 256 << 20
	DefaultDiskCacheBytes   = 1 << 30
)

// Stats are cumulative counters of an Executor.
type Stats struct {
	Compiles           uint64 // modules compiled by the optimising compiler (or the interpreter with TierInterpreter)
	BackgroundCompiles uint64 // of those, compiled in the background while a job ran on the interpreter
	InterpCompiles     uint64 // modules compiled for the interpreter tier under TierAuto
	CacheHits          uint64 // runs that found their module compiled
	CachedModules      int    // compiled modules held now
	CachedBytes        int64  // their estimated size
	Evictions          uint64 // compiled modules dropped from memory for the bounds
	DiskModules        int    // module directories in the on-disk cache
	DiskBytes          int64  // their size
	DiskEvictions      uint64 // module directories removed for the bound
	JobsInterpreter    uint64 // runs whose result came from the interpreter
	JobsCompiler       uint64 // runs whose result came from compiled code
	TierSwitches       uint64 // runs restarted on compiled code when it became ready
	Running            int    // jobs in Run now
}

// ErrModuleNotCached is returned (wrapped) by Run for a Job that names its
// module only by hash when that module is not in the in-memory cache.
var ErrModuleNotCached = errors.New("module not in the compiled-module cache")

// ErrClosed is returned (wrapped) by Run once Close has been called,
// including for jobs Close interrupted.
var ErrClosed = errors.New("wasm executor is closed")

// Executor runs jobs. It is safe for concurrent use.
type Executor struct {
	log      *slog.Logger
	tier     Tier
	interpRT wazero.Runtime // shared by interpreter-tier modules; nil with TierCompiler
	disk     *diskCache     // nil without CacheDir
	wasi     map[string]api.FunctionDefinition
	modules  *moduleCache // the modules jobs run: compiled, or interpreted with TierInterpreter
	interp   *moduleCache // TierAuto: interpreter modules of those still compiling
	workers  chan struct{}
	memory   memPool
	baseReal wazero.ModuleConfig
	baseDet  wazero.ModuleConfig

	jobsInterp, jobsCompiled, switches atomic.Uint64

	closeCtx context.Context // cancelled by Close to stop running jobs
	cancel   context.CancelFunc
	mu       sync.RWMutex
	closed   bool
	running  sync.WaitGroup
	active   atomic.Int64
}

// New creates an Executor. Optimised code gets a wazero runtime per module
// (so that evicting it frees everything and its on-disk cache is its own
// directory); interpreted modules share one runtime.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	switch {
	case cfg.MaxCachedModules < 0:
		return nil, fmt.Errorf("wasm: MaxCachedModules is %d", cfg.MaxCachedModules)
	case cfg.MemoryCacheBytes < 0:
		return nil, fmt.Errorf("wasm: MemoryCacheBytes is %d", cfg.MemoryCacheBytes)
	case cfg.DiskCacheBytes < 0:
		return nil, fmt.Errorf("wasm: DiskCacheBytes is %d", cfg.DiskCacheBytes)
	case cfg.CompileWorkers < 0:
		return nil, fmt.Errorf("wasm: CompileWorkers is %d", cfg.CompileWorkers)
	}
	if cfg.MaxCachedModules == 0 {
		cfg.MaxCachedModules = DefaultMaxCachedModules
	}
	if cfg.MemoryCacheBytes == 0 {
		cfg.MemoryCacheBytes = DefaultMemoryCacheBytes
	}
	if cfg.DiskCacheBytes == 0 {
		cfg.DiskCacheBytes = DefaultDiskCacheBytes
	}
	if cfg.CompileWorkers == 0 {
		cfg.CompileWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.Tier == "" {
		cfg.Tier = TierAuto
	}
	if err := cfg.Tier.Validate(); err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Executor{log: log, tier: cfg.Tier, workers: make(chan struct{}, cfg.CompileWorkers)}
	if cfg.CacheDir != "" && cfg.Tier != TierInterpreter {
		var err error
		if e.disk, err = openDiskCache(cfg.CacheDir, cfg.DiskCacheBytes, log); err != nil {
			return nil, err
		}
	}
	// The WASI signatures are the same in every runtime: read them once.
	probe, err := newRuntime(ctx, wazero.NewRuntimeConfigInterpreter())
	if err != nil {
		return nil, err
	}
	e.wasi = probe.Module(WASIModule).ExportedFunctionDefinitions()
	if cfg.Tier == TierCompiler {
		_ = probe.Close(ctx)
	} else {
		e.interpRT = probe
	}
	e.closeCtx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	switch cfg.Tier {
	case TierInterpreter:
		e.modules = newModuleCache(cfg.MaxCachedModules, e.compileInterp)
		e.modules.maxBytes = cfg.MemoryCacheBytes
	case TierCompiler:
		e.modules = newModuleCache(cfg.MaxCachedModules, e.compileOptimised)
		e.modules.maxBytes = cfg.MemoryCacheBytes
	default:
		// Interpreter modules live only until their compiled code is
		// ready; they get half of the memory bound (their arrays are
		// large: see moduleSize).
		e.modules = newModuleCache(cfg.MaxCachedModules, e.compileOptimised)
		e.modules.maxBytes = cfg.MemoryCacheBytes - cfg.MemoryCacheBytes/2
		e.interp = newModuleCache(cfg.MaxCachedModules, e.compileInterp)
		e.interp.maxBytes = cfg.MemoryCacheBytes / 2
		e.modules.onCompiled = e.interp.remove
	}
	// No FS, no environment, no sockets: a fresh ModuleConfig has none.
	// The name is set (to empty) so a module's own name section cannot make
	// two concurrent instances collide in the runtime's namespace.
	base := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	e.baseReal = base.WithSysWalltime().WithSysNanotime().WithRandSource(crand.Reader)
	// Left unset, wazero gives each instance fresh fake clocks (walltime
	// fixed at its epoch and nanotime starting at 0, both advancing 1 ms per
	// reading) and a no-op nanosleep: deterministic on every node.
	e.baseDet = base
	return e, nil
}

// Validate reports whether t is a known tier ("" is not).
func (t Tier) Validate() error {
	switch t {
	case TierAuto, TierInterpreter, TierCompiler:
		return nil
	}
	return fmt.Errorf("tier %q is not one of %s, %s, %s", string(t), TierAuto, TierInterpreter, TierCompiler)
}

// newRuntime makes a runtime with the WASI host module.
func newRuntime(ctx context.Context, rc wazero.RuntimeConfig) (wazero.Runtime, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, rc.WithCloseOnContextDone(true).WithDebugInfoEnabled(false))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiating WASI: %w", err)
	}
	return rt, nil
}

// Close stops running jobs (their Run returns an error), and frees compiled
// modules and the runtime.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.running.Wait()
	e.modules.bg.Wait() // a compile cannot be interrupted: let it finish
	e.modules.closeAll()
	if e.interp != nil {
		e.interp.closeAll()
	}
	if e.interpRT != nil {
		if err := e.interpRT.Close(ctx); err != nil {
			return fmt.Errorf("wasm: closing runtime: %w", err)
		}
	}
	return nil
}

// Stats returns the executor's counters.
func (e *Executor) Stats() Stats {
	st := Stats{
		Compiles:           e.modules.compiles.Load(),
		BackgroundCompiles: e.modules.bgCompiles.Load(),
		CacheHits:          e.modules.hits.Load(),
		Evictions:          e.modules.evictions.Load(),
		JobsInterpreter:    e.jobsInterp.Load(),
		JobsCompiler:       e.jobsCompiled.Load(),
		TierSwitches:       e.switches.Load(),
		Running:            int(e.active.Load()),
	}
	st.CachedModules, st.CachedBytes = e.modules.usage()
	if e.interp != nil {
		st.InterpCompiles = e.interp.compiles.Load()
	}
	if e.disk != nil {
		st.DiskModules, st.DiskBytes = e.disk.usage()
		st.DiskEvictions = e.disk.evictions.Load()
	}
	return st
}

// HasModule reports whether the module with this hash is compiled and
// cached, so a Job may name it by hash alone. The answer can go stale (the
// LRU may evict it before the job runs); Run then returns
// ErrModuleNotCached and the caller can ask for the bytes.
func (e *Executor) HasModule(hash string) bool {
	return e.modules.has(hash) || (e.interp != nil && e.interp.has(hash))
}

// Prepare compiles module with the executor's final tier into its caches
// (memory and disk) without running it. A module that cannot be compiled
// is an error naming why.
func (e *Executor) Prepare(ctx context.Context, module []byte) error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return fmt.Errorf("wasm: %w", ErrClosed)
	}
	e.running.Add(1)
	e.mu.RUnlock()
	defer e.running.Done()
	cm, _, _, err := e.modules.acquire(ctx, HashModule(module), module, true)
	if err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	e.modules.release(cm)
	return nil
}

// ModuleCacheDir is the directory of the module with this hash in the
// compile cache at cacheDir; it exists once a compile of it has begun.
func ModuleCacheDir(cacheDir, hash string) string {
	return filepath.Join(cacheDir, strings.TrimPrefix(hash, "sha256:"))
}

// CompiledOnDisk reports whether the compile cache in cacheDir holds code
// for the module with this hash (it may still turn out stale or unusable:
// it is then compiled again).
func CompiledOnDisk(cacheDir, hash string) bool {
	n, err := dirSize(ModuleCacheDir(cacheDir, hash))
	return err == nil && n > 0
}

// HashModule is the module hash used throughout the protocol.
func HashModule(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// invalidModuleError marks a module we refuse to run.
type invalidModuleError struct{ reason string }

func (e *invalidModuleError) Error() string { return "invalid module: " + e.reason }

func invalidf(format string, args ...any) error {
	return &invalidModuleError{reason: fmt.Sprintf(format, args...)}
}

// checkImports refuses, before any compilation, a module whose imports we
// could never satisfy; it returns the declared minimum memory.
func checkImports(module []byte) (uint32, error) {
	info, err := inspectModule(module)
	if err != nil {
		return 0, invalidf("%s", err)
	}
	for _, im := range info.imports {
		if im.module != WASIModule {
			return 0, invalidf("imports %s %s from module %s: only %s functions are available",
				externName(im.kind), quoteName(im.name), quoteName(im.module), WASIModule)
		}
		if im.kind != externFunc {
			return 0, invalidf("imports %s %s from %s, which only provides functions",
				externName(im.kind), quoteName(im.name), WASIModule)
		}
	}
	return info.minPages, nil
}

// compileOptimised checks and compiles a module with wazero's optimising
// compiler in a runtime of its own, whose compilation cache is the
// module's directory in the disk cache. It runs once per hash at a time
// (see moduleCache); its result is shared by every job that waited on it.
func (e *Executor) compileOptimised(_ context.Context, hash string, module []byte) (cm *compiledModule, err error) {
	defer compilerPanic(&cm, &err)
	minPages, err := checkImports(module)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	code := coalesceData(module)
	// Compilation is shared by every waiter, so one caller giving up must
	// not cancel it.
	ctx := context.Background()
	var dir string
	if e.disk != nil {
		if dir, err = e.disk.begin(hash); err != nil {
			e.log.Warn("compile cache unavailable; compiling in memory only", "event", "wasm_cache_error", "error", err.Error())
		}
	}
	cm, err = e.compileIn(ctx, dir, code)
	if err != nil && dir != "" {
		// wazero fails a compile when it cannot write the cache (a full or
		// read-only disk): tell that from an invalid module by compiling
		// once more without the disk.
		cm, err = e.compileIn(ctx, "", code)
		if err == nil {
			e.log.Warn("compile cache write failed; module compiled in memory only", "event", "wasm_cache_error", "module_hash", hash)
		}
	}
	var diskSize int64
	if dir != "" {
		diskSize = e.disk.end(hash)
	}
	if err != nil {
		return nil, err
	}
	if err := e.checkLinkage(cm.mod); err != nil {
		closeModules([]*compiledModule{cm})
		return nil, err
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "wasm.compile",
		slog.String("module_hash", hash), slog.Int("size", len(module)),
		slog.Duration("compile_time", time.Since(start)))
	cm.hash, cm.tier, cm.minPages = hash, TierCompiler, minPages
	cm.size = moduleSize(TierCompiler, len(module), diskSize)
	return cm, nil
}

// compilerPanic, deferred by a compile, turns a panic in wazero into an
// invalid_module error: a module that crashes the compiler must not crash
// the node, nor leave the jobs waiting on the compilation hanging.
func compilerPanic(cm **compiledModule, err *error) {
	if p := recover(); p != nil {
		*cm, *err = nil, invalidf("compiler failed: %s", oneLine(fmt.Sprint(p)))
	}
}

// compileIn compiles code in a new runtime whose compilation cache is dir
// ("" = none). A runtime with a cache does not own its engine: the cache
// does, so the returned module closes both (see closeModules).
func (e *Executor) compileIn(ctx context.Context, dir string, code []byte) (*compiledModule, error) {
	rc := wazero.NewRuntimeConfigCompiler()
	var cc wazero.CompilationCache
	if dir != "" {
		var err error
		if cc, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
			return nil, fmt.Errorf("wasm: compile cache %s: %w", dir, err)
		}
		rc = rc.WithCompilationCache(cc)
	}
	cm := &compiledModule{cc: cc}
	var err error
	if cm.rt, err = newRuntime(ctx, rc); err != nil {
		closeModules([]*compiledModule{cm})
		return nil, err
	}
	if cm.mod, err = cm.rt.CompileModule(ctx, code); err != nil {
		closeModules([]*compiledModule{cm})
		return nil, invalidf("compile: %s", oneLine(err.Error()))
	}
	return cm, nil
}

// compileInterp checks and compiles a module for wazero's interpreter, in
// the shared interpreter runtime.
func (e *Executor) compileInterp(_ context.Context, hash string, module []byte) (cm *compiledModule, err error) {
	defer compilerPanic(&cm, &err)
	minPages, err := checkImports(module)
	if err != nil {
		return nil, err
	}
	compiled, err := e.interpRT.CompileModule(context.Background(), coalesceData(module))
	if err != nil {
		return nil, invalidf("compile: %s", oneLine(err.Error()))
	}
	if err := e.checkLinkage(compiled); err != nil {
		_ = compiled.Close(context.Background())
		return nil, err
	}
	return &compiledModule{hash: hash, mod: compiled, tier: TierInterpreter, minPages: minPages,
		size: moduleSize(TierInterpreter, len(module), 0)}, nil
}

// moduleSize estimates the memory a compiled module holds: wazero does not
// say. Compiled code is about the size of its on-disk cache entry, plus the
// decoded module (of the order of its bytes); without a disk entry, or for
// the interpreter's instruction arrays, a multiple of the module's size.
// Measured for examples/hello (2.3 MB): 8.2 MB on disk, ~12 MB of RSS per
// compiled module. The interpreter's arrays are Go heap, one entry of
// ~60 bytes per instruction: 20× the module's bytes for hello, 41× for a
// module of nothing but dense straight-line code; 40× errs on the large
// side, so that a cache of such modules stays within its bound.
func moduleSize(t Tier, moduleBytes int, diskBytes int64) int64 {
	switch {
	case t == TierInterpreter:
		return 40 * int64(moduleBytes)
	case diskBytes > 0:
		return diskBytes + int64(moduleBytes)
	default:
		return 5 * int64(moduleBytes)
	}
}

// checkLinkage makes sure instantiation cannot fail on imports, so that an
// instantiation error is always the guest's own doing (a start-function
// trap, an out-of-bounds data segment), and that _start exists.
func (e *Executor) checkLinkage(cm wazero.CompiledModule) error {
	for _, f := range cm.ImportedFunctions() {
		_, name, _ := f.Import()
		host, ok := e.wasi[name]
		if !ok {
			return invalidf("imports unknown function %s from %s", quoteName(name), WASIModule)
		}
		if !slices.Equal(f.ParamTypes(), host.ParamTypes()) || !slices.Equal(f.ResultTypes(), host.ResultTypes()) {
			return invalidf("imports %s.%s with the wrong signature", WASIModule, name)
		}
	}
	if len(cm.ImportedMemories()) > 0 {
		return invalidf("imports a memory")
	}
	start, ok := cm.ExportedFunctions()["_start"]
	if !ok {
		return invalidf("no exported _start function")
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return invalidf("_start must take no parameters and return nothing")
	}
	return nil
}

// Run runs one job in a fresh sandbox. Every guest failure is an Outcome; the
// error is only for a bad Job (negative limits, NUL in an argument), a
// harness failure, the executor being closed, or ctx ending before the guest
// finished (then it wraps ctx.Err()).
func (e *Executor) Run(ctx context.Context, job Job) (res Result, err error) {
	res.ExitCode = -1
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("wasm: run not started: %w", err)
	}
	limits, err := job.Limits.withDefaults()
	if err != nil {
		return res, fmt.Errorf("wasm: %w", err)
	}
	for i, a := range job.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return res, fmt.Errorf("wasm: argument %d contains a NUL byte", i+1)
		}
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return res, fmt.Errorf("wasm: %w", ErrClosed)
	}
	e.running.Add(1)
	e.active.Add(1)
	e.mu.RUnlock()
	defer func() {
		e.active.Add(-1)
		e.running.Done()
	}()

	byHash := len(job.Module) == 0 && job.ModuleHash != ""
	if byHash {
		res.ModuleHash = job.ModuleHash
	} else {
		res.ModuleHash = HashModule(job.Module)
	}
	early := func(o Outcome, detail string) (Result, error) {
		res.Outcome, res.Detail = o, detail
		res.Started = time.Now()
		res.Finished = res.Started
		e.logRun(ctx, &res)
		return res, nil
	}
	if !byHash && job.ModuleHash != "" && job.ModuleHash != res.ModuleHash {
		return early(OutcomeHashMismatch, fmt.Sprintf("module hash mismatch: job says %s, bytes hash to %s",
			quoteName(job.ModuleHash), res.ModuleHash))
	}

	if byHash {
		// Only a module compiled (or, under TierAuto, still held for the
		// interpreter) can run without its bytes.
		cm, hit, waited, err := e.modules.acquire(ctx, res.ModuleHash, nil, false)
		if errors.Is(err, ErrModuleNotCached) && e.interp != nil {
			if im := e.interp.tryAcquire(res.ModuleHash); im != nil {
				return e.runTiered(ctx, job, limits, &res, im, 0, nil)
			}
		}
		if err != nil {
			return e.acquireFailed(ctx, &res, err, waited)
		}
		return e.runOn(ctx, job, limits, &res, cm, hit, waited)
	}
	if e.tier != TierAuto {
		cm, hit, waited, err := e.modules.acquire(ctx, res.ModuleHash, job.Module, true)
		if err != nil {
			return e.acquireFailed(ctx, &res, err, waited)
		}
		return e.runOn(ctx, job, limits, &res, cm, hit, waited)
	}

	// TierAuto: compiled code when it is ready, or on disk (loading it
	// takes less than compiling for the interpreter); otherwise start
	// compiling it in the background and run on the interpreter meanwhile.
	if e.disk != nil && e.disk.has(res.ModuleHash) && e.modules.failure(res.ModuleHash) == nil {
		cm, hit, waited, err := e.modules.acquire(ctx, res.ModuleHash, job.Module, true)
		if err != nil {
			return e.acquireFailed(ctx, &res, err, waited)
		}
		return e.runOn(ctx, job, limits, &res, cm, hit, waited)
	}
	for {
		if cm := e.modules.tryAcquire(res.ModuleHash); cm != nil {
			return e.runOn(ctx, job, limits, &res, cm, true, 0)
		}
		if ferr := e.modules.failure(res.ModuleHash); ferr != nil {
			return e.acquireFailed(ctx, &res, ferr, 0)
		}
		f, ready := e.modules.background(e.closeCtx, e.workers, res.ModuleHash, job.Module)
		if ready {
			continue // compiled between the two looks
		}
		im, _, waited, err := e.interp.acquire(ctx, res.ModuleHash, job.Module, true)
		if err != nil {
			return e.acquireFailed(ctx, &res, err, waited)
		}
		return e.runTiered(ctx, job, limits, &res, im, waited, f)
	}
}

// acquireFailed turns a failure to get a compiled module into the Result or
// error Run returns.
func (e *Executor) acquireFailed(ctx context.Context, res *Result, err error, waited time.Duration) (Result, error) {
	var inv *invalidModuleError
	switch {
	case errors.As(err, &inv):
		res.CompileTime = waited
		res.Outcome, res.Detail = OutcomeInvalidModule, inv.Error()
		res.Started = time.Now()
		res.Finished = res.Started
		e.logRun(ctx, res)
		return *res, nil
	case errors.Is(err, ErrModuleNotCached):
		return *res, fmt.Errorf("wasm: module %s: %w", quoteName(res.ModuleHash), err)
	case errors.Is(err, ErrClosed):
		return *res, fmt.Errorf("wasm: %w", err)
	default:
		return *res, fmt.Errorf("wasm: waiting for compilation: %w", err)
	}
}

// runOn runs the job on one module and gives its reference back.
func (e *Executor) runOn(ctx context.Context, job Job, limits Limits, res *Result, cm *compiledModule, hit bool, waited time.Duration) (Result, error) {
	defer e.modules.release(cm)
	res.CacheHit, res.CompileTime = hit, waited
	begin := time.Now()
	st, err := e.attempt(ctx, cm, job, limits, begin.Add(limits.Timeout), res, nil)
	setStart(res, st, begin)
	return e.finishRun(ctx, res, st, err, limits)
}

// runTiered runs the job on the interpreter module im (a reference the
// caller took from e.interp) while the background compile f (nil when none
// could be queued) proceeds. If f finishes first, the interpreted run is
// stopped and the job starts again from the beginning on the compiled
// code. A job has no effects outside its captured output, so the abandoned
// run leaves nothing behind.
//
// The time limit is the guest's, as with compile-then-run, where it starts
// after the compile: the compiled run gets the whole limit, and an
// interpreted run that reaches the limit before the compile is done waits
// for it and starts again on the compiled code. So a job times out on the
// tiered path exactly when its compiled run would (unless its module could
// not be compiled or queued for compiling: then the interpreter decides).
func (e *Executor) runTiered(ctx context.Context, job Job, limits Limits, res *Result, im *compiledModule, waited time.Duration, f *flight) (Result, error) {
	defer e.interp.release(im)
	res.CompileTime = waited
	begin := time.Now()
	var ready <-chan struct{}
	if f != nil {
		ready = f.done
	}
	st, err := e.attempt(ctx, im, job, limits, begin.Add(limits.Timeout), res, ready)
	if err == nil && f != nil && st.interrupted() && ctx.Err() == nil && e.closeCtx.Err() == nil {
		// Stopped for the switch, or at the time limit with the compile
		// still running: wait for it.
		select {
		case <-f.done:
		case <-ctx.Done():
		case <-e.closeCtx.Done():
		}
		if f.err == nil && ctx.Err() == nil && e.closeCtx.Err() == nil {
			deadline := time.Now().Add(limits.Timeout)
			if cm := e.modules.tryAcquire(res.ModuleHash); cm != nil {
				e.switches.Add(1)
				defer e.modules.release(cm)
				st, err = e.attempt(ctx, cm, job, limits, deadline, res, nil)
			} else {
				// Evicted again at once (a module alone over the memory
				// bound): start over on the interpreter.
				st, err = e.attempt(ctx, im, job, limits, deadline, res, nil)
			}
		}
	}
	setStart(res, st, begin)
	return e.finishRun(ctx, res, st, err, limits)
}

// setStart makes the result's wall time count from when the job's deadline
// started (before instantiation, and before any earlier attempt).
func setStart(res *Result, st runState, begin time.Time) {
	if st.tooBig {
		return
	}
	res.Started = begin
	res.WallTime = res.Finished.Sub(begin)
}

// finishRun classifies how the final attempt ended.
func (e *Executor) finishRun(ctx context.Context, res *Result, st runState, err error, limits Limits) (Result, error) {
	if err != nil {
		return *res, err
	}
	if st.tooBig {
		e.logRun(ctx, res)
		return *res, nil
	}
	res.Tier = st.tier
	if st.tier == TierInterpreter {
		e.jobsInterp.Add(1)
	} else {
		e.jobsCompiled.Add(1)
	}
	classify(ctx, res, st, limits)
	if res.Outcome == "" { // the caller's context or Close ended the run
		if ctx.Err() != nil {
			return *res, fmt.Errorf("wasm: run interrupted: %w", ctx.Err())
		}
		return *res, fmt.Errorf("wasm: run interrupted: %w", ErrClosed)
	}
	e.logRun(ctx, res)
	return *res, nil
}

// runState is what classify needs to know about how the run ended.
type runState struct {
	err      error // from instantiation or _start
	ctxErr   error // the job context's error when the guest stopped
	closing  bool  // Close interrupted the run
	refused  bool  // a memory.grow was refused at the limit
	switched bool  // stopped because compiled code became ready
	tooBig   bool  // never ran: the declared minimum memory is over the limit (Outcome set)
	tier     Tier
}

// interrupted: the guest did not finish by itself but was stopped through
// its context.
func (st runState) interrupted() bool {
	var exit *sys.ExitError
	isExit := errors.As(st.err, &exit)
	return st.err != nil && st.ctxErr != nil &&
		(!isExit || exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled)
}

// attempt checks the declared memory and runs the job once on cm, stopping
// at deadline, or when ready is closed by a successful compile (switched).
// Everything it reports (output, refused grows) is this attempt's own.
func (e *Executor) attempt(ctx context.Context, cm *compiledModule, job Job, limits Limits, deadline time.Time, res *Result, ready <-chan struct{}) (st runState, err error) {
	st.tier = cm.tier
	limitPages := limits.pages()
	if cm.minPages > limitPages {
		res.Outcome = OutcomeMemoryLimit
		res.Detail = fmt.Sprintf("module declares a minimum memory of %d pages (%s), over the limit of %d pages (%s)",
			cm.minPages, pagesSize(cm.minPages), limitPages, pagesSize(limitPages))
		res.Started = time.Now()
		res.Finished = res.Started
		st.tooBig = true
		return st, nil
	}
	return e.execute(ctx, cm, job, limits, deadline, res, ready)
}

// execute instantiates the module and calls _start. A harness panic (a bug)
// becomes an error rather than taking the node down.
func (e *Executor) execute(ctx context.Context, cm *compiledModule, job Job, limits Limits, deadline time.Time, res *Result, ready <-chan struct{}) (st runState, err error) {
	st.tier = cm.tier
	stdout := &cappedBuffer{limit: limits.StdoutCap}
	stderr := &cappedBuffer{limit: limits.StderrCap}
	alloc := &limitAllocator{limit: uint64(limits.pages()) * pageSize, pool: &e.memory}

	// The guest's context starts from Background, not from ctx: wazero reads
	// experimental options (sockets, listeners, allocators) from context
	// values, and nothing the caller's context carries may reach the
	// sandbox. The caller's cancellation and Close are forwarded instead.
	runCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	stopCaller := context.AfterFunc(ctx, cancel)
	defer stopCaller()
	stopClose := context.AfterFunc(e.closeCtx, cancel)
	defer stopClose()
	var switched atomic.Bool
	if ready != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-ready:
				if e.modules.has(res.ModuleHash) {
					switched.Store(true)
					cancel()
				}
			case <-stop:
			}
		}()
	}

	var cfg wazero.ModuleConfig
	if job.Deterministic {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:8], uint64(job.Seed))
		cfg = e.baseDet.WithRandSource(mrand.NewChaCha8(seed))
	} else {
		cfg = e.baseReal.WithNanosleep(func(ns int64) { sleepUntil(runCtx, ns) })
	}
	cfg = cfg.WithArgs(append([]string{ProgramName}, job.Args...)...).
		WithStdin(bytes.NewReader(job.Stdin)).
		WithStdout(stdout).
		WithStderr(stderr)

	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("wasm: executor panic running %s: %v", res.ModuleHash, p)
		}
		res.Finished = time.Now()
		res.WallTime = res.Finished.Sub(res.Started)
		res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated()
		res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated()
	}()

	rt := cm.rt
	if rt == nil {
		rt = e.interpRT
	}
	res.Started = time.Now()
	mod, runErr := rt.InstantiateModule(experimental.WithMemoryAllocator(runCtx, alloc), cm.mod, cfg)
	if runErr == nil {
		_, runErr = mod.ExportedFunction("_start").Call(runCtx)
		// Closing frees the instance's memory and its context watcher; a
		// guest that exited is already closed and this is a no-op.
		_ = mod.Close(context.Background())
	}
	// The guest has stopped (and its module is closed, or never registered
	// when instantiation failed): its memory can serve the next job.
	alloc.recycle()
	st = runState{err: runErr, ctxErr: runCtx.Err(), closing: e.closeCtx.Err() != nil, refused: alloc.refused,
		switched: switched.Load(), tier: cm.tier}
	return st, nil
}

// sleepUntil is the guest's nanosleep (poll_oneoff with a clock). wazero
// cannot interrupt a host function, so the sleep watches the job's context
// itself. When the context ends first it unwinds the guest the way
// proc_exit does, with the exit code wazero uses for a closed context:
// returning early would let the guest carry on as if it had slept, and
// finish as "exited" although its deadline had passed.
func sleepUntil(ctx context.Context, ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		code := uint32(sys.ExitCodeContextCanceled)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = sys.ExitCodeDeadlineExceeded
		}
		panic(sys.NewExitError(code))
	}
}

// classify turns how a run ended into an Outcome. The rules, in order:
//
//  1. The guest finished (returned from _start or called proc_exit) before
//     anything interrupted it: exited with its code, unless the code is not 0
//     and a memory.grow was refused at the limit, which is memory_limit
//     (a Go guest dies with "out of memory" and exit code 2, for example).
//  2. The run was cut short: by the caller's ctx or by Close, Outcome is left
//     empty and Run returns an error; by the job's own deadline, timeout.
//  3. Any other error is a trap, or memory_limit when a memory.grow was
//     refused at the limit before it (testwasm Grow: refused, then
//     unreachable).
//
// A refused grow that the guest handled and then exited 0 is a success.
func classify(ctx context.Context, res *Result, st runState, limits Limits) {
	var exit *sys.ExitError
	isExit := errors.As(st.err, &exit)
	interrupted := st.err != nil && st.ctxErr != nil &&
		(!isExit || exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled)
	switch {
	case st.err == nil:
		res.Outcome, res.ExitCode = OutcomeExited, 0
		res.Detail = "exited with code 0"
	case interrupted && (ctx.Err() != nil || st.closing):
		res.Outcome = ""
	case interrupted:
		res.Outcome = OutcomeTimeout
		res.Detail = fmt.Sprintf("timeout after %s", limits.Timeout)
	case st.refused && (!isExit || exit.ExitCode() != 0):
		res.Outcome = OutcomeMemoryLimit
		res.Detail = fmt.Sprintf("memory limit of %d MB reached", limits.MemoryMB)
		if isExit {
			res.Detail += fmt.Sprintf(" (guest exited with code %d)", exit.ExitCode())
		}
	case isExit:
		res.Outcome, res.ExitCode = OutcomeExited, int(exit.ExitCode())
		res.Detail = fmt.Sprintf("exited with code %d", exit.ExitCode())
	default:
		res.Outcome = OutcomeTrapped
		res.Detail = "trapped: " + oneLine(st.err.Error())
	}
}

func (e *Executor) logRun(ctx context.Context, res *Result) {
	if !e.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	// Detail may quote guest-chosen names; slog escapes it like any value.
	e.log.LogAttrs(ctx, slog.LevelDebug, "wasm.run",
		slog.String("module_hash", res.ModuleHash),
		slog.String("outcome", string(res.Outcome)),
		slog.Int("exit_code", res.ExitCode),
		slog.String("detail", res.Detail),
		slog.Duration("wall_time", res.WallTime),
		slog.Duration("compile_time", res.CompileTime),
		slog.Bool("cache_hit", res.CacheHit),
		slog.Int("stdout_bytes", len(res.Stdout)),
		slog.Int("stderr_bytes", len(res.Stderr)))
}

func pagesSize(pages uint32) string {
	return fmt.Sprintf("%d MB", uint64(pages)*pageSize>>20)
}

// oneLine keeps the first line of an error message, printable and bounded,
// because wazero messages can carry guest-chosen names and stack traces.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 200
	var b strings.Builder
	for i, r := range s {
		if i >= max {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			b.WriteRune('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quoteName quotes a guest-chosen name for a Detail line, shortened.
func quoteName(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// Tier is an execution engine of wazero.
type Tier string

const (
	TierAuto        Tier = "auto"        // interpreter until the optimising compile is ready (see the package doc)
	TierInterpreter Tier = "interpreter" // wazero's interpreter only
	TierCompiler    Tier = "compiler"    // wazero's optimising compiler only: compile, then run
)

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
}

// Config configures an Executor.
type Config struct {
	CacheDir         string       // on-disk compilation cache dir (wazero.NewCompilationCacheWithDir); "" = memory only
	MaxCachedModules int          // in-memory compiled module LRU size (default 64)
	Logger           *slog.Logger // optional
}

// Stats are cumulative counters of an Executor.
type Stats struct {
	Compiles      uint64 // modules compiled (in-memory cache misses that compiled)
	CacheHits     uint64 // runs that found their module compiled
	CachedModules int    // compiled modules held now
	Running       int    // jobs in Run now
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
	runtime  wazero.Runtime
	ccache   wazero.CompilationCache
	wasi     map[string]api.FunctionDefinition
	modules  *moduleCache
	memory   memPool
	baseReal wazero.ModuleConfig
	baseDet  wazero.ModuleConfig

	closeCtx context.Context // cancelled by Close to stop running jobs
	cancel   context.CancelFunc
	mu       sync.RWMutex
	closed   bool
	running  sync.WaitGroup
	active   atomic.Int64
}

// New creates an Executor with one wazero runtime and its WASI host module.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.MaxCachedModules < 0 {
		return nil, fmt.Errorf("wasm: MaxCachedModules is %d", cfg.MaxCachedModules)
	}
	if cfg.MaxCachedModules == 0 {
		cfg.MaxCachedModules = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cc wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cc, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache in %s: %w", cfg.CacheDir, err)
		}
	} else {
		cc = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithDebugInfoEnabled(false).
		WithCompilationCache(cc)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		_ = cc.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiating WASI: %w", err)
	}
	e := &Executor{
		log:     log,
		runtime: rt,
		ccache:  cc,
		wasi:    rt.Module(WASIModule).ExportedFunctionDefinitions(),
	}
	e.closeCtx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.modules = newModuleCache(cfg.MaxCachedModules, e.compile)
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
	e.modules.closeAll()
	err := e.runtime.Close(ctx)
	if cerr := e.ccache.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wasm: closing runtime: %w", err)
	}
	return nil
}

// Stats returns the executor's counters.
func (e *Executor) Stats() Stats {
	return Stats{
		Compiles:      e.modules.compiles.Load(),
		CacheHits:     e.modules.hits.Load(),
		CachedModules: e.modules.len(),
		Running:       int(e.active.Load()),
	}
}

// HasModule reports whether the module with this hash is compiled and
// cached, so a Job may name it by hash alone. The answer can go stale (the
// LRU may evict it before the job runs); Run then returns
// ErrModuleNotCached and the caller can ask for the bytes.
func (e *Executor) HasModule(hash string) bool {
	return e.modules.has(hash)
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

// compile checks and compiles a module. It runs once per hash at a time
// (see moduleCache); its result is shared by every job that waited on it.
func (e *Executor) compile(_ context.Context, hash string, module []byte) (cm *compiledModule, err error) {
	// A module that crashes the compiler must not crash the node, nor leave
	// the jobs waiting on this compilation hanging.
	defer func() {
		if p := recover(); p != nil {
			cm, err = nil, invalidf("compiler failed: %s", oneLine(fmt.Sprint(p)))
		}
	}()
	info, err := inspectModule(module)
	if err != nil {
		return nil, invalidf("%s", err)
	}
	for _, im := range info.imports {
		if im.module != WASIModule {
			return nil, invalidf("imports %s %s from module %s: only %s functions are available",
				externName(im.kind), quoteName(im.name), quoteName(im.module), WASIModule)
		}
		if im.kind != externFunc {
			return nil, invalidf("imports %s %s from %s, which only provides functions",
				externName(im.kind), quoteName(im.name), WASIModule)
		}
	}
	start := time.Now()
	// Compilation is shared by every waiter, so one caller giving up must
	// not cancel it.
	compiled, err := e.runtime.CompileModule(context.Background(), coalesceData(module))
	if err != nil {
		return nil, invalidf("compile: %s", oneLine(err.Error()))
	}
	if err := e.checkLinkage(compiled); err != nil {
		_ = compiled.Close(context.Background())
		return nil, err
	}
	e.log.LogAttrs(context.Background(), slog.LevelDebug, "wasm.compile",
		slog.String("module_hash", hash), slog.Int("size", len(module)),
		slog.Duration("compile_time", time.Since(start)))
	return &compiledModule{hash: hash, mod: compiled, minPages: info.minPages}, nil
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

	var (
		cm     *compiledModule
		hit    bool
		waited time.Duration
	)
	if byHash {
		cm, hit, waited, err = e.modules.acquire(ctx, res.ModuleHash, nil, false)
	} else {
		cm, hit, waited, err = e.modules.acquire(ctx, res.ModuleHash, job.Module, true)
	}
	if err != nil {
		var inv *invalidModuleError
		switch {
		case errors.As(err, &inv):
			res.CompileTime = waited
			return early(OutcomeInvalidModule, inv.Error())
		case errors.Is(err, ErrModuleNotCached):
			return res, fmt.Errorf("wasm: module %s: %w", quoteName(res.ModuleHash), err)
		case errors.Is(err, ErrClosed):
			return res, fmt.Errorf("wasm: %w", err)
		default:
			return res, fmt.Errorf("wasm: waiting for compilation: %w", err)
		}
	}
	defer e.modules.release(cm)
	res.CacheHit, res.CompileTime = hit, waited

	limitPages := limits.pages()
	if cm.minPages > limitPages {
		return early(OutcomeMemoryLimit, fmt.Sprintf(
			"module declares a minimum memory of %d pages (%s), over the limit of %d pages (%s)",
			cm.minPages, pagesSize(cm.minPages), limitPages, pagesSize(limitPages)))
	}

	st, err := e.execute(ctx, cm, job, limits, &res)
	if err != nil {
		return res, err
	}
	classify(ctx, &res, st, limits)
	if res.Outcome == "" { // the caller's context or Close ended the run
		if ctx.Err() != nil {
			return res, fmt.Errorf("wasm: run interrupted: %w", ctx.Err())
		}
		return res, fmt.Errorf("wasm: run interrupted: %w", ErrClosed)
	}
	e.logRun(ctx, &res)
	return res, nil
}

// runState is what classify needs to know about how the run ended.
type runState struct {
	err     error // from instantiation or _start
	ctxErr  error // the job context's error when the guest stopped
	closing bool  // Close interrupted the run
	refused bool  // a memory.grow was refused at the limit
}

// execute instantiates the module and calls _start. A harness panic (a bug)
// becomes an error rather than taking the node down.
func (e *Executor) execute(ctx context.Context, cm *compiledModule, job Job, limits Limits, res *Result) (st runState, err error) {
	stdout := &cappedBuffer{limit: limits.StdoutCap}
	stderr := &cappedBuffer{limit: limits.StderrCap}
	alloc := &limitAllocator{limit: uint64(limits.pages()) * pageSize, pool: &e.memory}

	// The guest's context starts from Background, not from ctx: wazero reads
	// experimental options (sockets, listeners, allocators) from context
	// values, and nothing the caller's context carries may reach the
	// sandbox. The caller's cancellation and Close are forwarded instead.
	runCtx, cancel := context.WithTimeout(context.Background(), limits.Timeout)
	defer cancel()
	stopCaller := context.AfterFunc(ctx, cancel)
	defer stopCaller()
	stopClose := context.AfterFunc(e.closeCtx, cancel)
	defer stopClose()

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

	res.Started = time.Now()
	mod, runErr := e.runtime.InstantiateModule(experimental.WithMemoryAllocator(runCtx, alloc), cm.mod, cfg)
	if runErr == nil {
		_, runErr = mod.ExportedFunction("_start").Call(runCtx)
		// Closing frees the instance's memory and its context watcher; a
		// guest that exited is already closed and this is a no-op.
		_ = mod.Close(context.Background())
	}
	// The guest has stopped (and its module is closed, or never registered
	// when instantiation failed): its memory can serve the next job.
	alloc.recycle()
	st = runState{err: runErr, ctxErr: runCtx.Err(), closing: e.closeCtx.Err() != nil, refused: alloc.refused}
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

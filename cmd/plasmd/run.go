package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wasm"
)

const runAbout = `Runs MODULE.wasm (WASI preview 1) in the local sandbox: no filesystem, no
environment, no network. Guest stdout and stderr go to stdout and stderr (capped), and
the exit status is the guest's exit code. When the guest did not exit, plasmd prints one
line naming the outcome on stderr and exits with:
  121 invalid module   122 trapped   123 memory limit   124 timeout   125 hash mismatch
  120 plasmd could not run the job (unreadable file, bad manifest)   2 usage error
With --manifest, the manifest's module_hash must match the module and its memory_mb
and timeout_seconds apply unless given as flags.`

func cmdRun(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "run", "[FLAGS] MODULE.wasm [-- ARG...]", runAbout)
	def := wasm.DefaultLimits()
	memoryMB := fs.Int("memory-mb", def.MemoryMB, "memory limit for the guest in MB (1–32768)")
	timeout := fs.Float64("timeout", def.Timeout.Seconds(), "wall-clock limit in seconds")
	stdinFile := fs.String("stdin", "", "file to give the guest as stdin (\"-\" for plasmd's own stdin; default empty)")
	manifestFile := fs.String("manifest", "", "job manifest JSON (module_hash must match)")
	receiptFile := fs.String("receipt", "", "write the signed receipt JSON to this file")
	dataDir := fs.String("data-dir", defaultDataDir(), "node data directory (identity key, compile cache)")
	jsonOut := fs.Bool("json", false, "print one JSON object (outcome, output, receipt) instead of the guest's streams")
	stdoutCap := fs.Int("stdout-cap", def.StdoutCap, "bytes of guest stdout kept; the rest is dropped and flagged truncated")
	stderrCap := fs.Int("stderr-cap", def.StderrCap, "bytes of guest stderr kept")
	deterministic := fs.Bool("deterministic", false, "fixed clock and seeded random, for byte-identical output everywhere")
	seed := fs.Int64("seed", 0, "random seed for --deterministic")
	tier := fs.String("tier", string(wasm.TierAuto), "engine: auto (compiled code from the cache if there, else the interpreter while a background plasmd compiles the module into the cache), interpreter, or compiler (compile, then run)")
	compileOnly := fs.Bool("compile-only", false, "compile MODULE into the cache (--data-dir) and exit without running it")
	pos, guestArgs, err := parseArgs(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 1 {
		errf(env.stderr, "run: want exactly one MODULE.wasm, got %d arguments (guest arguments go after --)", len(pos))
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if err := wasm.Tier(*tier).Validate(); err != nil {
		errf(env.stderr, "run: --tier: %v", err)
		return exitUsage
	}
	module, err := os.ReadFile(pos[0])
	if err != nil {
		errf(env.stderr, "run: reading module: %v", err)
		return exitHarness
	}
	cacheDir := filepath.Join(*dataDir, "cache", "wasm")
	if *compileOnly {
		return compileModule(ctx, env, cacheDir, module)
	}
	limits := wasm.Limits{MemoryMB: *memoryMB, Timeout: time.Duration(*timeout * float64(time.Second)), StdoutCap: *stdoutCap, StderrCap: *stderrCap}
	job := wasm.Job{Module: module, Args: guestArgs, Deterministic: *deterministic, Seed: *seed}
	if *manifestFile != "" {
		m, err := readManifest(*manifestFile)
		if err != nil {
			errf(env.stderr, "run: %v", err)
			return exitHarness
		}
		job.ModuleHash = m.ModuleHash
		if !set["memory-mb"] {
			limits.MemoryMB = m.MemoryMB
		}
		if !set["timeout"] {
			limits.Timeout = time.Duration(m.TimeoutSeconds) * time.Second
		}
	}
	if err := checkJob(job, limits); err != nil {
		errf(env.stderr, "run: %v", err)
		return exitUsage
	}
	job.Limits = limits
	if env.oneJobGC != nil {
		env.oneJobGC(limits.MemoryMB)
	}
	if *stdinFile != "" {
		if job.Stdin, err = readInput(env, *stdinFile); err != nil {
			errf(env.stderr, "run: reading stdin file: %v", err)
			return exitHarness
		}
	}

	id, err := identity.LoadOrCreate(*dataDir)
	if err != nil {
		errf(env.stderr, "run: %v", err)
		return exitHarness
	}
	// One process runs one job, so auto decides up front: compiled code
	// from the disk cache when it is there (loading it is faster than
	// interpreting), else the interpreter now and a detached plasmd that
	// compiles the module into the cache for the next run, so this process
	// need not wait for the compiler before exiting.
	runTier, background := wasm.Tier(*tier), false
	if runTier == wasm.TierAuto {
		runTier = wasm.TierCompiler
		if hash := wasm.HashModule(module); !wasm.CompiledOnDisk(cacheDir, hash) {
			runTier, background = wasm.TierInterpreter, env.spawn != nil && !compileStarted(cacheDir, hash)
		}
	}
	exec, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir, Tier: runTier})
	if err != nil {
		errf(env.stderr, "run: starting executor: %v", err)
		return exitHarness
	}
	defer exec.Close(context.WithoutCancel(ctx))

	res, rc, err := jobs.Execute(ctx, exec, id, jobs.Spec{JobID: phase.NewJobID(), Nonce: phase.NewNonce(), Job: job})
	if err != nil {
		errf(env.stderr, "run: %v", err)
		return exitHarness
	}
	if background && res.Outcome != wasm.OutcomeInvalidModule && res.Outcome != wasm.OutcomeHashMismatch {
		abs, err := filepath.Abs(pos[0])
		if err == nil {
			err = env.spawn("run", "--compile-only", "--data-dir", *dataDir, abs)
		}
		if err != nil { // the job ran; only the next run's speed is at stake
			errf(env.stderr, "run: warning: could not start the background compile: %v", err)
		}
	}
	if *receiptFile != "" {
		if err := writeJSONFile(*receiptFile, rc); err != nil {
			errf(env.stderr, "run: writing receipt: %v", err)
			return exitHarness
		}
	}
	if *jsonOut {
		// The same shape as submit --json and POST /v1/jobs.
		rcJSON, err := json.Marshal(rc)
		if err != nil {
			errf(env.stderr, "run: %v", err)
			return exitHarness
		}
		out := api.Response(&client.Result{
			Node: id.ID, Outcome: string(res.Outcome), ExitCode: rc.ExitCode, Detail: res.Detail,
			Stdout: res.Stdout, Stderr: res.Stderr, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
			Receipt: rc, ReceiptJSON: rcJSON, WallTime: res.WallTime,
		})
		enc := json.NewEncoder(env.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			errf(env.stderr, "run: writing JSON: %v", err)
			return exitHarness
		}
		return outcomeStatus(res)
	}
	env.stdout.Write(res.Stdout)
	env.stderr.Write(res.Stderr)
	if len(res.Stderr) > 0 && res.Stderr[len(res.Stderr)-1] != '\n' {
		fmt.Fprintln(env.stderr) // plasmd's own lines start on a line of their own
	}
	if res.StdoutTruncated {
		errf(env.stderr, "guest stdout truncated at %d bytes (--stdout-cap)", limits.StdoutCap)
	}
	if res.StderrTruncated {
		errf(env.stderr, "guest stderr truncated at %d bytes (--stderr-cap)", limits.StderrCap)
	}
	if res.Outcome != phase.OutcomeExited {
		errf(env.stderr, "%s", oneLine(res.Detail, string(res.Outcome)))
	}
	return outcomeStatus(res)
}

// outcomeStatus maps a job result to plasmd's exit status.
func outcomeStatus(res wasm.Result) int { return statusOf(string(res.Outcome), res.ExitCode) }

// checkJob applies the rules every front end shares (phase.Job.Validate:
// memory, args, deterministic seed) and the local run's own: a timeout of
// at least a millisecond and at most the protocol's, caps not negative.
func checkJob(job wasm.Job, l wasm.Limits) error {
	j := phase.Job{Module: job.Module, Args: job.Args, MemoryMB: l.MemoryMB, Deterministic: job.Deterministic, Seed: job.Seed}
	if err := j.Validate(); err != nil {
		return flagError(err)
	}
	switch {
	case l.MemoryMB < phase.MinMemoryMB:
		return fmt.Errorf("--memory-mb: %d out of range %d–%d", l.MemoryMB, phase.MinMemoryMB, phase.MaxMemoryMB)
	case l.Timeout < time.Millisecond || l.Timeout > phase.MaxTimeoutSeconds*time.Second:
		return fmt.Errorf("--timeout: %v s out of range 0.001–%d seconds", l.Timeout.Seconds(), phase.MaxTimeoutSeconds)
	case l.StdoutCap < 0 || l.StderrCap < 0:
		return fmt.Errorf("--stdout-cap, --stderr-cap: must not be negative")
	}
	return nil
}

// flagError names the flag of a member the shared rules refused
// (memory_mb is --memory-mb); arguments keep their index.
func flagError(err error) error {
	var fe *phase.FieldError
	if errors.As(err, &fe) && !strings.HasPrefix(fe.Field, "args") {
		return fmt.Errorf("--%s: %s", strings.ReplaceAll(fe.Field, "_", "-"), fe.Msg)
	}
	return err
}

func readManifest(path string) (manifest.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

func readInput(env *cmdEnv, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(env.stdin)
	}
	return os.ReadFile(path)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// oneLine keeps a reason printable on a single terminal line.
func oneLine(detail, fallback string) string {
	if detail == "" {
		detail = fallback
	}
	detail = strconv.Quote(detail)
	detail = detail[1 : len(detail)-1]
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	return detail
}

// compileModule is run --compile-only: fill the compile cache, run nothing.
func compileModule(ctx context.Context, env *cmdEnv, cacheDir string, module []byte) int {
	exec, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir, Tier: wasm.TierCompiler})
	if err != nil {
		errf(env.stderr, "run: starting executor: %v", err)
		return exitHarness
	}
	defer exec.Close(context.WithoutCancel(ctx))
	if err := exec.Prepare(ctx, module); err != nil {
		errf(env.stderr, "run: %v", err)
		return exitInvalidModule
	}
	return 0
}

// compileStarted: another plasmd began compiling the module lately (its
// directory exists); one that has not finished in 5 minutes is presumed
// dead and the module is compiled again.
func compileStarted(cacheDir, hash string) bool {
	st, err := os.Stat(wasm.ModuleCacheDir(cacheDir, hash))
	return err == nil && time.Since(st.ModTime()) < 5*time.Minute
}

// spawnDetached starts this executable with args, not waiting for it: its
// streams are /dev/null and it outlives this process.
func spawnDetached(args ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding plasmd: %w", err)
	}
	cmd := osexec.Command(exe, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", exe, err)
	}
	return cmd.Process.Release()
}

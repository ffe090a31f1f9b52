package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/receipt"
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

type runOutput struct {
	Outcome         string           `json:"outcome"`
	ExitCode        int              `json:"exit_code"`
	Detail          string           `json:"detail,omitempty"`
	Stdout          *string          `json:"stdout,omitempty"`
	StdoutBase64    []byte           `json:"stdout_base64,omitempty"`
	Stderr          *string          `json:"stderr,omitempty"`
	StderrBase64    []byte           `json:"stderr_base64,omitempty"`
	StdoutTruncated bool             `json:"stdout_truncated"`
	StderrTruncated bool             `json:"stderr_truncated"`
	WallTimeMS      float64          `json:"wall_time_ms"`
	ModuleHash      string           `json:"module_hash"`
	Receipt         *receipt.Receipt `json:"receipt"`
}

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

	module, err := os.ReadFile(pos[0])
	if err != nil {
		errf(env.stderr, "run: reading module: %v", err)
		return exitHarness
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
	if err := checkLimits(limits); err != nil {
		errf(env.stderr, "run: %v", err)
		return exitUsage
	}
	job.Limits = limits
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
	exec, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(*dataDir, "cache", "wasm")})
	if err != nil {
		errf(env.stderr, "run: starting executor: %v", err)
		return exitHarness
	}
	defer exec.Close(context.WithoutCancel(ctx))

	res, rc, err := jobs.Execute(ctx, exec, id, jobs.Spec{JobID: jobs.NewJobID(), Nonce: jobs.NewNonce(), Job: job})
	if err != nil {
		errf(env.stderr, "run: %v", err)
		return exitHarness
	}
	if *receiptFile != "" {
		if err := writeJSONFile(*receiptFile, rc); err != nil {
			errf(env.stderr, "run: writing receipt: %v", err)
			return exitHarness
		}
	}
	if *jsonOut {
		out := runOutput{
			Outcome: string(res.Outcome), ExitCode: res.ExitCode, Detail: res.Detail,
			StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
			WallTimeMS: float64(res.WallTime.Microseconds()) / 1000, ModuleHash: res.ModuleHash, Receipt: rc,
		}
		out.Stdout, out.StdoutBase64 = textOrBytes(res.Stdout)
		out.Stderr, out.StderrBase64 = textOrBytes(res.Stderr)
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
	if res.Outcome != wasm.OutcomeExited {
		errf(env.stderr, "%s", oneLine(res.Detail, string(res.Outcome)))
	}
	return outcomeStatus(res)
}

// outcomeStatus maps a job result to plasmd's exit status.
func outcomeStatus(res wasm.Result) int { return statusOf(string(res.Outcome), res.ExitCode) }

func checkLimits(l wasm.Limits) error {
	switch {
	case l.MemoryMB < 1 || l.MemoryMB > 32768:
		return fmt.Errorf("--memory-mb %d out of range 1–32768", l.MemoryMB)
	case l.Timeout < time.Millisecond || l.Timeout > time.Hour:
		return fmt.Errorf("--timeout %v out of range 0.001–3600 seconds", l.Timeout.Seconds())
	case l.StdoutCap < 0 || l.StderrCap < 0:
		return fmt.Errorf("output caps must not be negative")
	}
	return nil
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

// textOrBytes keeps valid UTF-8 readable in JSON and sends anything else as
// base64, so no byte is lost or replaced.
func textOrBytes(b []byte) (*string, []byte) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	return nil, b
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

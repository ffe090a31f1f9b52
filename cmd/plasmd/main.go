// Command plasmd is the Phase node daemon and its command-line front end:
// local runs, receipt verification, identity, and (with `start`) the
// network node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit statuses of plasmd itself. Guest exit codes pass through `run` and
// `submit` unchanged; when the guest did not exit, one of these is used.
// They sit in 120–125 so they do not collide with common guest codes;
// --json always tells them apart exactly.
const (
	exitOK            = 0
	exitFailed        = 1   // verify: a check failed; other commands: the operation failed
	exitUsage         = 2   // bad flags or arguments
	exitHarness       = 120 // plasmd could not run the job (unreadable file, bad manifest, ...)
	exitInvalidModule = 121
	exitTrapped       = 122
	exitMemoryLimit   = 123
	exitTimeout       = 124 // as coreutils timeout(1)
	exitHashMismatch  = 125
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cmdEnv, args []string) int
}

// cmdEnv carries the process's streams so commands are testable in-process.
type cmdEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	spawn          func(args ...string) error // starts plasmd ARGS detached; nil: never (in-process tests)
	// oneJobGC tunes the collector for a process that runs one job with
	// the given guest memory limit and exits; nil: leave it (in-process
	// tests share the test binary's collector).
	oneJobGC func(memoryMB int)
}

func commands() []command {
	return []command{
		{"run", "run a WebAssembly module locally and sign a receipt", cmdRun},
		{"verify", "verify a receipt", cmdVerify},
		{"init", "create or show the node identity", cmdInit},
		{"start", "run the node daemon", cmdStart},
		{"submit", "run a module on another node and verify its receipt", cmdSubmit},
		{"status", "show the running node's status", cmdStatus},
		{"peers", "list the running node's peers", cmdPeers},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "run" && os.Getenv("GOGC") == "" {
		// plasmd run lives for one job: collecting the interpreter's
		// short-lived compile garbage is most of what the collector would
		// do before exit. At 400, hello with an empty cache runs in
		// 294 ms instead of 365 ms, at the same peak RSS (77 MB); see
		// docs/PERFORMANCE.md. oneJobGC goes further once the job's
		// memory limit is known.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, spawn: spawnDetached, oneJobGC: oneJobGC}, os.Args[1:])
	stop()
	os.Exit(code)
}

// oneJobGC switches the collector off for a process that runs one job,
// bounded by a memory limit above the most the guest may use, unless
// GOGC or GOMEMLIMIT is set: the whole process allocates tens of MB that
// exit frees anyway. The limit turns collection back on for a job whose
// host-side garbage grows past it. Measured on examples/hello: warm cache
// 41.9 → 39.4 ms, empty cache 105 → 93 ms, peak RSS 80 → 86 MB
// (docs/PERFORMANCE.md).
func oneJobGC(memoryMB int) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(memoryMB+oneJobHeadroomMB) << 20)
	debug.SetGCPercent(-1)
}

// oneJobHeadroomMB is the memory, beyond the guest's, that plasmd run
// may hold before its collector runs: compiled code, the module, output.
const oneJobHeadroomMB = 256

func dispatch(ctx context.Context, env *cmdEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			return dispatch(ctx, env, []string{args[1], "--help"})
		}
		usage(env.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "plasmd: unknown command %q (see plasmd --help)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "plasmd — Phase node daemon and CLI\n\nUsage: plasmd COMMAND [FLAGS] [ARGS]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'plasmd COMMAND --help' for a command's flags.")
}

// errUsage marks an error the user made on the command line.
var errUsage = errors.New("usage")

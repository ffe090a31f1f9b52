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
		// docs/PERFORMANCE.md.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, spawn: spawnDetached}, os.Args[1:])
	stop()
	os.Exit(code)
}

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

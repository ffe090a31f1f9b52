package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The client contract (docs/conformance-clients.md): the suite runs the
// client under test as `sh -c CMD` once per case, with the job in its
// environment, and reads one JSON verdict line from its stdout.
const (
	// VerdictAccepted: the client got a result it verified and would use.
	VerdictAccepted = "accepted"
	// VerdictRefused: a node answered and the client refused what came back.
	VerdictRefused = "refused"
	// VerdictError: the client got no usable result (no node, timeouts).
	VerdictError = "error"
)

// ClientVerdict is the line a client prints.
type ClientVerdict struct {
	Verdict  string `json:"verdict"`
	Node     string `json:"node"`
	Outcome  string `json:"outcome"`
	Stdout   []byte `json:"stdout_base64"`
	ExitCode *int64 `json:"exit_code"`
	Detail   string `json:"detail"`
}

// ClientJob is the job a case gives the client.
type ClientJob struct {
	Module         string // a test module of examples/wat, by name
	Args           []string
	Stdin          []byte
	TimeoutSeconds int // 0: 2
	MemoryMB       int // 0: 16
	Deterministic  bool
	Arch           string
	RequireArch    bool
	// Deadline is how long the client may take to print its verdict
	// (0: clientDeadline); the suite stops it clientGrace later.
	Deadline time.Duration
}

const (
	clientDeadline = 10 * time.Second
	// clientGrace is how long past its deadline a client may take to print
	// its verdict (process start, a loaded machine) before the suite stops
	// it and fails the case (JOB-14, API-6).
	clientGrace = 15 * time.Second
)

// ForClient is an env whose target is a client command (the suite plays
// the nodes).
func ForClient(cmd, dir string) *Env {
	return &Env{Name: "client: " + cmd, Client: cmd, Dir: dir}
}

// runClient runs the client under test against n with job and returns its
// verdict. A client that prints no verdict, or not in time, fails the case.
func (t *T) runClient(n *clientNet, job ClientJob) ClientVerdict {
	env, deadline := t.clientEnv(job)
	return t.execClient(append(env, "PHASE_BOOTSTRAP="+n.Bootstrap()), deadline)
}

// clientEnv writes the job's files and returns the contract's variables
// common to both client contracts, and the client's deadline.
func (t *T) clientEnv(job ClientJob) ([]string, time.Duration) {
	if t.env.Client == "" {
		t.NA("no client under test (--client)")
	}
	dir, err := os.MkdirTemp(t.env.Dir, "client-")
	if err != nil {
		t.Fatalf("scratch dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	mod := t.Module(job.Module)
	modPath := filepath.Join(dir, job.Module+".wasm")
	stdinPath := filepath.Join(dir, "stdin")
	args := job.Args
	if args == nil {
		args = []string{}
	}
	argsJSON, _ := json.Marshal(args)
	if err := os.WriteFile(modPath, mod, 0o600); err != nil {
		t.Fatalf("writing the module: %v", err)
	}
	if err := os.WriteFile(stdinPath, job.Stdin, 0o600); err != nil {
		t.Fatalf("writing stdin: %v", err)
	}
	tmo, mem := job.TimeoutSeconds, job.MemoryMB
	if tmo == 0 {
		tmo = 2
	}
	if mem == 0 {
		mem = 16
	}
	deadline := job.Deadline
	if deadline == 0 {
		deadline = clientDeadline
	}
	return []string{
		"PHASE_MODULE=" + modPath,
		"PHASE_ARGS=" + string(argsJSON),
		"PHASE_STDIN=" + stdinPath,
		"PHASE_TIMEOUT_SECONDS=" + strconv.Itoa(tmo),
		"PHASE_MEMORY_MB=" + strconv.Itoa(mem),
		"PHASE_DETERMINISTIC=" + boolEnv(job.Deterministic),
		"PHASE_ARCH=" + job.Arch,
		"PHASE_REQUIRE_ARCH=" + boolEnv(job.RequireArch),
		"PHASE_DEADLINE_SECONDS=" + strconv.Itoa(int(deadline/time.Second)),
	}, deadline
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// execClient runs the command with env added and parses its verdict line.
func (t *T) execClient(env []string, deadline time.Duration) ClientVerdict {
	cmd := t.env.Client
	t.Note("client env: %s", strings.Join(env, " "))
	ctx, cancel := context.WithTimeout(t.ctx, deadline+clientGrace)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(os.Environ(), env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Stop the whole process group: the client may have children.
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &limitWriter{w: &stderr, n: 64 << 10}
	start := time.Now()
	err := c.Run()
	took := time.Since(start)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		lines := strings.Split(s, "\n")
		t.Note("client stderr (last lines): %s", strings.Join(lines[max(0, len(lines)-8):], " | "))
	}
	if ctx.Err() != nil && t.ctx.Err() == nil {
		t.Fatalf("JOB-14: the client printed no verdict within its deadline of %s (stopped after %s)", deadline, took.Round(time.Millisecond))
	}
	v, perr := parseVerdict(stdout.Bytes())
	if perr != nil {
		t.Fatalf("the client's output holds no verdict line (%v; exit %v): %s", perr, err, shorten(stdout.String(), 300))
	}
	t.line("got", fmt.Sprintf("verdict after %s: %s", took.Round(time.Millisecond), shorten(mustJSON(v), 400)))
	return v
}

// parseVerdict takes the last line of out that is a JSON object with a
// known verdict.
func parseVerdict(out []byte) (ClientVerdict, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var last *ClientVerdict
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var v ClientVerdict
		if json.Unmarshal(line, &v) == nil {
			switch v.Verdict {
			case VerdictAccepted, VerdictRefused, VerdictError:
				last = &v
			}
		}
	}
	if last == nil {
		return ClientVerdict{}, errNoVerdict
	}
	return *last, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type limitWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

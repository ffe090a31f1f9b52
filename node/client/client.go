// Package client is the Go client SDK of the Phase job protocol: it sends a
// WebAssembly job to other nodes over libp2p and returns the output together
// with a receipt it has verified against the peer it actually dialled.
//
// Run finds candidates (explicit ones, or through a Finder), offers the job
// to several of them at once and goes on with the first that accepts, sends
// the payload, reads the result and checks the receipt. Transport and
// protocol failures, bad receipts and busy nodes move the job to another
// node after an exponential backoff with jitter; a job that ran (whatever
// its outcome: exited, trapped, timeout, memory_limit, invalid_module) is a
// result, not a failure. With Replicas > 1 the job runs on several distinct
// nodes and only an agreeing result is accepted. Every wait is bounded: a
// Run never outlives its deadline, and when it fails the *Error lists every
// node tried and why.
package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

// Defaults for a zero Job and zero Options.
const (
	DefaultMemoryMB       = 256
	DefaultTimeoutSeconds = 30
	DefaultCPUCores       = 1

	DefaultAttempts      = 5
	DefaultReplicas      = 1
	DefaultFanout        = 3
	DefaultAcceptTimeout = 2 * time.Second
	DefaultDialTimeout   = 5 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 2 * time.Second

	// attemptGrace is added to the job's own timeout for the default
	// AttemptTimeout: transfer, queueing and signing take time too.
	attemptGrace = 30 * time.Second
	// deadlineFloor is the smallest cap on the default overall deadline;
	// the cap is never below two attempts either.
	deadlineFloor = 10 * time.Minute
)

// Job is what to run: the module, its input and the resources it asks for.
// Zero MemoryMB, TimeoutSeconds and CPUCores take the defaults above; every
// value is then clamped into the manifest's ranges.
type Job struct {
	Module         []byte
	Args           []string
	Stdin          []byte
	MemoryMB       int
	TimeoutSeconds int
	CPUCores       int
	Arch           string // preferred arch (Go name, or x86_64/aarch64)
	RequireArch    bool   // Arch is a hard requirement
	Deterministic  bool   // fixed clock and seeded random: byte-identical output on every node
	Seed           int64  // only with Deterministic
}

// Options control where and how persistently a job is tried. Zero values
// take the defaults given on each field.
type Options struct {
	Attempts       int             // max nodes tried in total, over all replicas (default max(5, Replicas+2))
	Replicas       int             // k distinct nodes must agree (default 1)
	Fanout         int             // offers sent at once per round (default 3): the first to accept wins, the others are cancelled
	AcceptTimeout  time.Duration   // wait for accepted/rejected after the offer (default 2s)
	DialTimeout    time.Duration   // connect and open the stream (default 5s)
	AttemptTimeout time.Duration   // one attempt end to end (default: job timeout + 30s)
	Deadline       time.Duration   // overall (default: AttemptTimeout × Attempts, capped at max(10m, 2 × AttemptTimeout))
	BackoffMin     time.Duration   // first pause between rounds (default 100ms)
	BackoffMax     time.Duration   // longest pause between rounds (default 2s)
	Candidates     []peer.AddrInfo // explicit nodes, in order of preference; when empty, Client.Find is used
	Exclude        []peer.ID       // never offered the job
}

// Finder returns nodes able to run a job, best first (caps.Find fits it
// once bound to a host and a DHT).
type Finder func(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error)

// Client submits jobs from Host. It is safe for concurrent use; it
// remembers, for its lifetime, which nodes failed it, and offers to them
// last.
type Client struct {
	Host    host.Host
	Find    Finder           // used when Options.Candidates is empty
	Log     *slog.Logger     // nil: no logging
	Metrics *metrics.Metrics // may be nil

	mu     sync.Mutex
	scores map[peer.ID]int // failure score per node; higher is offered later
}

// Attempt outcomes.
const (
	AttemptOK          = "ok"           // verified result
	AttemptRejected    = "rejected"     // the node said no; Reason is its reason code
	AttemptError       = "error"        // the node ended the exchange with an error message; Reason is its code
	AttemptTimeout     = "timeout"      // a step took too long; Reason names the step
	AttemptUnreachable = "unreachable"  // could not connect or open the stream
	AttemptStreamError = "stream_error" // the stream broke mid-exchange; Reason names the step
	AttemptProtocol    = "protocol"     // the node sent something the protocol does not allow; Reason names the step
	AttemptBadReceipt  = "bad_receipt"  // the receipt failed verification; Reason is the failed check
	AttemptDisagreed   = "disagreed"    // verified, but outvoted by the other replicas
	AttemptCancelled   = "cancelled"    // abandoned because the run ended (deadline, or another replica decided it)
)

// Attempt is one node tried during a Run.
type Attempt struct {
	Node      peer.ID
	Outcome   string // one of the Attempt* constants
	Reason    string // reject reason, error code, failed check or step
	Detail    string // human-readable; from the node when it is the node's text
	Retryable bool   // whether this failure let the job move on to another node
	Started   time.Time
	Duration  time.Duration
}

func (a Attempt) String() string {
	var b strings.Builder
	b.WriteString(shortID(a.Node))
	b.WriteString(": ")
	b.WriteString(a.Outcome)
	if a.Reason != "" {
		b.WriteString(" ")
		b.WriteString(a.Reason)
	}
	if a.Detail != "" {
		fmt.Fprintf(&b, " (%s)", a.Detail)
	}
	return b.String()
}

// Replica is one node's verified result when Replicas > 1.
type Replica struct {
	Node        peer.ID
	Outcome     string
	ExitCode    int
	StdoutHash  string
	StderrHash  string
	Receipt     *receipt.Receipt
	ReceiptJSON []byte
}

// Result is a verified job result.
type Result struct {
	Node            peer.ID // the node whose output this is
	Outcome         string  // exited, trapped, timeout, memory_limit, invalid_module
	ExitCode        int     // meaningful when Outcome is exited; -1 otherwise
	Detail          string  // the node's note on the outcome (a trap message, say)
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	Receipt         *receipt.Receipt
	ReceiptJSON     []byte
	WallTime        time.Duration // as the node measured it
	Attempts        []Attempt     // every node tried, in the order they finished
	Replicas        []Replica     // when Replicas > 1: each agreeing node's receipt
	Disagreement    string        // when replicas disagreed before a majority formed: who said what
}

// Sentinel errors wrapped by Error.Err.
var (
	// ErrInvalidJob: the job or options are unusable; nothing was sent.
	ErrInvalidJob = errors.New("invalid job")
	// ErrNoCandidates: no node to offer the job to.
	ErrNoCandidates = errors.New("no candidate nodes")
	// ErrExhausted: every candidate or every attempt was used up.
	ErrExhausted = errors.New("no node could run the job")
	// ErrJobRefused: a node refused the job for a reason another node
	// would share (invalid_request), so it was not retried.
	ErrJobRefused = errors.New("job refused")
	// ErrDisagreement: replicas returned different results and no Replicas
	// of them agreed.
	ErrDisagreement = errors.New("replicas disagree")
)

// Error is a failed Run. Err wraps one of the sentinel errors above or the
// context error (context.DeadlineExceeded when the deadline passed).
type Error struct {
	Attempts     []Attempt
	Disagreement string // for ErrDisagreement: who said what
	Err          error
}

// Error gives the cause, then one line per node tried with its reason.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if len(e.Attempts) == 0 {
		b.WriteString(" (no node was tried)")
		return b.String()
	}
	fmt.Fprintf(&b, "; %d node(s) tried:", len(e.Attempts))
	for _, a := range e.Attempts {
		b.WriteString("\n  ")
		b.WriteString(a.String())
	}
	if e.Disagreement != "" {
		b.WriteString("\n  ")
		b.WriteString(e.Disagreement)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// shortID is a peer ID short enough for a one-line reason, long enough to
// tell nodes apart: the first 6 and last 6 characters.
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) <= 14 {
		return s
	}
	return s[:6] + ".." + s[len(s)-6:]
}

// settings are Options with defaults applied, plus what Run derives from
// the job once.
type settings struct {
	Options
	manifest   manifest.Manifest
	moduleHash string
	inputHash  string
}

func (c *Client) settings(job Job, opts Options) (settings, error) {
	s := settings{Options: opts}
	if c.Host == nil {
		return s, fmt.Errorf("%w: client has no libp2p host", ErrInvalidJob)
	}
	if len(job.Module) == 0 {
		return s, fmt.Errorf("%w: module is empty", ErrInvalidJob)
	}
	if len(job.Args) > wire.MaxArgs {
		return s, fmt.Errorf("%w: %d args, at most %d allowed", ErrInvalidJob, len(job.Args), wire.MaxArgs)
	}
	for i, a := range job.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return s, fmt.Errorf("%w: args[%d] contains a NUL character", ErrInvalidJob, i)
		}
	}
	if job.Arch != "" {
		if _, err := wire.NormalizeArch(job.Arch); err != nil {
			return s, fmt.Errorf("%w: arch: %w", ErrInvalidJob, err)
		}
	} else if job.RequireArch {
		return s, fmt.Errorf("%w: RequireArch is set but Arch is empty", ErrInvalidJob)
	}
	if job.Seed != 0 && !job.Deterministic {
		return s, fmt.Errorf("%w: Seed is set but Deterministic is false", ErrInvalidJob)
	}
	for name, v := range map[string]int{"Attempts": opts.Attempts, "Replicas": opts.Replicas, "Fanout": opts.Fanout} {
		if v < 0 {
			return s, fmt.Errorf("%w: option %s is negative (%d)", ErrInvalidJob, name, v)
		}
	}
	for name, v := range map[string]time.Duration{"AcceptTimeout": opts.AcceptTimeout, "DialTimeout": opts.DialTimeout,
		"AttemptTimeout": opts.AttemptTimeout, "Deadline": opts.Deadline, "BackoffMin": opts.BackoffMin, "BackoffMax": opts.BackoffMax} {
		if v < 0 {
			return s, fmt.Errorf("%w: option %s is negative (%s)", ErrInvalidJob, name, v)
		}
	}

	s.manifest = manifest.Manifest{
		Version:        manifest.CurrentVersion,
		ModuleHash:     hashBytes(job.Module),
		CPUCores:       clamp(orDefault(job.CPUCores, DefaultCPUCores), manifest.MinCPUCores, manifest.MaxCPUCores),
		MemoryMB:       clamp(orDefault(job.MemoryMB, DefaultMemoryMB), manifest.MinMemoryMB, manifest.MaxMemoryMB),
		TimeoutSeconds: clamp(orDefault(job.TimeoutSeconds, DefaultTimeoutSeconds), manifest.MinTimeoutSeconds, manifest.MaxTimeoutSeconds),
	}
	if err := s.manifest.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	s.moduleHash = s.manifest.ModuleHash
	s.inputHash = receipt.InputHash(job.Args, job.Stdin)

	s.Replicas = orDefault(s.Replicas, DefaultReplicas)
	if s.Attempts == 0 {
		s.Attempts = max(DefaultAttempts, s.Replicas+2)
	}
	if s.Attempts < s.Replicas {
		return s, fmt.Errorf("%w: Attempts (%d) is less than Replicas (%d)", ErrInvalidJob, s.Attempts, s.Replicas)
	}
	s.Fanout = orDefault(s.Fanout, DefaultFanout)
	s.AcceptTimeout = orDefault(s.AcceptTimeout, DefaultAcceptTimeout)
	s.DialTimeout = orDefault(s.DialTimeout, DefaultDialTimeout)
	s.AttemptTimeout = orDefault(s.AttemptTimeout, time.Duration(s.manifest.TimeoutSeconds)*time.Second+attemptGrace)
	if s.Deadline == 0 {
		s.Deadline = min(s.AttemptTimeout*time.Duration(s.Attempts), max(deadlineFloor, 2*s.AttemptTimeout))
	}
	s.BackoffMin = orDefault(s.BackoffMin, DefaultBackoffMin)
	s.BackoffMax = max(orDefault(s.BackoffMax, DefaultBackoffMax), s.BackoffMin)
	return s, nil
}

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// hashBytes is the protocol's hash notation: "sha256:" and 64 lowercase hex.
func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return manifest.HashPrefix + hex.EncodeToString(sum[:])
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// requirements is what Find is asked for.
func requirements(job Job, s settings) caps.Requirements {
	return caps.Requirements{
		ABI:            caps.DefaultABI,
		Arch:           job.Arch,
		RequireArch:    job.RequireArch,
		MinMemoryMB:    s.manifest.MemoryMB,
		MinCores:       s.manifest.CPUCores,
		MaxModuleBytes: int64(len(job.Module)),
		TimeoutSeconds: s.manifest.TimeoutSeconds,
	}
}

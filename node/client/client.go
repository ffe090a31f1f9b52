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
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
)

// Job is what to run: the module, its input, the resources it asks for and
// how many nodes must agree. It is phase.Job, checked by phase.Job.Validate
// like every front end's job; zero numbers take the phase.Default* values.
type Job = phase.Job

// Defaults for zero Options.
const (
	// DefaultFanout is 2: a round offers the job to two randomly ranked
	// equals, the second only when the first says no or is slow to answer
	// (DefaultOfferStagger).
	DefaultFanout = 2
	// DefaultOfferStagger is how long a round's first offer has to be
	// answered before the next goes out: longer than most round trips, so
	// the randomly ranked first node gets the job and load spreads evenly.
	// Offers sent at once go to the nearest nodes, which win most races
	// (docs/SIMULATOR.md, load spread).
	DefaultOfferStagger  = 250 * time.Millisecond
	DefaultAcceptTimeout = 2 * time.Second
	DefaultDialTimeout   = 5 * time.Second
	// DefaultHedgeAfter: an accepted attempt that has neither finished nor
	// sent progress this long after it was accepted gets a second node
	// offered the job alongside it, so a node that accepts and goes quiet
	// costs seconds, not the job's timeout.
	DefaultHedgeAfter = 2 * time.Second
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
	// DefaultStallTimeout is how long a client waits without a word from a
	// node that promised progress messages before it gives up on it.
	DefaultStallTimeout = 3 * session.DefaultProgressEvery

	// attemptGrace is added to the job's own timeout for the default
	// AttemptTimeout: transfer, queueing and signing take time too.
	attemptGrace = 30 * time.Second
	// deadlineFloor is the smallest cap on the default overall deadline;
	// the cap is never below two attempts either.
	deadlineFloor = 10 * time.Minute
)

// Options control how a job is tried. Zero values take the defaults given
// on each field.
type Options struct {
	Fanout         int             // offers per round (default 2): the first to accept wins, the others are withdrawn
	OfferStagger   time.Duration   // wait this long for a round's offers out to answer before sending the next (default 250ms; negative: send a round's offers at once)
	AcceptTimeout  time.Duration   // wait for accepted/rejected after the offer (default 2s)
	DialTimeout    time.Duration   // connect and open the stream (default 5s)
	AttemptTimeout time.Duration   // one attempt end to end (default: job timeout + 30s)
	StallTimeout   time.Duration   // silence tolerated from a node that promised progress (default 6s)
	HedgeAfter     time.Duration   // start another node when an accepted attempt has run this long with no result or progress (default 2s)
	Deadline       time.Duration   // overall (default: AttemptTimeout × attempts, capped at max(10m, 2 × AttemptTimeout))
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
	Forget  func(peer.ID)    // nil, or told of each node that could not be reached (a caching Finder drops it)
	Log     *slog.Logger     // nil: no logging
	Metrics *metrics.Metrics // may be nil

	memory memory // how nodes behaved towards this client
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
	b.WriteString(phase.ShortID(a.Node.String()))
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
	ErrInvalidJob = phase.ErrInvalidJob
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

// settings are Options with defaults applied, plus what Run derives from
// the job once.
type settings struct {
	Options
	job        Job
	manifest   manifest.Manifest
	moduleHash string
	inputHash  string
	replicas   int
	attempts   int
}

// newSettings checks the job and options and applies the defaults.
func newSettings(job Job, opts Options) (settings, error) {
	s := settings{Options: opts, job: job}
	if err := job.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	if opts.Fanout < 0 {
		return s, fmt.Errorf("%w: option Fanout is negative (%d)", ErrInvalidJob, opts.Fanout)
	}
	for name, v := range map[string]time.Duration{"AcceptTimeout": opts.AcceptTimeout, "DialTimeout": opts.DialTimeout,
		"AttemptTimeout": opts.AttemptTimeout, "StallTimeout": opts.StallTimeout, "HedgeAfter": opts.HedgeAfter,
		"Deadline": opts.Deadline, "BackoffMin": opts.BackoffMin, "BackoffMax": opts.BackoffMax} {
		if v < 0 {
			return s, fmt.Errorf("%w: option %s is negative (%s)", ErrInvalidJob, name, v)
		}
	}
	s.manifest = manifest.Manifest{
		Version:        manifest.CurrentVersion,
		ModuleHash:     phase.HashBytes(job.Module),
		CPUCores:       job.CoresOrDefault(),
		MemoryMB:       job.MemoryOrDefault(),
		TimeoutSeconds: job.TimeoutOrDefault(),
	}
	s.moduleHash = s.manifest.ModuleHash
	s.inputHash = receipt.InputHash(job.Args, job.Stdin)
	s.replicas = job.ReplicasOrDefault()
	s.attempts = job.AttemptsOrDefault()
	s.Fanout = orDefault(s.Fanout, DefaultFanout)
	s.AcceptTimeout = orDefault(s.AcceptTimeout, DefaultAcceptTimeout)
	s.DialTimeout = orDefault(s.DialTimeout, DefaultDialTimeout)
	s.StallTimeout = orDefault(s.StallTimeout, DefaultStallTimeout)
	s.HedgeAfter = orDefault(s.HedgeAfter, DefaultHedgeAfter)
	s.OfferStagger = max(orDefault(s.OfferStagger, DefaultOfferStagger), 0)
	s.AttemptTimeout = orDefault(s.AttemptTimeout, time.Duration(s.manifest.TimeoutSeconds)*time.Second+attemptGrace)
	if s.Deadline == 0 {
		s.Deadline = min(s.AttemptTimeout*time.Duration(s.attempts), max(deadlineFloor, 2*s.AttemptTimeout))
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

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// requirements is what Find is asked for. Each Run draws its own Salt, so
// equally good nodes are offered jobs in a different order every time and
// the clients of a network do not all crowd the same few nodes.
func requirements(s settings) caps.Requirements {
	return caps.Requirements{
		Salt:           rand.Uint64() | 1, // never 0, which would mean "no salt"
		ABI:            phase.ABIWASIP1,
		Arch:           s.job.Arch,
		RequireArch:    s.job.RequireArch,
		MinMemoryMB:    s.manifest.MemoryMB,
		MinCores:       s.manifest.CPUCores,
		MaxModuleBytes: int64(len(s.job.Module)),
		StdinBytes:     int64(len(s.job.Stdin)),
		TimeoutSeconds: s.manifest.TimeoutSeconds,
	}
}

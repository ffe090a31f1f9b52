package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wire"
)

// Auth modes of config.Auth.Mode.
const (
	AuthOpen      = "open"
	AuthAllowlist = "allowlist"
)

// Policy is everything the admission decision needs to know about this node:
// its configured limits and authorization lists, and what the machine and
// runtime offer. It is a plain value; NewPolicy builds it from config.
type Policy struct {
	Mode  string           // AuthOpen or AuthAllowlist
	Allow map[peer.ID]bool // admitted in allowlist mode
	Deny  map[peer.ID]bool // always refused, in every mode

	Arch          string   // Go GOARCH of this node
	ABIs          []string // ABIs the runtime provides
	Deterministic bool     // the executor supports deterministic mode
	CPUCores      int      // cores offered to jobs; a manifest asking for more is refused
	MemoryMB      int      // memory offered to jobs in total; a manifest asking for more is refused

	MaxModuleBytes    int64
	MaxStdinBytes     int64
	MaxMemoryMB       int // per job: larger requests are clamped to this
	MaxTimeoutSeconds int // per job: longer requests are clamped to this
	StdoutCap         int
	StderrCap         int

	MaxConcurrent int // jobs running at once
	QueueSize     int // accepted jobs waiting for a run slot, beyond MaxConcurrent
	MaxPerPeer    int // accepted, unfinished jobs of one peer

	MaxUploads          int // accepted streams still sending their payload
	MaxUploadsPerPrefix int // of those, from one address prefix
	MaxJobsPerPrefix    int // jobs queued or running from one address prefix
}

// NewPolicy builds the policy for cfg on this machine: the node's GOARCH and
// CPU count, memory MaxMemoryMB × MaxConcurrent (as the capability record
// advertises by default), and a queue as long as MaxConcurrent.
func NewPolicy(cfg config.Jobs) (Policy, error) {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("jobs.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	positive := []struct {
		field string
		v     int64
	}{
		{"max_module_bytes", cfg.MaxModuleBytes}, {"max_memory_mb", int64(cfg.MaxMemoryMB)},
		{"max_timeout_seconds", int64(cfg.MaxTimeoutSeconds)}, {"max_concurrent", int64(cfg.MaxConcurrent)},
		{"max_per_peer", int64(cfg.MaxPerPeer)}, {"step_timeout", int64(cfg.StepTimeout)},
	}
	for _, f := range positive {
		if f.v <= 0 {
			bad(f.field, "must be positive, got %d", f.v)
		}
	}
	for _, f := range []struct {
		field string
		v     int64
	}{{"max_stdin_bytes", cfg.MaxStdinBytes}, {"stdout_cap", int64(cfg.StdoutCap)}, {"stderr_cap", int64(cfg.StderrCap)}, {"module_store_mb", int64(cfg.ModuleStoreMB)}} {
		if f.v < 0 {
			bad(f.field, "must be ≥ 0, got %d", f.v)
		}
	}
	if cfg.MaxMemoryMB > phase.MaxMemoryMB {
		bad("max_memory_mb", "%d is over the protocol maximum %d", cfg.MaxMemoryMB, phase.MaxMemoryMB)
	}
	if cfg.MaxTimeoutSeconds > phase.MaxTimeoutSeconds {
		bad("max_timeout_seconds", "%d is over the protocol maximum %d", cfg.MaxTimeoutSeconds, phase.MaxTimeoutSeconds)
	}
	p := Policy{
		Mode:              cfg.Auth.Mode,
		Allow:             map[peer.ID]bool{},
		Deny:              map[peer.ID]bool{},
		Arch:              runtime.GOARCH,
		ABIs:              []string{phase.ABIWASIP1},
		Deterministic:     true,
		CPUCores:          runtime.NumCPU(),
		MemoryMB:          cfg.MaxMemoryMB * max(cfg.MaxConcurrent, 1),
		MaxModuleBytes:    cfg.MaxModuleBytes,
		MaxStdinBytes:     cfg.MaxStdinBytes,
		MaxMemoryMB:       cfg.MaxMemoryMB,
		MaxTimeoutSeconds: cfg.MaxTimeoutSeconds,
		StdoutCap:         cfg.StdoutCap,
		StderrCap:         cfg.StderrCap,
		MaxConcurrent:     cfg.MaxConcurrent,
		QueueSize:         cfg.MaxConcurrent,
		MaxPerPeer:        cfg.MaxPerPeer,
	}
	// Zero takes the shipped default, so a configuration written before
	// these keys existed keeps working.
	def := config.Default().Jobs
	p.MaxUploads = cmp.Or(cfg.MaxUploads, def.MaxUploads)
	p.MaxUploadsPerPrefix = min(cmp.Or(cfg.MaxUploadsPerPrefix, def.MaxUploadsPerPrefix), p.MaxUploads)
	p.MaxJobsPerPrefix = min(cmp.Or(cfg.MaxJobsPerPrefix, def.MaxJobsPerPrefix), p.MaxConcurrent+p.QueueSize)
	if p.Mode == "" {
		p.Mode = AuthOpen
	}
	if p.Mode != AuthOpen && p.Mode != AuthAllowlist {
		bad("auth.mode", "%q is not one of open, allowlist", cfg.Auth.Mode)
	}
	for _, l := range []struct {
		field string
		ids   []string
		into  map[peer.ID]bool
	}{{"auth.allow", cfg.Auth.Allow, p.Allow}, {"auth.deny", cfg.Auth.Deny, p.Deny}} {
		for i, s := range l.ids {
			id, err := peer.Decode(s)
			if err != nil {
				bad(fmt.Sprintf("%s[%d]", l.field, i), "%q is not a peer ID: %v", s, err)
				continue
			}
			l.into[id] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// State is the node's load at the moment an offer is decided, as seen by
// the caller (which holds the lock that makes deciding and reserving one
// step).
type State struct {
	Admitted      int  // jobs whose payload arrived, not finished yet: running plus queued
	PeerInFlight  int  // the offering peer's accepted streams not finished: uploading, queued or running
	Uploads       int  // accepted streams still sending their payload
	PrefixUploads int  // of those, from the offering peer's address prefix
	PrefixJobs    int  // jobs queued or running from the offering peer's address prefix
	NonceSeen     bool // the offer's nonce is in the replay cache
	Draining      bool // the server is shutting down
}

// Admit decides one offer. It returns the limits the node will enforce, or
// the rejection to send. The checks run in a fixed order, so an offer that
// fails several gets the most permanent reason first: authorization (an
// unauthorized peer learns nothing else), validity, runtime/ABI, arch, sizes,
// resources, replay, and last load, the only reason that may pass on retry.
//
// Memory and timeout requests over the node's per-job maximum are clamped,
// not refused: the job gets MaxMemoryMB and MaxTimeoutSeconds, which the
// accepted message tells the client (JOB-11 allows clamping down). A request
// is refused with insufficient_resources only when it asks for more cores or
// memory than the node offers to jobs at all. Whether the module fits in the
// clamped memory is unknown until its bytes arrive; one that declares a
// larger minimum ends with outcome memory_limit. cpu_cores is an admission
// check only: a WASI preview 1 guest has one thread.
func Admit(p Policy, st State, from peer.ID, o *wire.Offer) (wire.AppliedLimits, *wire.Rejected) {
	reject := func(reason, format string, a ...any) (wire.AppliedLimits, *wire.Rejected) {
		return wire.AppliedLimits{}, &wire.Rejected{Type: wire.TypeRejected, Reason: reason, Detail: fmt.Sprintf(format, a...)}
	}
	if o == nil {
		return reject(phase.ReasonInvalidRequest, "no offer")
	}
	if p.Deny[from] {
		return reject(phase.ReasonUnauthorized, "this node does not take jobs from peer %s", from)
	}
	if p.Mode != AuthOpen && !p.Allow[from] {
		return reject(phase.ReasonUnauthorized, "this node takes jobs only from its allowlist, which does not include peer %s", from)
	}
	if err := o.Validate(); err != nil {
		return reject(phase.ReasonInvalidRequest, "%v", err)
	}
	// An offer cannot name another runtime or ABI in protocol v1: every job
	// is a WASI preview 1 module. The check stays so a node whose runtime
	// lost that ABI refuses instead of failing every job.
	if !slices.Contains(p.ABIs, phase.ABIWASIP1) {
		return reject(phase.ReasonRuntimeNotSupported, "this node's runtime does not provide %s", phase.ABIWASIP1)
	}
	if o.Deterministic && !p.Deterministic {
		return reject(phase.ReasonRuntimeNotSupported, "this node does not run jobs in deterministic mode")
	}
	if o.RequireArch {
		want, _ := phase.NormalizeArch(o.Arch) // Validate checked it
		if want != p.Arch {
			return reject(phase.ReasonArchMismatch, "offer requires arch %s, this node is %s", want, p.Arch)
		}
	}
	if o.ModuleSize > p.MaxModuleBytes {
		return reject(phase.ReasonTooLarge, "module_size %d is over this node's limit of %d bytes", o.ModuleSize, p.MaxModuleBytes)
	}
	if o.StdinSize > p.MaxStdinBytes {
		return reject(phase.ReasonTooLarge, "stdin_size %d is over this node's limit of %d bytes", o.StdinSize, p.MaxStdinBytes)
	}
	mf := o.Manifest
	if mf.CPUCores > p.CPUCores {
		return reject(phase.ReasonInsufficientResources, "manifest asks for %d CPU cores, this node offers %d", mf.CPUCores, p.CPUCores)
	}
	if mf.MemoryMB > p.MemoryMB {
		return reject(phase.ReasonInsufficientResources, "manifest asks for %d MB of memory, this node offers %d MB to jobs", mf.MemoryMB, p.MemoryMB)
	}
	if st.NonceSeen {
		return reject(phase.ReasonReplayedNonce, "nonce %s was already used", o.Nonce)
	}
	if st.Draining {
		return reject(phase.ReasonQueueFull, "node is shutting down")
	}
	if st.Admitted >= p.MaxConcurrent+p.QueueSize {
		return reject(phase.ReasonQueueFull, "node is busy: %d jobs running or queued, limit %d", st.Admitted, p.MaxConcurrent+p.QueueSize)
	}
	if st.PeerInFlight >= p.MaxPerPeer {
		return reject(phase.ReasonQueueFull, "peer %s already has %d jobs in flight, limit %d", from, st.PeerInFlight, p.MaxPerPeer)
	}
	if p.MaxJobsPerPrefix > 0 && st.PrefixJobs >= p.MaxJobsPerPrefix {
		return reject(phase.ReasonQueueFull, "this address prefix already has %d jobs queued or running, limit %d", st.PrefixJobs, p.MaxJobsPerPrefix)
	}
	if p.MaxUploads > 0 && st.Uploads >= p.MaxUploads {
		return reject(phase.ReasonQueueFull, "node is busy: %d accepted streams still sending their payload, limit %d", st.Uploads, p.MaxUploads)
	}
	if p.MaxUploadsPerPrefix > 0 && st.PrefixUploads >= p.MaxUploadsPerPrefix {
		return reject(phase.ReasonQueueFull, "this address prefix already has %d streams sending their payload, limit %d", st.PrefixUploads, p.MaxUploadsPerPrefix)
	}
	return wire.AppliedLimits{
		MemoryMB:  min(mf.MemoryMB, p.MaxMemoryMB),
		TimeoutMS: min(int64(mf.TimeoutSeconds), int64(p.MaxTimeoutSeconds)) * 1000,
		StdoutCap: p.StdoutCap,
		StderrCap: p.StderrCap,
	}, nil
}

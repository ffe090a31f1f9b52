// Package phase is the vocabulary of the Phase protocol v1: the names,
// codes, limits and notations that SPEC.md, docs/spec-wire.md and
// docs/spec-api.md define. Every other package takes these words from here,
// so a limit or an outcome is written once.
//
// It is a leaf: it imports nothing of this repository and no libp2p, so a
// tool that only needs the words does not pull in a network stack.
package phase

// Protocol identifiers (spec-wire §1, SPEC §4.1).
const (
	ProtocolJob  = "/phase/job/1.0.0"
	ProtocolCaps = "/phase/caps/1.0.0"
	// DHTPrefix is the Kademlia protocol prefix: /phase/kad/1.0.0 (DHT-1).
	DHTPrefix = "/phase"
	// CapsNamespace is the DHT record namespace of capability records:
	// /phase-caps/<peer-id> (CAP-2).
	CapsNamespace = "phase-caps"
	// ABIWASIP1 is the one ABI protocol v1 runs.
	ABIWASIP1 = "wasi_snapshot_preview1"
)

// Job outcomes (receipt `outcome`, result `outcome`; EXEC-5).
const (
	OutcomeExited        = "exited"         // the guest returned from _start or called proc_exit
	OutcomeTrapped       = "trapped"        // the guest trapped
	OutcomeTimeout       = "timeout"        // the guest ran past its time limit
	OutcomeMemoryLimit   = "memory_limit"   // the guest needed more memory than its limit
	OutcomeInvalidModule = "invalid_module" // the bytes are not a module the runtime can instantiate
	OutcomeHashMismatch  = "hash_mismatch"  // the bytes do not hash to the manifest's module_hash
)

// Rejection reasons (`rejected.reason`, spec-wire §4.3).
const (
	ReasonInsufficientResources = "insufficient_resources"
	ReasonArchMismatch          = "arch_mismatch"
	ReasonRuntimeNotSupported   = "runtime_not_supported"
	ReasonQueueFull             = "queue_full"
	ReasonInvalidRequest        = "invalid_request"
	ReasonTooLarge              = "too_large"
	ReasonUnauthorized          = "unauthorized"
	ReasonReplayedNonce         = "replayed_nonce"
)

// Error codes (`error.code`, spec-wire §4.6).
const (
	CodeInvalidRequest = "invalid_request"
	CodeHashMismatch   = "hash_mismatch"
	CodeTimeout        = "timeout"
	CodeInternal       = "internal"
	CodeTooLarge       = "too_large"
	CodeProtocol       = "protocol"
)

var (
	outcomes = []string{OutcomeExited, OutcomeTrapped, OutcomeTimeout, OutcomeMemoryLimit, OutcomeInvalidModule, OutcomeHashMismatch}
	reasons  = []string{ReasonInsufficientResources, ReasonArchMismatch, ReasonRuntimeNotSupported, ReasonQueueFull,
		ReasonInvalidRequest, ReasonTooLarge, ReasonUnauthorized, ReasonReplayedNonce}
	codes = []string{CodeInvalidRequest, CodeHashMismatch, CodeTimeout, CodeInternal, CodeTooLarge, CodeProtocol}
)

// Outcomes returns every job outcome, in the order the spec lists them.
func Outcomes() []string { return append([]string(nil), outcomes...) }

// Reasons returns every rejection reason.
func Reasons() []string { return append([]string(nil), reasons...) }

// Codes returns every error code.
func Codes() []string { return append([]string(nil), codes...) }

// IsOutcome, IsReason and IsCode report membership in those lists.
func IsOutcome(s string) bool { return contains(outcomes, s) }
func IsReason(s string) bool  { return contains(reasons, s) }
func IsCode(s string) bool    { return contains(codes, s) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Manifest ranges, inclusive (MAN-1), and the one manifest version.
const (
	ManifestVersion   = "0.1"
	MinCPUCores       = 1
	MaxCPUCores       = 64
	MinMemoryMB       = 1
	MaxMemoryMB       = 32768
	MinTimeoutSeconds = 1
	MaxTimeoutSeconds = 3600
	// MaxTimeoutMS is the largest applied time limit, in milliseconds.
	MaxTimeoutMS = MaxTimeoutSeconds * 1000
)

// Message and receipt limits.
const (
	// MaxControlFrame is the largest control frame body (WIRE-8).
	MaxControlFrame = 64 << 10
	// MaxArgs is the most guest arguments a job may have.
	MaxArgs = 1024
	// MaxJobIDLen is the longest job id, in offers and receipts alike.
	MaxJobIDLen = 128
	// NonceHexLen is the length of a nonce: 32 random bytes as lowercase hex.
	NonceHexLen = 64
	// MaxExitCode is the largest WASI exit status (a u32).
	MaxExitCode = 1<<32 - 1
	// NoExitCode is the exit code of a run whose guest did not exit.
	NoExitCode = -1
	// MaxSafeInteger is the largest integer a signed Phase document may
	// hold: 2^53−1, exact in every JSON implementation.
	MaxSafeInteger = 1<<53 - 1
	// MaxRecordSize caps a capability record's JSON encoding (CAP-2).
	MaxRecordSize = 4096
	// MaxBootstrap is the most bootstrap addresses a node takes (DHT-2).
	MaxBootstrap = 64
)

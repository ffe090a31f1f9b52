// Package wire is the framing and message layer of the Phase job protocol
// (/phase/job/1.0.0) and the capability protocol (/phase/caps/1.0.0).
//
// It works over plain io.Reader and io.Writer values and knows nothing about
// libp2p: the node, the client, the simulator and the conformance suite all
// move bytes with the same functions. docs/spec-wire.md is the normative
// description; the requirement IDs quoted in comments (WIRE-n, JOB-n) refer
// to it.
//
// A frame is an unsigned LEB128 varint length followed by that many bytes.
// Control frames carry one JSON object with a "type" member; raw frames carry
// module bytes, stdin, stdout and stderr unchanged. Every read takes the
// largest length the caller will accept, so no frame is buffered before its
// length has been checked.
//
// Parsers ignore unknown members (forward compatibility), reject duplicate
// member names, match member names exactly (case-sensitively) and validate
// every known member, naming the member in the error.
package wire

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// Protocol IDs negotiated on the libp2p stream.
const (
	ProtocolJob  = "/phase/job/1.0.0"
	ProtocolCaps = "/phase/caps/1.0.0"
)

// MaxControlFrame is the largest control frame body any peer may send or
// must accept (WIRE-8).
const MaxControlFrame = 64 << 10

// Frame kinds, used in error messages and as the kind argument of ReadFrame.
const (
	KindControl = "control"
	KindModule  = "module"
	KindStdin   = "stdin"
	KindStdout  = "stdout"
	KindStderr  = "stderr"
)

// Message types (the "type" member of a control message).
const (
	TypeOffer       = "offer"
	TypeAccepted    = "accepted"
	TypeRejected    = "rejected"
	TypePayload     = "payload"
	TypeResult      = "result"
	TypeError       = "error"
	TypeCapsRequest = "caps_request"
	TypeCaps        = "caps"
)

// Rejection reasons (Rejected.Reason).
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

// Job outcomes (Result.Outcome).
const (
	OutcomeExited        = "exited"
	OutcomeTrapped       = "trapped"
	OutcomeTimeout       = "timeout"
	OutcomeMemoryLimit   = "memory_limit"
	OutcomeInvalidModule = "invalid_module"
	OutcomeHashMismatch  = "hash_mismatch"
)

// Error codes (ErrorMsg.Code).
const (
	CodeInvalidRequest = "invalid_request"
	CodeHashMismatch   = "hash_mismatch"
	CodeTimeout        = "timeout"
	CodeInternal       = "internal"
	CodeTooLarge       = "too_large"
	CodeProtocol       = "protocol"
)

// Field limits.
const (
	MaxJobIDLen    = 64
	NonceHexLen    = 64 // 32 random bytes, lowercase hex
	MaxArgs        = 1024
	MaxMemoryMB    = 32768
	MaxTimeoutMS   = 3600 * 1000
	MaxExitCode    = 1<<32 - 1 // WASI exit status is a u32
	maxFieldEcho   = 40        // bytes of a bad value quoted back in an error
	readAllocChunk = 1 << 20   // growth step for large frame bodies
)

var (
	reasons  = []string{ReasonInsufficientResources, ReasonArchMismatch, ReasonRuntimeNotSupported, ReasonQueueFull, ReasonInvalidRequest, ReasonTooLarge, ReasonUnauthorized, ReasonReplayedNonce}
	outcomes = []string{OutcomeExited, OutcomeTrapped, OutcomeTimeout, OutcomeMemoryLimit, OutcomeInvalidModule, OutcomeHashMismatch}
	codes    = []string{CodeInvalidRequest, CodeHashMismatch, CodeTimeout, CodeInternal, CodeTooLarge, CodeProtocol}
)

// Reasons returns every rejection reason defined by this protocol version.
func Reasons() []string { return append([]string(nil), reasons...) }

// Outcomes returns every job outcome defined by this protocol version.
func Outcomes() []string { return append([]string(nil), outcomes...) }

// Codes returns every error code defined by this protocol version.
func Codes() []string { return append([]string(nil), codes...) }

// Sentinel errors, so a caller can choose its reply without parsing strings:
// ErrTooLarge maps to too_large, ErrInvalid to invalid_request, ErrMalformed
// and ErrUnexpected to protocol. I/O errors wrap neither.
var (
	// ErrTooLarge: a frame length (or a declared size) is over the cap.
	ErrTooLarge = errors.New("frame too large")
	// ErrMalformed: the framing itself is broken (bad varint, a raw frame
	// whose length differs from the size declared for it).
	ErrMalformed = errors.New("malformed frame")
	// ErrInvalid: a control frame is not a valid message (bad JSON, missing
	// or unknown type, a missing or out-of-range member).
	ErrInvalid = errors.New("invalid message")
	// ErrUnexpected: a valid message arrived at a step that does not allow it.
	ErrUnexpected = errors.New("unexpected message")
)

// Caps are the largest frame bodies a reader accepts, per frame kind. The
// protocol fixes only the control cap (MaxControlFrame); the rest are each
// node's and client's own choice.
type Caps struct {
	Control, Module, Stdin, Stdout, Stderr int
}

// DefaultCaps returns 64 KiB control, 64 MiB module, 16 MiB stdin, 16 MiB
// stdout and 1 MiB stderr.
func DefaultCaps() Caps {
	return Caps{
		Control: MaxControlFrame,
		Module:  64 << 20,
		Stdin:   16 << 20,
		Stdout:  16 << 20,
		Stderr:  1 << 20,
	}
}

// archAliases maps accepted non-Go spellings to Go GOARCH names.
var archAliases = map[string]string{
	"x86_64":  "amd64",
	"aarch64": "arm64",
}

// goArches are the GOARCH values Go supports as build targets.
var goArches = map[string]bool{
	"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true,
	"mips": true, "mipsle": true, "mips64": true, "mips64le": true,
	"ppc64": true, "ppc64le": true, "riscv64": true, "s390x": true, "wasm": true,
}

// NormalizeArch returns the Go name of an architecture: Go names pass
// unchanged, x86_64 becomes amd64 and aarch64 becomes arm64. Anything else,
// including the empty string and other letter cases, is an error.
func NormalizeArch(s string) (string, error) {
	if goArches[s] {
		return s, nil
	}
	if g, ok := archAliases[s]; ok {
		return g, nil
	}
	return "", fmt.Errorf("unknown architecture %s (want a Go GOARCH name such as amd64 or arm64, or x86_64/aarch64)", echo(s))
}

// NewNonce returns a fresh offer nonce: 32 bytes from crypto/rand as 64
// lowercase hex characters.
func NewNonce() string {
	var b [NonceHexLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// echo quotes a value for an error message, shortened so that a hostile peer
// cannot make errors (and the logs they land in) arbitrarily long.
func echo(s string) string {
	if len(s) > maxFieldEcho {
		return fmt.Sprintf("%q…(%d bytes)", s[:maxFieldEcho], len(s))
	}
	return fmt.Sprintf("%q", s)
}

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
	"errors"

	"github.com/phase-protocol/plasm/node/phase"
)

// MaxControlFrame is the largest control frame body any peer may send or
// must accept (WIRE-8).
const MaxControlFrame = phase.MaxControlFrame

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
	TypeProgress    = "progress"
)

// readAllocChunk is the growth step for large frame bodies.
const readAllocChunk = 1 << 20

// accountedChunk is the first size and the smallest growth step of a body
// read with ReadDeclaredGrow.
const accountedChunk = 64 << 10

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

// Package session is the Phase job exchange (docs/spec-wire.md §5) and the
// capability exchange (§6), step by step, for both sides, over any stream.
//
// The node side is Serve: it reads the offer, asks a Handler to decide it,
// reads the payload, asks the Handler to run the job, and writes what the
// Handler returns, answering every bad frame, stall and stray message with
// the rejection or error code the spec promises. The client side is Client:
// offer, read accepted or rejected, send payload, module and stdin, read
// result and output, and Check the receipt against what it sent and got.
//
// The package moves bytes and applies protocol rules; it decides nothing
// about admission, execution or signing. The job server, the Go client, the
// simulator's misbehaving nodes, the conformance suite and the tests all run
// their exchanges through it, so each rule is written once.
package session

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Stream is a bidirectional byte stream whose halves close separately: a
// libp2p network.Stream, or anything like it.
type Stream interface {
	io.Reader
	io.Writer
	Close() error
	CloseWrite() error
	Reset() error
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Step names a point of the job exchange, in order. Errors and hooks say
// which step they are about.
type Step string

const (
	StepOffer    Step = "offer"    // client → node: the offer
	StepAnswer   Step = "answer"   // node → client: accepted, rejected or error
	StepPayload  Step = "payload"  // client → node: the payload message
	StepModule   Step = "module"   // client → node: the module frame
	StepStdin    Step = "stdin"    // client → node: the stdin frame
	StepRun      Step = "run"      // the node runs the job
	StepProgress Step = "progress" // node → client: a keep-alive while the job runs
	StepResult   Step = "result"   // node → client: the result message
	StepStdout   Step = "stdout"   // node → client: the stdout frame
	StepStderr   Step = "stderr"   // node → client: the stderr frame
	StepVerify   Step = "verify"   // the client checks the receipt
)

// Error is a failed step: what the exchange was doing, and why it failed.
// Err wraps a wire sentinel (wire.ErrTooLarge, ErrInvalid, ErrMalformed,
// ErrUnexpected), a *wire.ErrorMsg from the peer, io.EOF or
// io.ErrUnexpectedEOF, a deadline error, or a stream error.
type Error struct {
	Step Step
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func stepErr(step Step, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Step: step, Err: err}
}

// IsTimeout recognises the deadline errors of yamux, QUIC, net and context.
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

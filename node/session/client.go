package session

import (
	"bufio"
	"errors"
	"fmt"
	"time"

	"github.com/phase-protocol/plasm/node/wire"
)

// Client is the client side of one job exchange on one stream. Its methods
// are the steps, called in order: Offer, then (when accepted) Send, then
// Result. Every error is an *Error naming the step.
type Client struct {
	s        Stream
	br       *bufio.Reader
	offer    wire.Offer
	accepted *wire.Accepted
	caps     wire.Caps
}

// NewClient starts the client side on s. caps bound the stdout and stderr
// frames it reads; zero caps take wire.DefaultCaps.
func NewClient(s Stream, caps wire.Caps) *Client {
	if caps == (wire.Caps{}) {
		caps = wire.DefaultCaps()
	}
	return &Client{s: s, br: bufio.NewReader(s), caps: caps}
}

// Offer sends the offer and reads the answer within timeout: accepted (the
// exchange goes on), rejected (it is over, JOB-4) or a *wire.ErrorMsg inside
// the *Error. An accepted message whose limits exceed the manifest's is a
// protocol error (JOB-11).
func (c *Client) Offer(o wire.Offer, timeout time.Duration) (*wire.Accepted, *wire.Rejected, error) {
	frame, err := wire.AppendControl(nil, o)
	if err != nil {
		return nil, nil, &Error{Step: StepOffer, Err: err}
	}
	return c.OfferFrame(o, frame, timeout)
}

// OfferFrame is Offer with the offer's frame given as bytes, sent as they
// are: tests and the conformance suite send offers no honest client would.
// o is what the frame says, for checking the answer.
func (c *Client) OfferFrame(o wire.Offer, frame []byte, timeout time.Duration) (*wire.Accepted, *wire.Rejected, error) {
	c.offer = o
	if timeout > 0 {
		_ = c.s.SetDeadline(time.Now().Add(timeout))
	}
	if _, err := c.s.Write(frame); err != nil {
		return nil, nil, &Error{Step: StepOffer, Err: err}
	}
	msg, err := wire.ReadExpect(c.br, wire.TypeAccepted, wire.TypeRejected)
	if err != nil {
		return nil, nil, &Error{Step: StepAnswer, Err: err}
	}
	switch m := msg.(type) {
	case *wire.Rejected:
		_ = c.s.Close()
		return nil, m, nil
	case *wire.Accepted:
		if err := o.CheckAccepted(m); err != nil {
			return nil, nil, &Error{Step: StepAnswer, Err: err}
		}
		c.accepted = m
		return m, nil, nil
	}
	return nil, nil, &Error{Step: StepAnswer, Err: fmt.Errorf("%w: %s", wire.ErrUnexpected, msg.MessageType())}
}

// Send writes the payload, the module frame unless the node has it, and the
// stdin frame, then closes the write side (JOB-5, JOB-17). module must be
// the bytes the offer announced.
func (c *Client) Send(args []string, module, stdin []byte, deadline time.Time) error {
	if c.accepted == nil {
		return &Error{Step: StepPayload, Err: errors.New("no accepted offer")}
	}
	_ = c.s.SetDeadline(deadline)
	bw := bufio.NewWriterSize(c.s, 64<<10)
	err := wire.WriteControl(bw, wire.Payload{Args: args})
	if err == nil && !c.accepted.HaveModule {
		err = wire.WriteFrame(bw, module)
	}
	if err == nil {
		err = wire.WriteFrame(bw, stdin)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return &Error{Step: StepPayload, Err: err}
	}
	// A node that does not support half-close still has everything, so a
	// failure here is not the exchange's.
	_ = c.s.CloseWrite()
	return nil
}

// Output is a result as the client received it, not yet verified.
type Output struct {
	Result         *wire.Result
	Stdout, Stderr []byte
}

// Result reads the result and the stdout and stderr frames (JOB-9, JOB-10).
// While the node runs the job, a node that agreed to send progress
// (accepted.progress_ms) must show it is alive: each wait for the next
// message is bounded by stall (when > 0) instead of the overall deadline,
// so a silent node is noticed in seconds (JOB-18). onProgress, when set, is
// called for each progress message.
func (c *Client) Result(deadline time.Time, stall time.Duration, onProgress func(*wire.Progress)) (*Output, error) {
	progress := c.accepted != nil && c.accepted.ProgressMS > 0 && stall > 0
	for {
		wait := deadline
		if progress {
			if next := time.Now().Add(stall); next.Before(wait) {
				wait = next
			}
		}
		_ = c.s.SetReadDeadline(wait)
		types := []string{wire.TypeResult}
		if progress {
			types = append(types, wire.TypeProgress)
		}
		msg, err := wire.ReadExpect(c.br, types...)
		if err != nil {
			if progress && IsTimeout(err) && time.Now().Before(deadline) {
				err = fmt.Errorf("%w: no progress from the node for %s", ErrStalled, stall)
			}
			return nil, &Error{Step: StepResult, Err: err}
		}
		if p, ok := msg.(*wire.Progress); ok {
			if onProgress != nil {
				onProgress(p)
			}
			continue
		}
		res := msg.(*wire.Result)
		if c.accepted != nil {
			if err := c.accepted.CheckResult(res); err != nil {
				return nil, &Error{Step: StepResult, Err: err}
			}
		}
		_ = c.s.SetReadDeadline(deadline)
		stdout, err := wire.ReadDeclared(c.br, res.StdoutSize, c.caps.Stdout, wire.KindStdout)
		if err != nil {
			return nil, &Error{Step: StepStdout, Err: err}
		}
		stderr, err := wire.ReadDeclared(c.br, res.StderrSize, c.caps.Stderr, wire.KindStderr)
		if err != nil {
			return nil, &Error{Step: StepStderr, Err: err}
		}
		return &Output{Result: res, Stdout: stdout, Stderr: stderr}, nil
	}
}

// ErrStalled: a node that promised progress went silent (JOB-18).
var ErrStalled = errors.New("node stalled")

// Close ends the exchange cleanly (after a complete one) and Abort resets
// it, so the node frees what it held at once.
func (c *Client) Close() error { return c.s.Close() }
func (c *Client) Abort() error { return c.s.Reset() }

// Reader is the buffered reader the client reads the stream through, for
// tests that read raw frames after a step.
func (c *Client) Reader() *bufio.Reader { return c.br }

// Accepted is the node's accepted message, once Offer returned it.
func (c *Client) Accepted() *wire.Accepted { return c.accepted }

// Sent is the offer as sent.
func (c *Client) Sent() wire.Offer { return c.offer }

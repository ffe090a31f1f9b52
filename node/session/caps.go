package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wire"
)

// ServeCaps runs the node side of one capability exchange (spec-wire §6):
// one caps_request in, one caps (the record record returns) or error out,
// then close (CAPS-2, CAPS-3). It follows the job exchange's rules for bad
// input: a frame over the cap gets error too_large, a body that is not a
// valid message invalid_request, another message type protocol, a stall
// timeout; unknown members of the request are ignored (WIRE-16).
func ServeCaps(ctx context.Context, s Stream, record func() ([]byte, error), timeout time.Duration) error {
	x := &server{s: s, br: bufio.NewReader(s), opts: ServeOptions{StepTimeout: timeout}, ctx: ctx}
	x.deadline(false)
	msg, err := wire.ReadControl(x.br)
	if err != nil {
		if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			_ = s.Reset()
			return &Error{Step: StepOffer, Err: err}
		}
		return x.readFailed(StepOffer, err)
	}
	if _, ok := msg.(*wire.CapsRequest); !ok {
		return x.readFailed(StepOffer, fmt.Errorf("%w: expected caps_request, got %s", wire.ErrUnexpected, msg.MessageType()))
	}
	rec, err := record()
	if err != nil {
		return x.fail(StepAnswer, phase.CodeInternal, "no capability record: "+err.Error())
	}
	if err := x.send(StepAnswer, wire.CapsResponse{Record: rec}); err != nil {
		return err
	}
	x.linger()
	return nil
}

// QueryCaps runs the client side of one capability exchange and returns the
// record exactly as the node sent it (compacted). The caller verifies it
// (CAPS-4).
func QueryCaps(s Stream, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		_ = s.SetDeadline(time.Now().Add(timeout))
	}
	if err := wire.WriteControl(s, wire.CapsRequest{}); err != nil {
		return nil, &Error{Step: StepOffer, Err: err}
	}
	_ = s.CloseWrite()
	msg, err := wire.ReadExpect(bufio.NewReader(s), wire.TypeCaps)
	if err != nil {
		return nil, &Error{Step: StepAnswer, Err: err}
	}
	_ = s.Close()
	return msg.(*wire.CapsResponse).Record, nil
}

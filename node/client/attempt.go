package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

// Steps of an exchange, named in Attempt.Reason for timeouts and broken
// streams.
const (
	stepDial    = "dial"
	stepOffer   = "offer"
	stepAccept  = "accept"
	stepPayload = "payload"
	stepResult  = "result"
	stepStdout  = "stdout"
	stepStderr  = "stderr"
)

// maxDetail bounds how much of a node's own text lands in an Attempt.
const maxDetail = 200

// offer is one offer of the job to one node, from dial to accepted (or
// not). The winning offer carries on as the attempt.
type offer struct {
	node    peer.AddrInfo
	msg     wire.Offer
	started time.Time

	parent    context.Context // the seeker's: ends with the run or when other replicas decided it
	ctx       context.Context // the attempt: AttemptTimeout from started
	cancel    context.CancelFunc
	stop      func() bool // unregisters the reset-on-cancel hook
	withdrawn atomic.Bool // cancelled because another offer won

	s   network.Stream
	br  *bufio.Reader
	acc *wire.Accepted
	// fail is set when the offer ended without an accept.
	fail *Attempt
}

// newOffer prepares an offer with a fresh nonce and job id (JOB-15).
func (r *run) newOffer(ctx context.Context, node peer.AddrInfo) *offer {
	o := &offer{node: node, started: time.Now(), parent: ctx}
	o.ctx, o.cancel = context.WithTimeout(ctx, r.s.AttemptTimeout)
	o.msg = wire.Offer{
		JobID:         newJobID(),
		Nonce:         wire.NewNonce(),
		Manifest:      r.s.manifest,
		ModuleSize:    int64(len(r.job.Module)),
		StdinSize:     int64(len(r.job.Stdin)),
		ArgsCount:     len(r.job.Args),
		Arch:          r.job.Arch,
		RequireArch:   r.job.RequireArch,
		Deterministic: r.job.Deterministic,
		Seed:          r.job.Seed,
	}
	return o
}

// send dials, sends the offer and waits for the answer. On return either
// o.acc is set (the stream stays open for the attempt) or o.fail is.
func (r *run) send(o *offer) {
	h := r.c.Host
	if len(o.node.Addrs) > 0 {
		h.Peerstore().AddAddrs(o.node.ID, o.node.Addrs, peerstore.TempAddrTTL)
	}
	dctx, dcancel := context.WithTimeout(o.ctx, r.s.DialTimeout)
	s, err := h.NewStream(dctx, o.node.ID, wire.ProtocolJob)
	dcancel()
	if err != nil {
		o.fail = r.failure(o, stepDial, err)
		return
	}
	o.s = s
	o.br = bufio.NewReader(s)
	// Any end of the attempt (timeout, withdrawal, run over) resets the
	// stream, which unblocks whatever read or write is pending.
	o.stop = context.AfterFunc(o.ctx, func() { _ = s.Reset() })

	if err := s.SetDeadline(time.Now().Add(r.s.AcceptTimeout)); err != nil {
		o.fail = r.failure(o, stepOffer, err)
		return
	}
	if err := wire.WriteControl(s, o.msg); err != nil {
		o.fail = r.failure(o, stepOffer, err)
		return
	}
	msg, err := wire.ReadExpect(o.br, wire.TypeAccepted, wire.TypeRejected)
	if err != nil {
		o.fail = r.failure(o, stepAccept, err)
		return
	}
	switch m := msg.(type) {
	case *wire.Rejected:
		a := o.attempt(AttemptRejected, m.Reason, peerText(m.Detail), retryableReason(m.Reason))
		o.fail = &a
		o.finish(true) // JOB-4: the exchange is over, and the node closes too
	case *wire.Accepted:
		if err := o.msg.CheckAccepted(m); err != nil {
			o.fail = r.failure(o, stepAccept, err)
			return
		}
		o.acc = m
	}
}

// exchange runs an accepted offer to the end: payload, result, output,
// verification. It returns the verified result, or nil and the failed
// attempt.
func (r *run) exchange(o *offer) (*verified, Attempt) {
	s := o.s
	if d, ok := o.ctx.Deadline(); ok {
		if err := s.SetDeadline(d); err != nil {
			return nil, *r.failure(o, stepPayload, err)
		}
	}
	bw := bufio.NewWriterSize(s, 64<<10)
	err := wire.WriteControl(bw, wire.Payload{Args: r.job.Args})
	if err == nil && !o.acc.HaveModule {
		err = wire.WriteFrame(bw, r.job.Module)
	}
	if err == nil {
		err = wire.WriteFrame(bw, r.job.Stdin)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return nil, *r.failure(o, stepPayload, err)
	}
	// JOB-17: nothing more to send. A node that does not support half-close
	// still gets everything, so a failure here is not the attempt's.
	_ = s.CloseWrite()

	msg, err := wire.ReadExpect(o.br, wire.TypeResult)
	if err != nil {
		return nil, *r.failure(o, stepResult, err)
	}
	res := msg.(*wire.Result)
	if err := o.acc.CheckResult(res); err != nil {
		return nil, *r.failure(o, stepResult, err)
	}
	caps := wire.DefaultCaps()
	stdout, err := wire.ReadDeclared(o.br, res.StdoutSize, caps.Stdout, wire.KindStdout)
	if err != nil {
		return nil, *r.failure(o, stepStdout, err)
	}
	stderr, err := wire.ReadDeclared(o.br, res.StderrSize, caps.Stderr, wire.KindStderr)
	if err != nil {
		return nil, *r.failure(o, stepStderr, err)
	}
	if res.Outcome == wire.OutcomeHashMismatch {
		// JOB-8: a hash_mismatch result is a failed attempt without output.
		// The client hashed the module itself, so the job is not at fault:
		// the node's module store or the transfer is, and another node may
		// do better.
		a := o.attempt(AttemptError, wire.CodeHashMismatch, "result outcome hash_mismatch: "+peerText(res.Detail), true)
		o.finish(false)
		return nil, a
	}
	o.finish(true)

	v, check, err := r.verify(o, res, stdout, stderr)
	if err != nil {
		if r.c.Metrics != nil {
			r.c.Metrics.ReceiptsRejected.WithLabelValues(check).Inc()
		}
		return nil, o.attempt(AttemptBadReceipt, check, err.Error(), true)
	}
	return v, o.attempt(AttemptOK, "", "", false)
}

// finish releases the attempt: a clean close after a complete exchange, a
// reset otherwise (so the node frees the slot at once).
func (o *offer) finish(clean bool) {
	if o.stop != nil {
		o.stop()
	}
	if o.s != nil {
		if clean {
			_ = o.s.Close()
		} else {
			_ = o.s.Reset()
		}
	}
	o.cancel()
}

// withdraw cancels an offer that lost the race (or a round that ended).
func (o *offer) withdraw() {
	o.withdrawn.Store(true)
	o.cancel() // the AfterFunc resets the stream
}

func (o *offer) attempt(outcome, reason, detail string, retryable bool) Attempt {
	return Attempt{
		Node:      o.node.ID,
		Outcome:   outcome,
		Reason:    reason,
		Detail:    detail,
		Retryable: retryable,
		Started:   o.started,
		Duration:  time.Since(o.started),
	}
}

// failure classifies an error at a step into an Attempt and ends the
// offer's stream.
func (r *run) failure(o *offer, step string, err error) *Attempt {
	defer o.finish(false)
	var (
		em *wire.ErrorMsg
		a  Attempt
	)
	switch {
	case o.withdrawn.Load():
		a = o.attempt(AttemptCancelled, step, "offer withdrawn: another node accepted first", false)
	case o.parent.Err() != nil:
		a = r.endedAttempt(o, step)
	case errors.Is(o.ctx.Err(), context.DeadlineExceeded):
		a = o.attempt(AttemptTimeout, step, fmt.Sprintf("attempt timeout of %s passed", r.s.AttemptTimeout), true)
	case errors.As(err, &em):
		a = o.attempt(AttemptError, em.Code, peerText(em.Detail), retryableCode(em.Code))
	case isTimeout(err):
		a = o.attempt(AttemptTimeout, step, timeoutDetail(step, r.s), true)
	case step == stepDial:
		a = o.attempt(AttemptUnreachable, step, err.Error(), true)
	case errors.Is(err, wire.ErrInvalid), errors.Is(err, wire.ErrMalformed),
		errors.Is(err, wire.ErrUnexpected), errors.Is(err, wire.ErrTooLarge):
		a = o.attempt(AttemptProtocol, step, err.Error(), true)
	default:
		a = o.attempt(AttemptStreamError, step, streamDetail(err), true)
	}
	return &a
}

// endedAttempt is an attempt cut short because the whole run ended.
func (r *run) endedAttempt(o *offer, step string) Attempt {
	if errors.Is(context.Cause(r.ctx), errDeadline) {
		return o.attempt(AttemptTimeout, step, fmt.Sprintf("overall deadline of %s passed", r.s.Deadline), false)
	}
	if r.ctx.Err() != nil {
		return o.attempt(AttemptCancelled, step, "run cancelled: "+context.Cause(r.ctx).Error(), false)
	}
	return o.attempt(AttemptCancelled, step, "the other replicas decided the run", false)
}

func timeoutDetail(step string, s settings) string {
	switch step {
	case stepOffer, stepAccept:
		return fmt.Sprintf("no answer to the offer within %s", s.AcceptTimeout)
	case stepDial:
		return fmt.Sprintf("could not connect within %s", s.DialTimeout)
	}
	return fmt.Sprintf("no %s within the attempt timeout of %s", step, s.AttemptTimeout)
}

func streamDetail(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "stream closed early: " + err.Error()
	}
	return err.Error()
}

// isTimeout recognises deadline errors from yamux, QUIC and net streams.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryableReason: a rejection says something about the node, except
// invalid_request, which says the job itself is malformed and would be
// refused everywhere.
func retryableReason(reason string) bool {
	return reason != wire.ReasonInvalidRequest
}

// retryableCode: as for rejections. hash_mismatch is retried because the
// client computed the hash from the very bytes it sends: a mismatch is the
// node's (or the transfer's) fault, and a node must not be able to end a
// whole run by claiming one.
func retryableCode(code string) bool {
	return code != wire.CodeInvalidRequest
}

// peerText makes a node's free text safe for an error line: quoted escapes
// for anything unprintable, and bounded.
func peerText(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// newJobID is a fresh random job id: 16 bytes in hex, well inside the
// protocol's 1–64 characters of [A-Za-z0-9._-].
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// verified is an attempt whose receipt checked out.
type verified struct {
	node           peer.ID
	res            *wire.Result
	stdout, stderr []byte
	rc             *receipt.Receipt
	rcJSON         []byte
	attempt        Attempt
}

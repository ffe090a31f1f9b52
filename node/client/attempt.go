package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

// maxDetail bounds how much of a node's own text lands in an Attempt.
const maxDetail = 200

// offer is one offer of the job to one node, from dial to verified result
// (or not). It runs on its own goroutine; the run loop talks to it through
// proceed and its context.
type offer struct {
	node    peer.AddrInfo
	msg     wire.Offer
	started time.Time

	ctx     context.Context // the attempt: AttemptTimeout from started, cancelled when withdrawn
	cancel  context.CancelFunc
	proceed chan struct{} // closed when the run loop lets an accepted offer go on

	s  network.Stream
	sc *session.Client
	up *uploadStream // s as the session writes to it
}

// newOffer prepares an offer with a fresh nonce and job id (JOB-15).
func (r *run) newOffer(node peer.AddrInfo) *offer {
	o := &offer{node: node, started: time.Now(), proceed: make(chan struct{})}
	o.ctx, o.cancel = context.WithTimeout(r.ctx, r.s.AttemptTimeout)
	j := r.s.job
	o.msg = wire.Offer{
		JobID:         phase.NewJobID(),
		Nonce:         phase.NewNonce(),
		Manifest:      r.s.manifest,
		ModuleSize:    int64(len(j.Module)),
		StdinSize:     int64(len(j.Stdin)),
		ArgsCount:     len(j.Args),
		Arch:          j.Arch,
		RequireArch:   j.RequireArch,
		Deterministic: j.Deterministic,
		Seed:          j.Seed,
		Progress:      true,
	}
	return o
}

// attempt runs the offer: dial, offer, wait for the run loop's go-ahead,
// then payload, result and verification. It reports the answer and then the
// end through events.
func (r *run) attempt(o *offer) {
	defer o.cancel()
	fail := r.answer(o)
	r.events <- offerEvent{o: o, ev: evAnswered{node: o.node.ID, fail: fail}}
	if fail != nil {
		return
	}
	select {
	case <-o.proceed:
	case <-o.ctx.Done():
		// Withdrawn (another node won the round) or the run ended: not an
		// attempt on this node.
		_ = o.sc.Abort()
		return
	}
	v, a := r.exchange(o)
	ev := evDone{node: o.node.ID, att: a}
	if v != nil {
		r.mu.Lock()
		r.verified[o.node.ID] = v
		r.mu.Unlock()
		k := keyOf(v)
		ev.key = &k
	}
	r.events <- offerEvent{o: o, ev: ev}
}

// answer dials and sends the offer, and returns nil when it was accepted
// (the stream stays open) or the failed attempt.
func (r *run) answer(o *offer) *Attempt {
	h := r.c.Host
	if len(o.node.Addrs) > 0 {
		h.Peerstore().AddAddrs(o.node.ID, o.node.Addrs, peerstore.TempAddrTTL)
	}
	dctx, dcancel := context.WithTimeout(o.ctx, r.s.DialTimeout)
	// A node behind NAT may be reachable only through a relay: allow the
	// job stream on a relayed (limited) connection rather than fail it.
	dctx = network.WithAllowLimitedConn(dctx, "phase job")
	s, err := h.NewStream(dctx, o.node.ID, phase.ProtocolJob)
	dcancel()
	if err != nil {
		return r.failure(o, session.StepOffer, err, true)
	}
	o.s = s
	o.up = &uploadStream{Stream: s}
	o.sc = session.NewClient(o.up, wire.Caps{})
	// Any end of the attempt (timeout, withdrawal, run over) resets the
	// stream, which unblocks whatever read or write is pending.
	context.AfterFunc(o.ctx, func() { _ = s.Reset() })
	_, rej, err := o.sc.Offer(o.msg, r.s.AcceptTimeout)
	switch {
	case err != nil:
		return r.failure(o, session.StepAnswer, err, false)
	case rej != nil:
		a := o.attempt(AttemptRejected, rej.Reason, peerText(rej.Detail), rej.Reason != phase.ReasonInvalidRequest)
		return &a
	}
	return nil
}

// exchange runs an accepted offer to the end: payload, result, output,
// verification.
func (r *run) exchange(o *offer) (*verified, Attempt) {
	deadline, _ := o.ctx.Deadline()
	j := r.s.job
	o.up.watch(r.s.HedgeAfter/4, func() { r.events <- offerEvent{o: o, ev: evUploading{node: o.node.ID}} })
	err := o.sc.Send(j.Args, j.Module, j.Stdin, deadline)
	o.up.watch(0, nil)
	if err != nil {
		return nil, *r.failure(o, session.StepPayload, err, false)
	}
	var promised int64
	if acc := o.sc.Accepted(); acc != nil {
		promised = acc.ProgressMS
	}
	r.events <- offerEvent{o: o, ev: evSent{node: o.node.ID, progressMS: promised}}
	var alive sync.Once
	shown := false
	running := time.Now()
	out, err := o.sc.Result(deadline, r.s.StallTimeout, func(*wire.Progress) {
		alive.Do(func() {
			shown = true
			r.events <- offerEvent{o: o, ev: evProgress{node: o.node.ID}}
		})
	})
	if err != nil {
		a := r.failure(o, session.StepResult, err, false)
		if silent := time.Since(running); a.Outcome == AttemptCancelled && !shown && silent >= r.s.HedgeAfter/2 {
			// Withdrawn because another node finished first, after it had
			// said nothing for a good part of the hedge delay: a timeout,
			// so the client remembers it as it remembers a stall.
			*a = o.attempt(AttemptTimeout, string(session.StepResult),
				fmt.Sprintf("outrun: another node finished first while this one sent no result or progress for %s", silent.Round(time.Millisecond)), true)
		}
		return nil, *a
	}
	if out.Result.Outcome == phase.OutcomeHashMismatch {
		// JOB-8: a hash_mismatch result is a failed attempt without output.
		// The client hashed the module itself, so the job is not at fault:
		// the node's module store or the transfer is, and another node may
		// do better.
		_ = o.sc.Abort()
		return nil, o.attempt(AttemptError, phase.CodeHashMismatch, "result outcome hash_mismatch: "+peerText(out.Result.Detail), true)
	}
	_ = o.sc.Close()
	rc, check, err := session.Check(out, o.sc.Accepted(), session.Expect{
		Receipt: receipt.Expect{
			PeerID:     o.s.Conn().RemotePeer(),
			JobID:      o.msg.JobID,
			Nonce:      o.msg.Nonce,
			Requester:  r.c.Host.ID().String(),
			ModuleHash: r.s.moduleHash,
			InputHash:  r.s.inputHash,
		},
		Deterministic: j.Deterministic,
	})
	if err != nil {
		if r.c.Metrics != nil {
			r.c.Metrics.ReceiptsRejected.WithLabelValues(check).Inc()
		}
		return nil, o.attempt(AttemptBadReceipt, check, err.Error(), true)
	}
	a := o.attempt(AttemptOK, "", "", false)
	return &verified{node: o.node.ID, out: out, rc: rc, attempt: a}, a
}

// uploadChunk is how much of a write goes to the stream at once while the
// payload is watched, so that a large module frame shows progress as it
// goes rather than once at its end.
const uploadChunk = 16 << 10

// uploadStream is the job stream as the session client writes to it. While
// watched (the payload upload), each chunk the stream takes counts as the
// node reading, and the run loop hears of it at most once per every (a
// node that stops reading is then hedged between 3/4 and all of the hedge
// delay after the last chunk it took).
type uploadStream struct {
	network.Stream
	every  time.Duration
	tell   func()
	last   time.Time
	active bool
}

// watch starts (tell set) or stops (nil) reporting upload progress. It is
// called by the offer's own goroutine, which is also the only writer.
func (u *uploadStream) watch(every time.Duration, tell func()) {
	u.every, u.tell, u.last, u.active = every, tell, time.Now(), tell != nil
}

func (u *uploadStream) Write(p []byte) (int, error) {
	if !u.active {
		return u.Stream.Write(p)
	}
	written := 0
	for len(p) > 0 {
		n, err := u.Stream.Write(p[:min(len(p), uploadChunk)])
		written += n
		p = p[n:]
		if n > 0 && time.Since(u.last) >= u.every {
			u.last = time.Now()
			u.tell()
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
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
// offer's stream. dial says the stream never opened.
func (r *run) failure(o *offer, step session.Step, err error, dial bool) *Attempt {
	if o.sc != nil {
		_ = o.sc.Abort()
	}
	var se *session.Error
	if errors.As(err, &se) {
		step = se.Step
	}
	var (
		em *wire.ErrorMsg
		a  Attempt
	)
	switch {
	case r.ctx.Err() != nil:
		a = r.endedAttempt(o, step)
	case errors.Is(o.ctx.Err(), context.Canceled):
		a = o.attempt(AttemptCancelled, string(step), "offer withdrawn: another node accepted first or the replicas decided", false)
	case errors.Is(o.ctx.Err(), context.DeadlineExceeded):
		a = o.attempt(AttemptTimeout, string(step), fmt.Sprintf("attempt timeout of %s passed", r.s.AttemptTimeout), true)
	case errors.Is(err, session.ErrStalled):
		a = o.attempt(AttemptTimeout, string(step), fmt.Sprintf("node stalled: no progress for %s", r.s.StallTimeout), true)
	case errors.As(err, &em):
		a = o.attempt(AttemptError, em.Code, peerText(em.Detail), em.Code != phase.CodeInvalidRequest)
	case session.IsTimeout(err):
		a = o.attempt(AttemptTimeout, string(step), timeoutDetail(step, dial, r.s), true)
	case dial:
		a = o.attempt(AttemptUnreachable, "dial", err.Error(), true)
	case errors.Is(err, wire.ErrInvalid), errors.Is(err, wire.ErrMalformed),
		errors.Is(err, wire.ErrUnexpected), errors.Is(err, wire.ErrTooLarge):
		a = o.attempt(AttemptProtocol, string(step), err.Error(), true)
	default:
		a = o.attempt(AttemptStreamError, string(step), streamDetail(err), true)
	}
	return &a
}

// endedAttempt is an attempt cut short because the whole run ended.
func (r *run) endedAttempt(o *offer, step session.Step) Attempt {
	if errors.Is(context.Cause(r.ctx), errDeadline) {
		return o.attempt(AttemptTimeout, string(step), fmt.Sprintf("overall deadline of %s passed", r.s.Deadline), false)
	}
	return o.attempt(AttemptCancelled, string(step), "run cancelled: "+context.Cause(r.ctx).Error(), false)
}

func timeoutDetail(step session.Step, dial bool, s settings) string {
	switch {
	case dial:
		return fmt.Sprintf("could not connect within %s", s.DialTimeout)
	case step == session.StepOffer, step == session.StepAnswer:
		return fmt.Sprintf("no answer to the offer within %s", s.AcceptTimeout)
	}
	return fmt.Sprintf("no %s within the attempt timeout of %s", step, s.AttemptTimeout)
}

func streamDetail(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "stream closed early: " + err.Error()
	}
	return err.Error()
}

// peerText makes a node's free text safe for an error line: quoted escapes
// for anything unprintable, and bounded.
func peerText(s string) string {
	if s == "" {
		return ""
	}
	s = phase.Clip(s, maxDetail)
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// verified is an attempt whose receipt checked out.
type verified struct {
	node    peer.ID
	out     *session.Output
	rc      *receipt.Receipt
	attempt Attempt
}

func keyOf(v *verified) resultKey {
	return resultKey{v.rc.Outcome, v.rc.ExitCode, v.rc.StdoutHash, v.rc.StderrHash}
}

package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wire"
)

// Handler makes the node's decisions in one exchange; Serve does the I/O.
// Offer is called once per stream with a valid offer. When it accepts, Run
// is called once with the payload, unless the exchange broke first. Serve
// calls Decision.Release, when set, once the exchange is over, whatever
// happened.
type Handler interface {
	Offer(ctx context.Context, o *wire.Offer) Decision
	Run(ctx context.Context, job *Job) Reply
}

// Decision is the answer to an offer: exactly one of Reject, Error or
// Accept.
type Decision struct {
	Reject *wire.Rejected
	Error  *wire.ErrorMsg
	Accept *wire.Accepted
	// Module is the stored module when Accept.HaveModule is set.
	Module []byte
	// MaxModule and MaxStdin cap the frames the node then reads (its own
	// limits; the offer's declared sizes were checked against them).
	MaxModule, MaxStdin int64
	// Release ends the job's hold on the node (a slot, a reservation).
	Release func()
	// Upload, when set, paces and accounts the payload's bytes: the whole
	// payload must arrive by its deadline, and buffer growth is reserved
	// from it first. Nil: each frame has the step timeout, unaccounted.
	Upload Upload
}

// Upload is the node's hold on one accepted stream while its payload
// arrives. An upload is cheap on purpose (no job slot, no buffer beyond
// the bytes that arrived), so many may wait.
type Upload interface {
	// Deadline is when the whole payload (payload message, module and
	// stdin frames) must have arrived.
	Deadline() time.Time
	// Reserve is called before n more bytes are buffered; it may block
	// until memory is free, and an error ends the exchange.
	Reserve(ctx context.Context, n int) error
	// Arrived reports n bytes read from the stream (the upload is alive).
	Arrived(n int)
	// Done reports the payload complete: the job is ready to run.
	Done()
}

// Job is an accepted offer with its payload, as Run gets it.
type Job struct {
	Offer    *wire.Offer
	Limits   wire.AppliedLimits
	Args     []string
	Module   []byte // received, or the stored bytes when the node had it
	Stored   bool   // Module came from the node's store, not from this stream
	Stdin    []byte
	Received time.Time // when the stdin frame was read
}

// Reply is what Run returns: a result with its output, or an error message.
type Reply struct {
	Result         *wire.Result
	Stdout, Stderr []byte
	Error          *wire.ErrorMsg
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// StepTimeout bounds every wait for the client and every write (JOB-14).
	StepTimeout time.Duration
	// ProgressEvery is how often a node sends progress while a job runs,
	// to clients that asked for it (JOB-18); 0 takes DefaultProgressEvery.
	ProgressEvery time.Duration
	// Hooks alter the node's I/O; nil for an honest node.
	Hooks *NodeHooks
}

// DefaultProgressEvery is the progress interval a node promises.
const DefaultProgressEvery = 2 * time.Second

// NodeHooks let a scripted node depart from the protocol at the I/O level
// (the conformance suite's misbehaving nodes and mutants). Every field is
// optional.
type NodeHooks struct {
	// Send is given each frame the node is about to send (length prefix
	// included) and returns the bytes to send instead (empty: nothing). It
	// may block to stall; returning nil ends the exchange with a reset.
	Send func(ctx context.Context, step Step, frame []byte) []byte
	// ReadFailed, when set, replaces the node's answer to a frame it could
	// not read or use (a stall, a bad frame, a stray message); it gets the
	// stream to do with as it pleases. The exchange ends when it returns.
	ReadFailed func(ctx context.Context, step Step, err error, s Stream)
	// SkipHashCheck runs received module bytes without checking them
	// against the manifest (a mutant of JOB-8).
	SkipHashCheck bool
	// ControlCap overrides the control frame cap the node reads with (a
	// mutant of WIRE-8); 0 keeps the protocol's.
	ControlCap int
}

const (
	// lingerTime and lingerBytes bound how long, and how much, the node
	// keeps reading after it ended an exchange with an error or a
	// rejection: the client may still be writing, and draining lets that
	// write finish so the client gets to read the answer instead of a
	// reset (JOB-19).
	lingerTime  = time.Second
	lingerBytes = 1 << 20
	// maxDetail caps peer- or guest-derived text in messages.
	maxDetail = 512
)

// server is one node-side exchange.
type server struct {
	s  Stream
	br *bufio.Reader
	rd *countingReader
	// uploadDue is the payload's deadline while an Upload paces it.
	uploadDue time.Time
	opts      ServeOptions
	hooks     NodeHooks
	ctx       context.Context
	wmu       sync.Mutex // progress and result writes
}

// Serve runs the node side of one job exchange on s and returns the step
// at which it ended and why (nil when a result was delivered). It always
// leaves s closed or reset.
func Serve(ctx context.Context, s Stream, h Handler, opts ServeOptions) (err error) {
	x := &server{s: s, rd: &countingReader{r: s}, opts: opts, ctx: ctx}
	x.br = bufio.NewReader(x.rd)
	if opts.Hooks != nil {
		x.hooks = *opts.Hooks
	}
	if x.opts.ProgressEvery <= 0 {
		x.opts.ProgressEvery = DefaultProgressEvery
	}
	offer, err := x.readOffer()
	if err != nil {
		return err
	}
	d := h.Offer(ctx, offer)
	if d.Release != nil {
		defer d.Release()
	}
	switch {
	case d.Reject != nil:
		return x.finish(StepAnswer, *d.Reject, errRejected(d.Reject))
	case d.Error != nil:
		return x.finish(StepAnswer, *d.Error, d.Error)
	case d.Accept == nil:
		return x.fail(StepAnswer, phase.CodeInternal, "the node could not decide the offer")
	}
	acc := *d.Accept
	if offer.Progress {
		acc.ProgressMS = x.opts.ProgressEvery.Milliseconds()
	}
	if err := x.send(StepAnswer, acc); err != nil {
		return err
	}
	job, err := x.readPayload(offer, acc, d)
	if err != nil {
		return err
	}
	runCtx, stopProgress := context.WithCancel(ctx)
	if offer.Progress {
		go x.progress(runCtx, job.Received)
	}
	reply := h.Run(runCtx, job)
	stopProgress()
	x.wmu.Lock() // the progress writer is done or will not write again
	defer x.wmu.Unlock()
	if reply.Error != nil {
		return x.finishLocked(StepResult, *reply.Error, reply.Error)
	}
	if reply.Result == nil {
		_ = s.Reset()
		return &Error{Step: StepRun, Err: errors.New("the job did not finish")}
	}
	return x.writeResult(*reply.Result, reply.Stdout, reply.Stderr)
}

func errRejected(r *wire.Rejected) error {
	return fmt.Errorf("rejected %s: %s", r.Reason, phase.Clip(r.Detail, maxDetail))
}

// readOffer reads and parses the first frame. A frame that is too large or
// not a valid offer is answered with rejected (JOB-3); broken framing, a
// message of another type and a stall get an error message (JOB-13, JOB-14).
func (x *server) readOffer() (*wire.Offer, error) {
	x.deadline(false)
	body, err := wire.ReadFrame(x.br, x.controlCap(), wire.KindControl)
	var msg wire.Message
	if err == nil {
		msg, err = wire.ParseControl(body)
	}
	if err != nil {
		switch {
		case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			_ = x.s.Reset() // opened and closed without a word
			return nil, &Error{Step: StepOffer, Err: err}
		case x.hooks.ReadFailed != nil:
			x.hooks.ReadFailed(x.ctx, StepOffer, err, x.s)
			return nil, &Error{Step: StepOffer, Err: err}
		case errors.Is(err, wire.ErrTooLarge):
			return nil, x.finish(StepAnswer, wire.Rejected{Reason: phase.ReasonTooLarge, Detail: clip(err.Error())}, &Error{Step: StepOffer, Err: err})
		case errors.Is(err, wire.ErrInvalid):
			return nil, x.finish(StepAnswer, wire.Rejected{Reason: phase.ReasonInvalidRequest, Detail: clip(err.Error())}, &Error{Step: StepOffer, Err: err})
		}
		return nil, x.readFailed(StepOffer, err)
	}
	switch m := msg.(type) {
	case *wire.Offer:
		return m, nil
	case *wire.ErrorMsg: // the client gave up before it began
		_ = x.s.Reset()
		return nil, &Error{Step: StepOffer, Err: m}
	}
	return nil, x.readFailed(StepOffer, fmt.Errorf("%w: expected offer, got %s", wire.ErrUnexpected, msg.MessageType()))
}

// readPayload reads the payload message, the module frame unless the node
// has the module, and the stdin frame, and checks the module hash (JOB-5 to
// JOB-8).
func (x *server) readPayload(o *wire.Offer, acc wire.Accepted, d Decision) (*Job, error) {
	up := d.Upload
	var grow func(int) error
	if up != nil {
		// One deadline for the whole payload, set by its declared size
		// (the node chose it); every byte that arrives counts as alive.
		_ = x.s.SetReadDeadline(up.Deadline())
		x.rd.arrived = up.Arrived
		x.uploadDue = up.Deadline()
		defer func() { x.rd.arrived, x.uploadDue = nil, time.Time{} }()
		grow = func(n int) error { return up.Reserve(x.ctx, n) }
	} else {
		x.deadline(false)
	}
	msg, err := wire.ReadExpect(x.br, wire.TypePayload)
	if err != nil {
		return nil, x.readFailed(StepPayload, err)
	}
	payload := msg.(*wire.Payload)
	if err := o.CheckPayload(payload); err != nil {
		return nil, x.fail(StepPayload, phase.CodeInvalidRequest, err.Error())
	}
	job := &Job{Offer: o, Limits: acc.Limits, Args: payload.Args, Module: d.Module, Stored: acc.HaveModule}
	if !acc.HaveModule {
		if up == nil {
			x.deadline(false)
		}
		if job.Module, err = wire.ReadDeclaredGrow(x.br, o.ModuleSize, capOf(d.MaxModule), wire.KindModule, grow); err != nil {
			return nil, x.readFailed(StepModule, err)
		}
	}
	if up == nil {
		x.deadline(false)
	}
	if job.Stdin, err = wire.ReadDeclaredGrow(x.br, o.StdinSize, capOf(d.MaxStdin), wire.KindStdin, grow); err != nil {
		return nil, x.readFailed(StepStdin, err)
	}
	job.Received = time.Now()
	if !acc.HaveModule && !x.hooks.SkipHashCheck {
		if got := phase.HashBytes(job.Module); got != o.Manifest.ModuleHash {
			return nil, x.fail(StepModule, phase.CodeHashMismatch,
				fmt.Sprintf("module bytes hash to %s, manifest says %s", got, o.Manifest.ModuleHash))
		}
	}
	if up != nil {
		up.Done()
	}
	return job, nil
}

// countingReader tells the upload about every byte read from the stream.
type countingReader struct {
	r       io.Reader
	arrived func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.arrived != nil {
		c.arrived(n)
	}
	return n, err
}

func capOf(n int64) int {
	if n <= 0 {
		return 0
	}
	return int(min(n, int64(^uint(0)>>1)))
}

func (x *server) controlCap() int {
	if x.hooks.ControlCap > 0 {
		return x.hooks.ControlCap
	}
	return wire.MaxControlFrame
}

// readFailed answers a failed read with the error code that fits it
// (JOB-13, JOB-14) and ends the exchange.
func (x *server) readFailed(step Step, err error) error {
	if x.hooks.ReadFailed != nil {
		x.hooks.ReadFailed(x.ctx, step, err, x.s)
		return &Error{Step: step, Err: err}
	}
	var peerErr *wire.ErrorMsg
	switch {
	case errors.As(err, &peerErr): // the client ended the exchange (JOB-12)
		_ = x.s.Reset()
		return &Error{Step: step, Err: err}
	case IsTimeout(err) && !x.uploadDue.IsZero():
		return x.fail(step, phase.CodeTimeout, fmt.Sprintf("the payload was not complete by its deadline (%s at the %s step)", x.uploadDue.UTC().Format(time.RFC3339), step))
	case IsTimeout(err):
		return x.fail(step, phase.CodeTimeout, fmt.Sprintf("no %s within %s", step, x.opts.StepTimeout))
	case errors.Is(err, wire.ErrTooLarge):
		return x.fail(step, phase.CodeTooLarge, err.Error())
	case errors.Is(err, wire.ErrInvalid):
		return x.fail(step, phase.CodeInvalidRequest, err.Error())
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrUnexpected), errors.Is(err, io.ErrUnexpectedEOF):
		return x.fail(step, phase.CodeProtocol, err.Error())
	case errors.Is(err, io.EOF):
		return x.fail(step, phase.CodeProtocol, fmt.Sprintf("stream ended before the %s", step))
	}
	_ = x.s.Reset() // the stream itself failed (reset, connection gone)
	return &Error{Step: step, Err: err}
}

// fail sends an error message and ends the exchange.
func (x *server) fail(step Step, code, detail string) error {
	em := wire.ErrorMsg{Code: code, Detail: clip(detail)}
	return x.finish(step, em, &Error{Step: step, Err: &em})
}

// finish sends the last message of a failed or refused exchange (a
// rejection or an error), then lingers and closes. It returns cause.
func (x *server) finish(step Step, msg any, cause error) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	return x.finishLocked(step, msg, cause)
}

func (x *server) finishLocked(step Step, msg any, cause error) error {
	if err := x.sendLocked(step, msg); err != nil {
		return err
	}
	x.linger()
	return stepErr(step, cause)
}

// linger closes the write side, drains what the client still sends for a
// moment (so its pending write completes and it can read our last message),
// then closes, or resets if the client did not close its side (JOB-19).
func (x *server) linger() {
	_ = x.s.CloseWrite()
	_ = x.s.SetReadDeadline(time.Now().Add(min(lingerTime, x.opts.StepTimeout)))
	_, err := io.CopyN(io.Discard, x.br, lingerBytes)
	if errors.Is(err, io.EOF) {
		_ = x.s.Close()
		return
	}
	_ = x.s.Reset()
}

// send writes one control message.
func (x *server) send(step Step, msg any) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	return x.sendLocked(step, msg)
}

func (x *server) sendLocked(step Step, msg any) error {
	frame, err := wire.AppendControl(nil, msg)
	if err != nil {
		_ = x.s.Reset()
		return &Error{Step: step, Err: err}
	}
	return x.write(step, frame)
}

// write sends encoded frames through the Send hook.
func (x *server) write(step Step, frame []byte) error {
	if x.hooks.Send != nil {
		if frame = x.hooks.Send(x.ctx, step, frame); frame == nil {
			_ = x.s.Reset()
			return &Error{Step: step, Err: errors.New("hook ended the exchange")}
		}
	}
	if len(frame) == 0 {
		return nil
	}
	x.deadline(true)
	if _, err := x.s.Write(frame); err != nil {
		_ = x.s.Reset()
		return &Error{Step: step, Err: err}
	}
	return nil
}

// writeResult sends result, stdout and stderr, then closes (JOB-9).
func (x *server) writeResult(r wire.Result, stdout, stderr []byte) error {
	frame, err := wire.AppendControl(nil, r)
	if err != nil {
		_ = x.s.Reset()
		return &Error{Step: StepResult, Err: err}
	}
	if x.hooks.Send != nil {
		// Each frame its own step, so a hook can stall between them.
		if err := x.write(StepResult, frame); err != nil {
			return err
		}
		if err := x.write(StepStdout, wire.AppendFrame(nil, stdout)); err != nil {
			return err
		}
		if err := x.write(StepStderr, wire.AppendFrame(nil, stderr)); err != nil {
			return err
		}
	} else {
		// The usual case: one write for small outputs.
		frame = wire.AppendFrame(frame, stdout)
		frame = wire.AppendFrame(frame, stderr)
		if err := x.write(StepResult, frame); err != nil {
			return err
		}
	}
	_ = x.s.Close()
	return nil
}

// progress sends a progress message every ProgressEvery until ctx ends
// (JOB-18).
// The first message goes at once: the client learns the job is running
// before its hedge delay, however short the promised interval.
func (x *server) progress(ctx context.Context, since time.Time) {
	t := time.NewTicker(x.opts.ProgressEvery)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		x.wmu.Lock()
		if ctx.Err() != nil {
			x.wmu.Unlock()
			return
		}
		err := x.sendLocked(StepProgress, wire.Progress{ElapsedMS: time.Since(since).Milliseconds()})
		x.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

func (x *server) deadline(write bool) {
	if x.opts.StepTimeout <= 0 {
		return
	}
	t := time.Now().Add(x.opts.StepTimeout)
	if write {
		_ = x.s.SetWriteDeadline(t)
	} else {
		_ = x.s.SetReadDeadline(t)
	}
}

func clip(s string) string { return phase.Clip(s, maxDetail) }

package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

const (
	// lingerTime and lingerBytes bound how long, and how much, the server
	// keeps reading after it ended an exchange with an error: the peer may
	// still be writing a frame, and draining lets that write finish so the
	// peer gets to read the error instead of a bare reset.
	lingerTime  = time.Second
	lingerBytes = 1 << 20
	// maxDetail caps guest- or peer-derived text in messages and logs.
	maxDetail = 512
	// bodyChunk is the growth step when reading a large raw frame, so a
	// peer announcing a big frame and stalling costs only what it sent.
	bodyChunk = 1 << 20
)

// Server is the node side of the job protocol (/phase/job/1.0.0): it decides
// offers (Admit), receives payloads, runs jobs on the executor within the
// clamped limits, and returns results with signed receipts.
//
// Every stream is served on its own goroutine (libp2p starts one per
// stream), and a job waiting for a run slot blocks only its own stream, so
// one peer's slow job never delays another peer's offer.
type Server struct {
	h     host.Host
	exec  *wasm.Executor
	id    *identity.Identity
	cfg   config.Jobs
	step  time.Duration
	m     *metrics.Metrics // may be nil
	log   *slog.Logger
	store *ModuleStore

	nonces *NonceCache
	slots  chan struct{} // one token per running job

	mu       sync.Mutex
	policy   Policy
	closing  bool
	admitted int // accepted, not finished: running + queued
	running  int
	perPeer  map[peer.ID]int
	streams  map[network.Stream]struct{}
	handlers sync.WaitGroup

	onLoad atomic.Pointer[func()]

	ctx    context.Context // cancelled when Close gives up waiting: stops running jobs
	cancel context.CancelFunc
}

// NewServer builds a job server for host h. It does not serve until Start.
// m may be nil (no metrics) and log may be nil (discard).
func NewServer(h host.Host, exec *wasm.Executor, id *identity.Identity, cfg config.Jobs, m *metrics.Metrics, log *slog.Logger) (*Server, error) {
	switch {
	case h == nil:
		return nil, errors.New("jobs: new server: nil host")
	case exec == nil:
		return nil, errors.New("jobs: new server: nil executor")
	case id == nil || id.Ed25519() == nil:
		return nil, errors.New("jobs: new server: identity without an Ed25519 key")
	case id.ID != h.ID():
		return nil, fmt.Errorf("jobs: new server: identity %s is not the host's peer ID %s: receipts would not verify", id.ID, h.ID())
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: new server: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		h: h, exec: exec, id: id, cfg: cfg, step: cfg.StepTimeout.D(), m: m, log: log,
		store:   NewModuleStore(int64(cfg.ModuleStoreMB)<<20, m),
		nonces:  NewNonceCache(DefaultNonceCapacity, DefaultNonceTTL),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		policy:  p,
		perPeer: make(map[peer.ID]int),
		streams: make(map[network.Stream]struct{}),
		ctx:     ctx, cancel: cancel,
	}, nil
}

// Start registers the stream handler for wire.ProtocolJob.
func (s *Server) Start() {
	s.h.SetStreamHandler(wire.ProtocolJob, s.handle)
}

// Close stops accepting streams, answers offers still arriving with
// queue_full, and waits for the jobs in progress to finish and their results
// to be sent. If ctx ends first, running jobs are stopped, open streams are
// reset, and the context's error is returned.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	already := s.closing
	s.closing = true
	s.mu.Unlock()
	if !already {
		s.h.RemoveStreamHandler(wire.ProtocolJob)
	}
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	// Reset first, so a job that the cancellation stops cannot slip an
	// error message out as if the exchange had ended normally.
	s.mu.Lock()
	for st := range s.streams {
		_ = st.Reset()
	}
	s.mu.Unlock()
	s.cancel()
	<-done // every read and write now fails at once
	return fmt.Errorf("jobs: close: jobs still running: %w", ctx.Err())
}

// Load returns how many accepted jobs are running and how many are queued
// (accepted, waiting for their payload or for a run slot).
func (s *Server) Load() (running, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.admitted - s.running
}

// OnLoadChange sets a function called after every change of Load (a job
// accepted, started or finished), so the node can republish its capability
// record. It is called on the job's goroutine, possibly from several at
// once, and must return quickly.
func (s *Server) OnLoadChange(fn func()) {
	if fn == nil {
		s.onLoad.Store(nil)
		return
	}
	s.onLoad.Store(&fn)
}

// Policy returns a copy of the admission policy in force.
func (s *Server) Policy() Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.policy
	p.Allow, p.Deny = maps.Clone(p.Allow), maps.Clone(p.Deny)
	p.ABIs = slices.Clone(p.ABIs)
	return p
}

// UpdatePolicy changes the admission policy for offers from now on (for
// example the cores and memory the node offers, from its capability
// configuration). Concurrency limits beyond MaxConcurrent's run slots are
// taken from the policy; the number of run slots is fixed at NewServer.
func (s *Server) UpdatePolicy(f func(*Policy)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.policy)
}

// Store is the server's module store.
func (s *Server) Store() *ModuleStore { return s.store }

func (s *Server) loadChanged() {
	if fn := s.onLoad.Load(); fn != nil {
		(*fn)()
	}
}

// exchange is one job stream's state.
type exchange struct {
	srv   *Server
	s     network.Stream
	br    *bufio.Reader
	from  peer.ID
	start time.Time
	log   *slog.Logger
}

// handle serves one stream: offer, accepted or rejected, payload, run,
// result. It never returns before the stream is closed or reset.
func (s *Server) handle(st network.Stream) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.handlers.Add(1)
	s.streams[st] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.mu.Unlock()
		s.handlers.Done()
	}()
	x := &exchange{srv: s, s: st, br: bufio.NewReader(st), from: st.Conn().RemotePeer(), start: time.Now()}
	x.log = s.log.With(slog.String("peer", x.from.String()))
	defer func() {
		// A bug must cost one stream, not the node.
		if p := recover(); p != nil {
			x.log.Error("job handler panic", "event", "job_panic", "panic", capText(fmt.Sprint(p)))
			_ = st.Reset()
		}
	}()
	x.serve()
}

func (x *exchange) serve() {
	s := x.srv
	offer, ok := x.readOffer()
	if !ok {
		return
	}
	lg := x.log.With(slog.String("job_id", offer.JobID))

	s.mu.Lock()
	limits, rej := Admit(s.policy, State{
		Admitted:     s.admitted,
		PeerInFlight: s.perPeer[x.from],
		NonceSeen:    s.nonces.Seen(offer.Nonce),
		Draining:     s.closing,
	}, x.from, offer)
	if rej == nil {
		// Recording the nonce and reserving the slot under the same lock
		// as the decision: two offers with one nonce cannot both pass.
		s.nonces.Add(offer.Nonce)
		s.admitted++
		s.perPeer[x.from]++
	}
	s.mu.Unlock()
	if rej != nil {
		x.reject(lg, rej, offer.Manifest.ModuleHash)
		return
	}
	// release ends the job's share of the load, once: right after the run
	// (so a client that has its result sees the node's load without it),
	// or on whatever path ends the exchange before that.
	released := false
	release := func(ran bool) {
		if released {
			return
		}
		released = true
		s.mu.Lock()
		s.admitted--
		if ran {
			s.running--
		}
		if s.perPeer[x.from]--; s.perPeer[x.from] <= 0 {
			delete(s.perPeer, x.from)
		}
		s.mu.Unlock()
		s.loadChanged()
	}
	defer release(false)
	s.loadChanged()

	module, have := s.store.Get(offer.Manifest.ModuleHash)
	acc := wire.Accepted{HaveModule: have, Limits: limits}
	if err := x.write(acc); err != nil {
		lg.Info("job aborted", "event", "job_aborted", "step", "accepted", "error", err.Error())
		_ = x.s.Reset()
		return
	}
	lg.Info("job accepted", "event", "job_accepted", "module_hash", offer.Manifest.ModuleHash,
		"have_module", have, "memory_mb", limits.MemoryMB, "timeout_ms", limits.TimeoutMS)

	args, module, stdin, ok := x.readPayload(lg, offer, module, have)
	if !ok {
		return
	}
	if !have {
		if got := wasm.HashModule(module); got != offer.Manifest.ModuleHash {
			s.countJob(wire.OutcomeHashMismatch)
			x.fail(lg, wire.CodeHashMismatch, fmt.Sprintf("module bytes hash to %s, manifest says %s", got, offer.Manifest.ModuleHash))
			return
		}
	}
	received := time.Now()

	// Wait for a run slot. Only this stream waits; others keep being served.
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		x.fail(lg, wire.CodeInternal, "node is shutting down")
		return
	}
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	s.loadChanged()

	spec := Spec{
		JobID:     offer.JobID,
		Nonce:     offer.Nonce,
		Requester: x.from.String(),
		Job: wasm.Job{
			Module:     module,
			ModuleHash: offer.Manifest.ModuleHash, // JOB-8 for stored bytes too
			Args:       args,
			Stdin:      stdin,
			Limits: wasm.Limits{
				MemoryMB:  limits.MemoryMB,
				Timeout:   time.Duration(limits.TimeoutMS) * time.Millisecond,
				StdoutCap: limits.StdoutCap,
				StderrCap: limits.StderrCap,
			},
			Deterministic: offer.Deterministic,
			Seed:          offer.Seed,
		},
	}
	res, runErr := s.exec.Run(s.ctx, spec.Job)
	<-s.slots
	release(true)
	if runErr != nil {
		lg.Error("job failed", "event", "job_failed", "error", capText(runErr.Error()))
		x.fail(lg, wire.CodeInternal, "the node could not run the job")
		return
	}
	if res.Outcome == wasm.OutcomeHashMismatch { // stored bytes that no longer match: never sent as output
		s.countJob(wire.OutcomeHashMismatch)
		x.fail(lg, wire.CodeHashMismatch, capText(res.Detail))
		return
	}
	// wasm.Limits reads a zero cap as "default"; the node promised zero.
	res.Stdout, res.StdoutTruncated = capOutput(res.Stdout, res.StdoutTruncated, limits.StdoutCap)
	res.Stderr, res.StderrTruncated = capOutput(res.Stderr, res.StderrTruncated, limits.StderrCap)
	rc, err := Sign(s.id, spec, res)
	if err != nil {
		lg.Error("job failed", "event", "job_failed", "error", capText(err.Error()))
		x.fail(lg, wire.CodeInternal, "the node could not sign the receipt")
		return
	}
	rcJSON, err := json.Marshal(rc)
	if err != nil {
		lg.Error("job failed", "event", "job_failed", "error", err.Error())
		x.fail(lg, wire.CodeInternal, "the node could not encode the receipt")
		return
	}
	if !have && res.Outcome != wasm.OutcomeInvalidModule {
		s.store.Put(offer.Manifest.ModuleHash, module)
	}
	queue := time.Duration(0)
	if !res.Started.IsZero() && res.Started.After(received) {
		queue = res.Started.Sub(received)
	}
	result := wire.Result{
		Outcome:         string(res.Outcome),
		ExitCode:        rc.ExitCode,
		Detail:          capText(res.Detail),
		StdoutSize:      int64(len(res.Stdout)),
		StderrSize:      int64(len(res.Stderr)),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		WallTimeMS:      res.WallTime.Milliseconds(),
		QueueTimeMS:     queue.Milliseconds(),
		Receipt:         rcJSON,
	}
	s.countJob(result.Outcome)
	if err := x.writeResult(result, res.Stdout, res.Stderr); err != nil {
		lg.Info("job result not delivered", "event", "job_aborted", "step", "result", "outcome", result.Outcome, "error", err.Error())
		_ = x.s.Reset()
		return
	}
	_ = x.s.Close()
	elapsed := time.Since(x.start)
	if s.m != nil {
		s.m.JobSeconds.Observe(elapsed.Seconds())
	}
	lg.Info("job finished", "event", "job_finished", "outcome", result.Outcome, "exit_code", result.ExitCode,
		"detail", result.Detail, "wall_ms", result.WallTimeMS, "queue_ms", result.QueueTimeMS,
		"total_ms", elapsed.Milliseconds(), "stdout_bytes", result.StdoutSize, "stderr_bytes", result.StderrSize,
		"stdout_truncated", result.StdoutTruncated, "stderr_truncated", result.StderrTruncated)
}

// readOffer reads and parses the first frame. A frame that is too large or
// not a valid offer is answered with rejected (JOB-3); broken framing, a
// message of another type and a stall get an error message.
func (x *exchange) readOffer() (*wire.Offer, bool) {
	x.deadline(false)
	msg, err := wire.ReadControl(x.br)
	if err != nil {
		switch {
		case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			_ = x.s.Reset() // opened and closed without a word
		case errors.Is(err, wire.ErrTooLarge):
			x.rejectBad(wire.ReasonTooLarge, err)
		case errors.Is(err, wire.ErrInvalid):
			x.rejectBad(wire.ReasonInvalidRequest, err)
		default:
			x.failRead(x.log, "offer", err)
		}
		return nil, false
	}
	offer, ok := msg.(*wire.Offer)
	if !ok {
		if _, isErr := msg.(*wire.ErrorMsg); isErr {
			_ = x.s.Reset()
			return nil, false
		}
		x.fail(x.log, wire.CodeProtocol, fmt.Sprintf("expected offer, got %s", msg.MessageType()))
		return nil, false
	}
	return offer, true
}

// readPayload reads the payload message, the module frame unless the node
// has the module, and the stdin frame.
func (x *exchange) readPayload(lg *slog.Logger, o *wire.Offer, module []byte, have bool) ([]string, []byte, []byte, bool) {
	x.srv.mu.Lock()
	maxModule, maxStdin := x.srv.policy.MaxModuleBytes, x.srv.policy.MaxStdinBytes
	x.srv.mu.Unlock()
	x.deadline(false)
	msg, err := wire.ReadExpect(x.br, wire.TypePayload)
	if err != nil {
		x.failRead(lg, "payload", err)
		return nil, nil, nil, false
	}
	payload := msg.(*wire.Payload)
	if err := o.CheckPayload(payload); err != nil {
		x.fail(lg, wire.CodeInvalidRequest, err.Error())
		return nil, nil, nil, false
	}
	if !have {
		x.deadline(false)
		if module, err = wire.ReadDeclared(x.br, o.ModuleSize, int(maxModule), wire.KindModule); err != nil {
			x.failRead(lg, "module", err)
			return nil, nil, nil, false
		}
	}
	x.deadline(false)
	stdin, err := wire.ReadDeclared(x.br, o.StdinSize, int(maxStdin), wire.KindStdin)
	if err != nil {
		x.failRead(lg, "stdin", err)
		return nil, nil, nil, false
	}
	return payload.Args, module, stdin, true
}

// failRead answers a failed read with the error code that fits it.
func (x *exchange) failRead(lg *slog.Logger, step string, err error) {
	var peerErr *wire.ErrorMsg
	switch {
	case errors.As(err, &peerErr): // the client ended the exchange
		lg.Info("job aborted by client", "event", "job_aborted", "step", step, "code", peerErr.Code, "detail", capText(peerErr.Detail))
		_ = x.s.Reset()
	case isTimeout(err):
		x.fail(lg, wire.CodeTimeout, fmt.Sprintf("no %s within %s", step, x.srv.step))
	case errors.Is(err, wire.ErrTooLarge):
		x.fail(lg, wire.CodeTooLarge, err.Error())
	case errors.Is(err, wire.ErrInvalid):
		x.fail(lg, wire.CodeInvalidRequest, err.Error())
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrUnexpected), errors.Is(err, io.ErrUnexpectedEOF):
		x.fail(lg, wire.CodeProtocol, err.Error())
	case errors.Is(err, io.EOF):
		x.fail(lg, wire.CodeProtocol, fmt.Sprintf("stream ended before the %s", step))
	default: // the stream itself failed (reset, connection gone)
		lg.Info("job aborted", "event", "job_aborted", "step", step, "error", capText(err.Error()))
		_ = x.s.Reset()
	}
}

// reject sends rejected for an offer that was read, then closes (JOB-4).
func (x *exchange) reject(lg *slog.Logger, rej *wire.Rejected, moduleHash string) {
	x.srv.countRejection(rej.Reason)
	lg.Info("job rejected", "event", "job_rejected", "reason", rej.Reason, "detail", capText(rej.Detail), "module_hash", moduleHash)
	if err := x.write(*rej); err != nil {
		_ = x.s.Reset()
		return
	}
	_ = x.s.Close()
}

// rejectBad rejects an offer frame that could not be parsed. The client may
// still be writing it, so the stream lingers before it closes.
func (x *exchange) rejectBad(reason string, err error) {
	x.srv.countRejection(reason)
	detail := capText(err.Error())
	x.log.Info("job rejected", "event", "job_rejected", "reason", reason, "detail", detail)
	x.end(x.write(wire.Rejected{Reason: reason, Detail: detail}))
}

// fail sends an error message and ends the exchange.
func (x *exchange) fail(lg *slog.Logger, code, detail string) {
	detail = capText(detail)
	lg.Info("job error", "event", "job_error", "code", code, "detail", detail)
	x.end(x.write(wire.ErrorMsg{Code: code, Detail: detail}))
}

// end finishes an exchange that failed: after the last message, close the
// write side, drain what the peer still sends for a moment (so its pending
// write completes and it can read our message), then reset unless it closed.
func (x *exchange) end(writeErr error) {
	if writeErr != nil {
		_ = x.s.Reset()
		return
	}
	_ = x.s.CloseWrite()
	_ = x.s.SetReadDeadline(time.Now().Add(min(lingerTime, x.srv.step)))
	_, err := io.CopyN(io.Discard, x.br, lingerBytes)
	if errors.Is(err, io.EOF) {
		_ = x.s.Close()
		return
	}
	_ = x.s.Reset()
}

func (x *exchange) deadline(write bool) {
	t := time.Now().Add(x.srv.step)
	if write {
		_ = x.s.SetWriteDeadline(t)
	} else {
		_ = x.s.SetReadDeadline(t)
	}
}

func (x *exchange) write(msg any) error {
	x.deadline(true)
	return wire.WriteControl(x.s, msg)
}

// writeResult sends result, stdout and stderr in as few writes as possible.
func (x *exchange) writeResult(r wire.Result, stdout, stderr []byte) error {
	x.deadline(true)
	bw := bufio.NewWriterSize(x.s, 16<<10)
	if err := wire.WriteControl(bw, r); err != nil {
		return err
	}
	if err := wire.WriteFrame(bw, stdout); err != nil {
		return err
	}
	if err := wire.WriteFrame(bw, stderr); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

func (s *Server) countJob(outcome string) {
	if s.m != nil {
		s.m.Jobs.WithLabelValues(outcome).Inc()
	}
}

func (s *Server) countRejection(reason string) {
	if s.m != nil {
		s.m.JobRejections.WithLabelValues(reason).Inc()
	}
}

// capOutput enforces a cap of zero, which wasm.Limits cannot express.
func capOutput(b []byte, truncated bool, limit int) ([]byte, bool) {
	if len(b) > limit {
		return b[:limit], true
	}
	return b, truncated
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// capText bounds peer- or guest-derived text before it goes into a message
// or a log line; slog's handlers escape what is left.
func capText(s string) string {
	if len(s) > maxDetail {
		return s[:maxDetail] + "…"
	}
	return s
}

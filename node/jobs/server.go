package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// maxDetail caps guest- or peer-derived text in messages and logs.
const maxDetail = 512

// Options build a Server. Host, Exec and Identity are required.
type Options struct {
	Host     host.Host
	Exec     *wasm.Executor
	Identity *identity.Identity
	Config   config.Jobs
	Metrics  *metrics.Metrics // nil: no metrics
	Log      *slog.Logger     // nil: discard
	// Hooks make a scripted node depart from the protocol (node/scripted);
	// nil for an honest node.
	Hooks *Hooks
}

// Server is the node side of the job protocol (/phase/job/1.0.0). Each
// stream runs session.Serve with the server as its Handler: the server
// decides offers (Admit), runs jobs on the executor within the clamped
// limits, signs receipts and builds results; session does the I/O.
//
// Every stream is served on its own goroutine (libp2p starts one per
// stream), and a job waiting for a run slot blocks only its own stream, so
// one peer's slow job never delays another peer's offer.
type Server struct {
	h     host.Host
	exec  *wasm.Executor
	id    *identity.Identity
	cfg   config.Jobs
	m     *metrics.Metrics // may be nil
	log   *slog.Logger
	store *ModuleStore
	hooks Hooks

	nonces *NonceCache
	slots  chan struct{} // one token per running job

	mu       sync.Mutex
	policy   Policy
	closing  bool
	admitted int // payload arrived, not finished: running + queued
	running  int
	perPeer  map[peer.ID]int // accepted, not finished: uploading, queued or running

	// Uploads (uploads.go): accepted streams still sending their payload.
	uploads        map[*upload]struct{}
	prefixUploads  map[string]int
	prefixJobs     map[string]int // payload arrived, not finished, by address prefix
	buffered       int64          // payload bytes reserved, uploading or not yet finished
	bufferedPeak   int64
	bufferMax      int64
	uploadsDropped int64
	minRate        int64         // bytes per second an upload must average
	freed          chan struct{} // closed and replaced whenever buffer memory is freed
	streams        map[network.Stream]struct{}
	handlers       sync.WaitGroup

	onLoad atomic.Pointer[func()]

	ctx    context.Context // cancelled when Close gives up waiting: stops running jobs
	cancel context.CancelFunc
	// stopping is cancelled as soon as Close begins: hooks that stall
	// (node/scripted) hold until then, so a misbehaving node shuts down
	// without waiting out the grace honest jobs get.
	stopping context.Context
	stop     context.CancelFunc
}

// NewServer builds a job server. It does not serve until Start.
func NewServer(o Options) (*Server, error) {
	switch {
	case o.Host == nil:
		return nil, errors.New("jobs: new server: nil host")
	case o.Exec == nil:
		return nil, errors.New("jobs: new server: nil executor")
	case o.Identity == nil || o.Identity.Ed25519() == nil:
		return nil, errors.New("jobs: new server: identity without an Ed25519 key")
	case o.Identity.ID != o.Host.ID():
		return nil, fmt.Errorf("jobs: new server: identity %s is not the host's peer ID %s: receipts would not verify", o.Identity.ID, o.Host.ID())
	}
	p, err := NewPolicy(o.Config)
	if err != nil {
		return nil, fmt.Errorf("jobs: new server: %w", err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopping, stop := context.WithCancel(context.Background())
	s := &Server{
		stopping: stopping, stop: stop,
		h: o.Host, exec: o.Exec, id: o.Identity, cfg: o.Config, m: o.Metrics, log: log,
		store:   NewModuleStore(int64(o.Config.ModuleStoreMB)<<20, o.Metrics),
		nonces:  NewNonceCache(DefaultNonceCapacity, DefaultNonceTTL),
		slots:   make(chan struct{}, o.Config.MaxConcurrent),
		policy:  p,
		perPeer: make(map[peer.ID]int),
		streams: make(map[network.Stream]struct{}),

		uploads:       make(map[*upload]struct{}),
		prefixUploads: make(map[string]int),
		prefixJobs:    make(map[string]int),
		freed:         make(chan struct{}),
		ctx:           ctx, cancel: cancel,
	}
	def := config.Default().Jobs
	s.bufferMax = max(int64(cmp.Or(o.Config.UploadBufferMB, def.UploadBufferMB))<<20, o.Config.MaxModuleBytes+o.Config.MaxStdinBytes)
	s.minRate = int64(cmp.Or(o.Config.UploadMinRateKiB, def.UploadMinRateKiB)) << 10
	if o.Hooks != nil {
		s.hooks = *o.Hooks
	}
	if o.Metrics != nil && o.Metrics.Registry != nil {
		if err := s.registerUploadMetrics(o.Metrics.Registry); err != nil {
			return nil, fmt.Errorf("jobs: new server: %w", err)
		}
	}
	return s, nil
}

// Start registers the stream handler for phase.ProtocolJob.
func (s *Server) Start() {
	s.h.SetStreamHandler(phase.ProtocolJob, s.handle)
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
	s.stop()
	if !already {
		s.h.RemoveStreamHandler(phase.ProtocolJob)
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
// configuration). The number of run slots is fixed at NewServer.
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

// handle serves one stream. It never returns before the stream is closed
// or reset.
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
	x := &exchange{srv: s, st: st, from: st.Conn().RemotePeer(), prefix: prefixOf(st.Conn()), start: time.Now()}
	x.log = s.log.With(slog.String("peer", x.from.String()))
	defer func() {
		// A bug must cost one stream, not the node.
		if p := recover(); p != nil {
			x.log.Error("job handler panic", "event", "job_panic", "panic", phase.Clip(fmt.Sprint(p), maxDetail))
			_ = st.Reset()
		}
	}()
	err := session.Serve(s.ctx, st, x, session.ServeOptions{StepTimeout: s.cfg.StepTimeout.D(), Hooks: s.hooks.Session})
	x.logEnd(err)
}

// exchange is the server's side of one stream: the session.Handler.
type exchange struct {
	srv     *Server
	st      network.Stream
	from    peer.ID
	prefix  string // address prefix of the peer's connection
	start   time.Time
	up      *upload // while accepted
	log     *slog.Logger
	offer   *wire.Offer
	ran     *Ran   // set once a result was built
	release func() // ends the job's share of the load
}

// Offer decides an offer (Admit) and, when it accepts, reserves the job's
// place among the uploads and records the nonce, under the same lock, so
// two offers with one nonce cannot both pass. When the uploads are full,
// the upload silent the longest is dropped to make room, if the offer
// passes every other check.
func (x *exchange) Offer(ctx context.Context, o *wire.Offer) session.Decision {
	s := x.srv
	x.offer = o
	x.log = x.log.With(slog.String("job_id", o.JobID))
	module, have := s.store.Get(o.Manifest.ModuleHash)
	s.mu.Lock()
	st := State{
		Admitted:      s.admitted,
		PeerInFlight:  s.perPeer[x.from],
		Uploads:       len(s.uploads),
		PrefixUploads: s.prefixUploads[x.prefix],
		PrefixJobs:    s.prefixJobs[x.prefix],
		NonceSeen:     s.nonces.Seen(o.Nonce),
		Draining:      s.closing,
	}
	if s.hooks.State != nil {
		s.hooks.State(&st)
	}
	policy := s.policy
	limits, rej := Admit(policy, st, x.from, o)
	var victim *upload
	if rej != nil && (st.Uploads >= policy.MaxUploads || st.PrefixUploads >= policy.MaxUploadsPerPrefix) {
		prefix := ""
		if st.PrefixUploads >= policy.MaxUploadsPerPrefix {
			prefix = x.prefix // only one of the same prefix makes room under its cap
		}
		if v := s.victimLocked(prefix, nil, false); v != nil {
			try := st
			try.Uploads--
			if v.prefix == x.prefix {
				try.PrefixUploads--
			}
			if l, r := Admit(policy, try, x.from, o); r == nil {
				limits, rej = l, nil
				victim = s.dropLocked(prefix, nil, false)
			}
		}
	}
	if rej == nil {
		s.nonces.Add(o.Nonce)
		s.perPeer[x.from]++
		x.up = &upload{srv: s, st: x.st, prefix: x.prefix, killed: make(chan struct{}), uploading: true,
			deadline: time.Now().Add(s.cfg.StepTimeout.D() + s.uploadTime(o, have))}
		x.up.last.Store(time.Now().UnixNano())
		s.uploads[x.up] = struct{}{}
		s.prefixUploads[x.prefix]++
	}
	s.mu.Unlock()
	if victim != nil {
		_ = victim.st.Reset()
		x.log.Info("upload dropped to make room", "event", "upload_dropped", "victim_prefix", victim.prefix)
	}
	var d session.Decision
	if rej != nil {
		s.countRejection(rej.Reason)
		x.log.Info("job rejected", "event", "job_rejected", "reason", rej.Reason, "detail", phase.Clip(rej.Detail, maxDetail),
			"module_hash", o.Manifest.ModuleHash)
		d = session.Decision{Reject: rej}
	} else {
		s.loadChanged()
		x.release = x.releaser()
		d = session.Decision{
			Accept:    &wire.Accepted{HaveModule: have, Limits: limits},
			Module:    module,
			MaxModule: policy.MaxModuleBytes,
			MaxStdin:  policy.MaxStdinBytes,
			Release:   x.release,
			Upload:    x.up,
		}
		x.log.Info("job accepted", "event", "job_accepted", "module_hash", o.Manifest.ModuleHash,
			"have_module", have, "memory_mb", limits.MemoryMB, "timeout_ms", limits.TimeoutMS)
	}
	if s.hooks.Offer != nil {
		d = s.hooks.Offer(s.stopping, o, d)
	}
	return d
}

// uploadTime is how long the payload of o may take at the node's floor
// rate, on top of the step timeout.
func (s *Server) uploadTime(o *wire.Offer, haveModule bool) time.Duration {
	n := o.StdinSize
	if !haveModule {
		n += o.ModuleSize
	}
	return time.Duration(float64(n) / float64(s.minRate) * float64(time.Second))
}

// releaser returns the function that ends the job's share of the load,
// once: right after the run (so a client that has its result sees the
// node's load without it), or when the exchange ends before that.
func (x *exchange) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s := x.srv
			s.mu.Lock()
			if x.up != nil && x.up.ready {
				s.admitted--
			}
			if x.up != nil {
				s.endUploadLocked(x.up)
			}
			if s.perPeer[x.from]--; s.perPeer[x.from] <= 0 {
				delete(s.perPeer, x.from)
			}
			s.mu.Unlock()
			s.loadChanged()
		})
	}
}

// Run waits for a run slot, runs the job, signs the receipt and builds the
// result. Only this stream waits for the slot; others keep being served.
func (x *exchange) Run(ctx context.Context, job *session.Job) session.Reply {
	s := x.srv
	if x.up != nil {
		s.mu.Lock()
		dropped := x.up.dropped
		s.mu.Unlock()
		if dropped { // its stream is gone: nobody would read the result
			return errorReply(phase.CodeInternal, "the upload was dropped")
		}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return errorReply(phase.CodeInternal, "node is shutting down")
	}
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	s.loadChanged()
	spec := SpecOf(job, x.from.String())
	if s.hooks.Exec != nil {
		s.hooks.Exec(&spec.Job)
	}
	res, runErr := s.exec.Run(ctx, spec.Job)
	<-s.slots
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	if x.release != nil {
		x.release() // the client that has its result sees the load without it
	}
	if runErr != nil {
		x.log.Error("job failed", "event", "job_failed", "error", phase.Clip(runErr.Error(), maxDetail))
		return errorReply(phase.CodeInternal, "the node could not run the job")
	}
	if res.Outcome == phase.OutcomeHashMismatch { // stored bytes that no longer match: never sent as output
		s.countJob(phase.OutcomeHashMismatch)
		return errorReply(phase.CodeHashMismatch, res.Detail)
	}
	ran, err := Finish(s.id, spec, res, job.Received, s.hooks.Sign)
	if err != nil {
		x.log.Error("job failed", "event", "job_failed", "error", phase.Clip(err.Error(), maxDetail))
		return errorReply(phase.CodeInternal, "the node could not sign the receipt")
	}
	if !job.Stored && res.Outcome != phase.OutcomeInvalidModule {
		s.store.Put(job.Offer.Manifest.ModuleHash, job.Module)
	}
	reply := ran.Reply()
	if s.hooks.Reply != nil {
		reply = s.hooks.Reply(s.stopping, ran, reply)
	}
	x.ran = ran
	if reply.Result != nil {
		s.countJob(reply.Result.Outcome)
	}
	return reply
}

func errorReply(code, detail string) session.Reply {
	return session.Reply{Error: &wire.ErrorMsg{Code: code, Detail: phase.Clip(detail, maxDetail)}}
}

// logEnd logs how the exchange ended, once.
func (x *exchange) logEnd(err error) {
	s := x.srv
	var se *session.Error
	switch {
	case err == nil:
		elapsed := time.Since(x.start)
		if s.m != nil {
			s.m.JobSeconds.Observe(elapsed.Seconds())
		}
		args := []any{"event", "job_finished", "total_ms", elapsed.Milliseconds()}
		if x.ran != nil {
			r := x.ran
			args = append(args, "outcome", r.Result.Outcome, "exit_code", r.Receipt.ExitCode,
				"detail", phase.Clip(r.Result.Detail, maxDetail), "wall_ms", r.Result.WallTime.Milliseconds(),
				"queue_ms", r.Queue.Milliseconds(), "stdout_bytes", len(r.Result.Stdout), "stderr_bytes", len(r.Result.Stderr),
				"stdout_truncated", r.Result.StdoutTruncated, "stderr_truncated", r.Result.StderrTruncated)
		}
		x.log.Info("job finished", args...)
	case errors.As(err, &se) && se.Step == session.StepAnswer && x.offer != nil:
		// a rejection, logged when it was decided
	case x.offer == nil && errors.As(err, &se) && se.Step == session.StepOffer:
		var em *wire.ErrorMsg
		reason := ""
		switch {
		case errors.Is(err, wire.ErrTooLarge):
			reason = phase.ReasonTooLarge
		case errors.Is(err, wire.ErrInvalid):
			reason = phase.ReasonInvalidRequest
		}
		if reason != "" {
			s.countRejection(reason)
			x.log.Info("job rejected", "event", "job_rejected", "reason", reason, "detail", phase.Clip(err.Error(), maxDetail))
		} else if !errors.As(err, &em) {
			x.log.Debug("job stream ended before an offer", "event", "job_aborted", "step", string(se.Step), "error", phase.Clip(err.Error(), maxDetail))
		}
	default:
		var em *wire.ErrorMsg
		step := ""
		if errors.As(err, &se) {
			step = string(se.Step)
		}
		if errors.As(err, &em) && x.ran == nil {
			if em.Code == phase.CodeHashMismatch && step == string(session.StepModule) {
				s.countJob(phase.OutcomeHashMismatch)
			}
			x.log.Info("job error", "event", "job_error", "step", step, "code", em.Code, "detail", phase.Clip(em.Detail, maxDetail))
			return
		}
		x.log.Info("job aborted", "event", "job_aborted", "step", step, "error", phase.Clip(err.Error(), maxDetail))
	}
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

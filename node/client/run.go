package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
)

// errDeadline is the cause of a run context whose overall deadline passed.
var errDeadline = fmt.Errorf("overall deadline passed: %w", context.DeadlineExceeded)

// run is the I/O shell around one Run's scheduler: it starts an offer
// goroutine per node the scheduler names, turns their outcomes into events,
// and carries out the scheduler's actions.
type run struct {
	c      *Client
	s      settings
	ctx    context.Context // the whole run, with the overall deadline
	events chan any        // offerEvent, evTimer
	quit   chan struct{}   // closed when the loop is over

	mu       sync.Mutex
	offers   map[peer.ID]*offer
	verified map[peer.ID]*verified
}

// Run sends the job to other nodes until it gets a verified result (or,
// with Replicas > 1, that many agreeing verified results), and returns it.
// A job that ran is a result whatever its outcome; Run fails only when no
// node produced a verified result in time, and then returns an *Error
// listing every node tried and why.
func (c *Client) Run(ctx context.Context, job Job, opts Options) (*Result, error) {
	if c.Host == nil {
		return nil, &Error{Err: fmt.Errorf("%w: client has no libp2p host", ErrInvalidJob)}
	}
	s, err := newSettings(job, opts)
	if err != nil {
		return nil, &Error{Err: err}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.Deadline, errDeadline)
	defer cancel()

	cands, err := c.candidates(ctx, s)
	if err != nil {
		return nil, &Error{Err: preferEnded(ctx, s, err)}
	}
	r := &run{c: c, s: s, ctx: ctx, events: make(chan any), quit: make(chan struct{}),
		offers: map[peer.ID]*offer{}, verified: map[peer.ID]*verified{}}
	return r.loop(newSched(schedConfig{
		replicas:   s.replicas,
		fanout:     s.Fanout,
		stagger:    s.OfferStagger,
		budget:     s.attempts,
		backoffMin: s.BackoffMin,
		backoffMax: s.BackoffMax,
		hedgeAfter: s.HedgeAfter,
		suspect:    c.memory.suspects(cands),
		jitter:     jitter,
	}, cands))
}

// jitter is equal jitter: a random pause in [d/2, d].
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}

// loop feeds events to the scheduler and carries out its actions until it
// finishes, then waits for every offer goroutine so the attempt list is
// complete.
func (r *run) loop(sc *sched) (*Result, error) {
	var (
		done   *actFinish
		timers []*time.Timer
		out    int // offer goroutines that have not reported their end
	)
	act := func(acts []any) {
		for _, a := range acts {
			switch a := a.(type) {
			case actOffer:
				for _, node := range a.nodes {
					o := r.newOffer(node)
					r.mu.Lock()
					r.offers[node.ID] = o
					r.mu.Unlock()
					out++
					go func() {
						r.attempt(o)
						r.events <- offerEvent{o: o} // ended: the loop waits for this
					}()
				}
			case actProceed:
				r.mu.Lock()
				if o := r.offers[a.node]; o != nil {
					close(o.proceed)
				}
				r.mu.Unlock()
				r.c.memory.use(a.node)
			case actWithdraw:
				r.mu.Lock()
				for _, n := range a.nodes {
					if o := r.offers[n]; o != nil {
						o.cancel()
					}
				}
				r.mu.Unlock()
			case actWait:
				id := a.id
				timers = append(timers, time.AfterFunc(a.d, func() {
					select {
					case r.events <- evTimer{id: id}:
					case <-r.quit:
					}
				}))
			case actFinish:
				done = &a
			}
		}
	}
	act(sc.start())
	stopped := false
	for done == nil || out > 0 {
		select {
		case ev := <-r.events:
			oe, ok := ev.(offerEvent)
			if !ok {
				act(sc.step(ev)) // a timer
				continue
			}
			r.mu.Lock()
			current := r.offers[oe.o.node.ID] == oe.o
			r.mu.Unlock()
			if oe.ev == nil {
				out--
				continue
			}
			if !current {
				continue // a node re-offered since sent it
			}
			switch e := oe.ev.(type) {
			case evAnswered:
				if e.fail != nil {
					r.record(*e.fail)
				}
			case evDone:
				r.record(e.att)
			}
			act(sc.step(oe.ev))
		case <-r.ctx.Done():
			if !stopped {
				stopped = true
				act(sc.step(evStop{err: runEnded(r.ctx, r.s)}))
			}
		}
	}
	close(r.quit)
	for _, t := range timers {
		t.Stop()
	}
	return r.result(sc, done)
}

// offerEvent is what an offer goroutine reports: an evAnswered, an evDone,
// or (ev nil) that it returned.
type offerEvent struct {
	o  *offer
	ev any
}

// record remembers an attempt's lesson about its node and logs it.
func (r *run) record(a Attempt) {
	r.c.memory.record(a)
	if r.c.Forget != nil && unreachable(a) {
		r.c.Forget(a.Node)
	}
	r.c.log().Debug("job attempt", "event", "client_attempt", "node", a.Node.String(), "outcome", a.Outcome,
		"reason", a.Reason, "detail", a.Detail, "retryable", a.Retryable, "duration_ms", a.Duration.Milliseconds())
}

// unreachable: the attempt never got an answer to its offer (no stream,
// or silence), which is what a node that left looks like.
func unreachable(a Attempt) bool {
	switch a.Outcome {
	case AttemptUnreachable:
		return true
	case AttemptTimeout:
		return a.Reason == string(session.StepOffer) || a.Reason == string(session.StepAnswer)
	}
	return false
}

// result turns the scheduler's finish into Run's answer.
func (r *run) result(sc *sched, f *actFinish) (*Result, error) {
	attempts := slices.Clone(sc.attempts)
	groups := sc.groups()
	if f.err != nil {
		e := &Error{Err: f.err, Attempts: attempts}
		if len(sc.results) > 1 {
			e.Disagreement = r.describe(groups)
			if errors.Is(f.err, ErrDisagreement) {
				for _, v := range sc.results {
					r.outvoted(e.Attempts, v.node, "replicas disagree; see the disagreement")
				}
			}
		}
		r.c.log().Debug("job run failed", "event", "client_run_failed", "error", e.Err.Error(), "attempts", len(e.Attempts))
		return nil, e
	}
	first := r.verified[f.agree[0]]
	res := &Result{
		Node:            first.node,
		Outcome:         first.rc.Outcome,
		ExitCode:        first.rc.ExitCode,
		Detail:          peerText(first.out.Result.Detail),
		Stdout:          first.out.Stdout,
		Stderr:          first.out.Stderr,
		StdoutTruncated: first.rc.StdoutTruncated,
		StderrTruncated: first.rc.StderrTruncated,
		Receipt:         first.rc,
		ReceiptJSON:     first.out.Result.Receipt,
		WallTime:        time.Duration(first.rc.WallTimeMS) * time.Millisecond,
	}
	if r.s.replicas > 1 {
		for _, id := range f.agree {
			v := r.verified[id]
			res.Replicas = append(res.Replicas, Replica{
				Node: v.node, Outcome: v.rc.Outcome, ExitCode: v.rc.ExitCode,
				StdoutHash: v.rc.StdoutHash, StderrHash: v.rc.StderrHash,
				Receipt: v.rc, ReceiptJSON: v.out.Result.Receipt,
			})
		}
		if len(f.agree) < len(sc.results) {
			res.Disagreement = r.describe(groups)
			for _, v := range sc.results {
				if !slices.Contains(f.agree, v.node) {
					r.outvoted(attempts, v.node, "outvoted: "+res.Disagreement)
					r.c.memory.record(Attempt{Node: v.node, Outcome: AttemptDisagreed})
				}
			}
		}
	}
	res.Attempts = attempts
	r.c.log().Debug("job run done", "event", "client_run_done", "node", res.Node.String(),
		"outcome", res.Outcome, "attempts", len(res.Attempts), "replicas", len(res.Replicas))
	return res, nil
}

// outvoted rewrites the ok attempt of a node whose result lost the vote.
func (r *run) outvoted(attempts []Attempt, id peer.ID, detail string) {
	for i := range attempts {
		if attempts[i].Node == id && attempts[i].Outcome == AttemptOK {
			attempts[i].Outcome = AttemptDisagreed
			attempts[i].Detail = detail
		}
	}
}

// describe says which nodes said what, one group per clause.
func (r *run) describe(groups [][]peer.ID) string {
	if len(groups) < 2 {
		return ""
	}
	parts := make([]string, 0, len(groups))
	for _, g := range groups {
		ids := make([]string, len(g))
		for i, id := range g {
			ids[i] = phase.ShortID(id.String())
		}
		k := keyOf(r.verified[g[0]])
		parts = append(parts, fmt.Sprintf("%s said outcome=%s exit_code=%d stdout=%s stderr=%s",
			strings.Join(ids, ", "), k.outcome, k.exitCode, shortHash(k.stdoutHash), shortHash(k.stderrHash)))
	}
	return "disagreement: " + strings.Join(parts, "; ")
}

func shortHash(h string) string {
	if len(h) > 19 {
		return h[:19] // "sha256:" and 12 hex digits
	}
	return h
}

// preferEnded prefers the run's own end (deadline, cancel) over a derived error.
func preferEnded(ctx context.Context, s settings, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return runEnded(ctx, s)
}

func runEnded(ctx context.Context, s settings) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, errDeadline) {
		return fmt.Errorf("overall deadline of %s passed: %w", s.Deadline, context.DeadlineExceeded)
	}
	return fmt.Errorf("run cancelled: %w", cause)
}

// candidates returns the ranked nodes to try.
func (c *Client) candidates(ctx context.Context, s settings) ([]peer.AddrInfo, error) {
	var list []peer.AddrInfo
	switch {
	case len(s.Candidates) > 0:
		list = s.Candidates
	case c.Find != nil:
		// A pool well beyond the attempt budget, so that each Run's salted
		// ranking has many equally good nodes to spread over (a caching
		// Finder answers later Runs from it).
		limit := max(4*s.attempts, s.attempts+s.Fanout)
		req := requirements(s)
		found, err := c.find(ctx, req, limit)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoCandidates, err)
		}
		for _, f := range c.memory.spread(found, req) {
			list = append(list, f.Peer)
		}
	default:
		return nil, fmt.Errorf("%w: no Candidates given and the client has no Finder", ErrNoCandidates)
	}
	ranked := c.memory.rank(list, c.Host.ID(), s.Exclude)
	if len(ranked) == 0 {
		return nil, fmt.Errorf("%w: all %d candidates are excluded or this host itself", ErrNoCandidates, len(list))
	}
	return ranked, nil
}

// find calls the Finder, but returns when ctx ends even if the Finder does
// not: a Run never outlives its deadline.
func (c *Client) find(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
	type answer struct {
		found []caps.Found
		err   error
	}
	ch := make(chan answer, 1)
	go func() {
		found, err := c.Find(ctx, req, limit)
		ch <- answer{found, err}
	}()
	select {
	case a := <-ch:
		return a.found, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func refused(a Attempt) error {
	return fmt.Errorf("%w by %s: %s %s (%s)", ErrJobRefused, phase.ShortID(a.Node.String()), a.Outcome, a.Reason, a.Detail)
}

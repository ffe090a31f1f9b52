package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
)

// errDeadline is the cause of a run context whose overall deadline passed.
var errDeadline = fmt.Errorf("overall deadline passed: %w", context.DeadlineExceeded)

// errNoMore ends a seeker that has no node left to try.
var errNoMore = errors.New("no candidate left")

// run is the state of one Run.
type run struct {
	c    *Client
	job  Job
	s    settings
	ctx  context.Context // the whole run, with the overall deadline
	pool *pool
}

// Run sends the job to other nodes until it gets a verified result (or,
// with Replicas > 1, that many agreeing verified results), and returns it.
// A job that ran is a result whatever its outcome; Run fails only when no
// node produced a verified result in time, and then returns an *Error
// listing every node tried and why.
func (c *Client) Run(ctx context.Context, job Job, opts Options) (*Result, error) {
	s, err := c.settings(job, opts)
	if err != nil {
		return nil, &Error{Err: err}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.Deadline, errDeadline)
	defer cancel()

	cands, err := c.candidates(ctx, job, s)
	if err != nil {
		return nil, &Error{Err: preferEnded(ctx, s, err)}
	}
	r := &run{c: c, job: job, s: s, ctx: ctx, pool: newPool(cands, s.Attempts)}
	return r.replicate()
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
func (c *Client) candidates(ctx context.Context, job Job, s settings) ([]peer.AddrInfo, error) {
	var list []peer.AddrInfo
	switch {
	case len(s.Candidates) > 0:
		list = s.Candidates
	case c.Find != nil:
		limit := max(2*s.Attempts, s.Attempts+s.Fanout)
		found, err := c.find(ctx, requirements(job, s), limit)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoCandidates, err)
		}
		for _, f := range found {
			list = append(list, f.Peer)
		}
	default:
		return nil, fmt.Errorf("%w: no Candidates given and the client has no Finder", ErrNoCandidates)
	}
	ranked := c.rank(list, s.Exclude)
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

// replicate runs seekers until Replicas verified results agree, launching
// more seekers while a majority is still possible, or until none is left.
func (r *run) replicate() (*Result, error) {
	k := r.s.Replicas
	wctx, wcancel := context.WithCancel(r.ctx)
	defer wcancel()
	type done struct {
		v   *verified
		err error
	}
	results := make(chan done)
	running := 0
	launch := func(n int) {
		for range n {
			running++
			go func() {
				v, err := r.seek(wctx)
				results <- done{v, err}
			}()
		}
	}
	// drain waits for every seeker, so that the attempts list is complete.
	drain := func() {
		wcancel()
		for ; running > 0; running-- {
			<-results
		}
	}

	launch(k)
	var (
		oks   []*verified
		fatal error
	)
	for running > 0 {
		d := <-results
		running--
		if d.err != nil {
			if !errors.Is(d.err, errNoMore) && r.ctx.Err() == nil && fatal == nil {
				fatal = d.err
				drain()
			}
			continue
		}
		oks = append(oks, d.v)
		best := largestGroup(oks)
		if len(best) >= k {
			drain()
			res := r.result(best, oks)
			r.c.log().Debug("job run done", "event", "client_run_done", "node", res.Node.String(),
				"outcome", res.Outcome, "attempts", len(res.Attempts), "replicas", len(res.Replicas))
			return res, nil
		}
		if need := k - len(best); running < need {
			launch(need - running)
		}
	}

	e := &Error{Attempts: r.pool.snapshot()}
	defer func() {
		r.c.log().Debug("job run failed", "event", "client_run_failed", "error", e.Err.Error(), "attempts", len(e.Attempts))
	}()
	switch {
	case fatal != nil:
		e.Err = fatal
	case r.ctx.Err() != nil:
		e.Err = runEnded(r.ctx, r.s)
	case len(oks) > 0 && len(largestGroup(oks)) < len(oks):
		e.Err = fmt.Errorf("%w: %d verified results, no %d of them alike", ErrDisagreement, len(oks), k)
	case len(oks) > 0:
		e.Err = fmt.Errorf("%w: only %d of %d replicas produced a verified result", ErrExhausted, len(oks), k)
	case len(e.Attempts) == 0:
		e.Err = fmt.Errorf("%w: no candidate could be offered the job", ErrExhausted)
	default:
		e.Err = ErrExhausted
	}
	if len(oks) > 1 {
		e.Disagreement = describeGroups(oks)
		if errors.Is(e.Err, ErrDisagreement) {
			for _, v := range oks {
				r.pool.markDisagreed(v.node, "replicas disagree; see the disagreement")
			}
			e.Attempts = r.pool.snapshot()
		}
	}
	return nil, e
}

// seek gets one verified result: rounds of offers to fresh candidates,
// with backoff after a failed round, until one attempt verifies. It returns
// errNoMore when no candidate or budget is left, a fatal error when a node
// refused the job itself, or the context's error.
func (r *run) seek(ctx context.Context) (*verified, error) {
	failed := 0
	for {
		if failed > 0 {
			if err := sleep(ctx, r.backoff(failed)); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cands, wait := r.pool.take(r.s.Fanout)
		if len(cands) == 0 {
			if wait == nil {
				return nil, errNoMore
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		winner, err := r.round(ctx, cands)
		if err != nil {
			return nil, err
		}
		if winner == nil {
			failed++
			continue
		}
		v, a := r.exchange(winner)
		r.record(a)
		if v != nil {
			v.attempt = a
			return v, nil
		}
		if !a.Retryable {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refused(a)
		}
		failed++
	}
}

// round offers the job to cands at once and returns the first that
// accepts; the others are withdrawn (their streams reset) and go back to
// the pool unless they had already answered. Rejections and failures that
// arrive before the winner are recorded. A non-retryable answer ends the
// round with a fatal error.
func (r *run) round(ctx context.Context, cands []peer.AddrInfo) (*offer, error) {
	offers := make([]*offer, len(cands))
	answers := make(chan *offer, len(cands))
	for i, node := range cands {
		o := r.newOffer(ctx, node)
		offers[i] = o
		go func() {
			r.send(o)
			answers <- o
		}()
	}
	answered := make(map[*offer]bool, len(offers))
	withdrawRest := func(keep *offer) {
		var back []peer.AddrInfo
		for _, o := range offers {
			if o != keep && !answered[o] {
				o.withdraw()
				back = append(back, o.node)
			}
		}
		r.pool.release(back)
	}
	for range offers {
		var o *offer
		select {
		case o = <-answers:
		case <-ctx.Done():
			withdrawRest(nil)
			return nil, ctx.Err()
		}
		answered[o] = true
		if o.acc != nil {
			withdrawRest(o)
			return o, nil
		}
		if ctx.Err() != nil {
			// The run ended under this offer; it says nothing about the node.
			r.pool.release([]peer.AddrInfo{o.node})
			continue
		}
		a := *o.fail
		r.record(a)
		if !a.Retryable {
			withdrawRest(nil)
			return nil, refused(a)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, nil
}

// record commits an attempt to the run and to the client's memory of
// failures, and logs it.
func (r *run) record(a Attempt) {
	r.pool.commit(a)
	r.c.score(a)
	r.c.log().Debug("job attempt", "event", "client_attempt", "node", a.Node.String(), "outcome", a.Outcome,
		"reason", a.Reason, "detail", a.Detail, "retryable", a.Retryable, "duration_ms", a.Duration.Milliseconds())
}

func refused(a Attempt) error {
	return fmt.Errorf("%w by %s: %s %s (%s)", ErrJobRefused, shortID(a.Node), a.Outcome, a.Reason, a.Detail)
}

// backoff is exponential from BackoffMin, capped at BackoffMax, with equal
// jitter: a random pause in [d/2, d].
func (r *run) backoff(failed int) time.Duration {
	d := r.s.BackoffMin
	for i := 1; i < failed && d < r.s.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.s.BackoffMax)
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resultKey is what replicas must agree on.
type resultKey struct {
	outcome    string
	exitCode   int
	stdoutHash string
	stderrHash string
}

func keyOf(v *verified) resultKey {
	return resultKey{v.rc.Outcome, v.rc.ExitCode, v.rc.StdoutHash, v.rc.StderrHash}
}

// groups returns the verified results grouped by what they say, each group
// in arrival order, groups in order of first arrival.
func groups(oks []*verified) [][]*verified {
	var out [][]*verified
	idx := map[resultKey]int{}
	for _, v := range oks {
		k := keyOf(v)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], v)
	}
	return out
}

// largestGroup is the biggest group of alike results (the earliest formed
// on a tie).
func largestGroup(oks []*verified) []*verified {
	var best []*verified
	for _, g := range groups(oks) {
		if len(g) > len(best) {
			best = g
		}
	}
	return best
}

// describeGroups says which nodes said what, one group per clause.
func describeGroups(oks []*verified) string {
	gs := groups(oks)
	if len(gs) < 2 {
		return ""
	}
	parts := make([]string, 0, len(gs))
	for _, g := range gs {
		ids := make([]string, len(g))
		for i, v := range g {
			ids[i] = shortID(v.node)
		}
		k := keyOf(g[0])
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

// result builds the Result from the agreeing group.
func (r *run) result(agree, oks []*verified) *Result {
	first := agree[0]
	res := &Result{
		Node:            first.node,
		Outcome:         first.res.Outcome,
		ExitCode:        first.rc.ExitCode,
		Detail:          peerText(first.res.Detail),
		Stdout:          first.stdout,
		Stderr:          first.stderr,
		StdoutTruncated: first.rc.StdoutTruncated,
		StderrTruncated: first.rc.StderrTruncated,
		Receipt:         first.rc,
		ReceiptJSON:     first.rcJSON,
		WallTime:        time.Duration(first.rc.WallTimeMS) * time.Millisecond,
	}
	if r.s.Replicas > 1 {
		for _, v := range agree {
			res.Replicas = append(res.Replicas, Replica{
				Node: v.node, Outcome: v.rc.Outcome, ExitCode: v.rc.ExitCode,
				StdoutHash: v.rc.StdoutHash, StderrHash: v.rc.StderrHash,
				Receipt: v.rc, ReceiptJSON: v.rcJSON,
			})
		}
		if len(agree) < len(oks) {
			res.Disagreement = describeGroups(oks)
			for _, v := range oks {
				if !slices.Contains(agree, v) {
					r.pool.markDisagreed(v.node, "outvoted: "+describeGroups(oks))
					r.c.score(Attempt{Node: v.node, Outcome: AttemptDisagreed})
				}
			}
		}
	}
	res.Attempts = r.pool.snapshot()
	return res
}

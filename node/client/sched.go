package client

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The scheduling of one Run is a plain state machine: step(event) returns
// the actions the I/O layer carries out (offer to these nodes, go on with
// that one, withdraw, wait, finish). It owns every decision — which node
// next, whether to retry, when to stop, how replicas agree — and touches no
// network, clock or goroutine, so it is tested with tables of events
// (sched_test.go). run.go is the shell that turns actions into streams and
// stream outcomes into events.

// schedConfig is what the scheduler needs from the settings.
type schedConfig struct {
	replicas   int           // k agreeing verified results end the run
	fanout     int           // offers per round
	budget     int           // nodes tried at most, over all replicas
	backoffMin time.Duration // first pause after a failed round
	backoffMax time.Duration
	// stagger, when > 0, sends a round's offers one at a time: the next
	// goes out when the ones out have all failed or none has answered in
	// stagger. The first node of a round (a random one among equals) then
	// gets the job unless it is slow to answer or says no; offers sent at
	// once instead go to whichever answers first, and the nodes nearest the
	// client win most races (docs/SIMULATOR.md, load spread).
	stagger time.Duration
	// hedgeAfter, when > 0, starts one more round while an accepted attempt
	// has been running this long without a result or a progress message: a
	// slow or stalled node then costs a hedge, not the job's whole
	// deadline. A node that has shown progress is not hedged (a stall is
	// then caught by the stall timeout).
	hedgeAfter time.Duration
	// suspect, when set, names nodes this client remembers failing it
	// (ranked last): a round that starts with a trusted node offers to
	// trusted nodes only, so a suspect never wins a race against one.
	suspect func(peer.ID) bool
	// jitter maps a backoff ceiling d to the pause actually taken, in
	// [d/2, d]; nil takes d (tests).
	jitter func(d time.Duration) time.Duration
}

// resultKey is what replicas must agree on.
type resultKey struct {
	outcome    string
	exitCode   int
	stdoutHash string
	stderrHash string
}

// Events, from the shell to the scheduler.
type (
	// evAnswered: an offer was answered. Accepted, or it failed (Fail set:
	// rejected, error, timeout, unreachable, protocol).
	evAnswered struct {
		node peer.ID
		fail *Attempt
	}
	// evDone: an accepted attempt ended, with a verified result (key set)
	// or a failure.
	evDone struct {
		node peer.ID
		key  *resultKey
		att  Attempt
	}
	// evProgress: an accepted attempt sent a progress message: it is alive.
	evProgress struct{ node peer.ID }
	// evUploading: an accepted attempt's payload is still being sent, and
	// the node has taken more of it since the last such event: it is
	// reading, however slowly the bytes go.
	evUploading struct{ node peer.ID }
	// evSent: an accepted attempt's payload is sent; the node runs the job
	// from here. progressMS is the progress interval it promised (0: none).
	evSent struct {
		node       peer.ID
		progressMS int64
	}
	// evTimer: a wait the scheduler asked for is over.
	evTimer struct{ id int }
	// evStop: the run must end now (deadline or cancellation); err says
	// which.
	evStop struct{ err error }
)

// Actions, from the scheduler to the shell.
type (
	actOffer    struct{ nodes []peer.AddrInfo } // offer the job to each, at once
	actProceed  struct{ node peer.ID }          // an accepted offer goes on: payload, result, verify
	actWithdraw struct{ nodes []peer.ID }       // end these offers or attempts now; their outcome says nothing about them
	actWait     struct {
		id int
		d  time.Duration
	}
	// actFinish ends the run: agree holds the agreeing nodes on success,
	// err the failure otherwise.
	actFinish struct {
		agree []peer.ID
		err   error
	}
)

type seekerState int

const (
	seekIdle     seekerState = iota // wants to start a round
	seekOffering                    // offers out, none accepted yet
	seekRunning                     // an accepted attempt is running
	seekBackoff                     // waiting after a failed round
	seekDone                        // has its result, or nothing left to try
)

// seeker is the pursuit of one verified result.
type seeker struct {
	state   seekerState
	pending map[peer.ID]bool // offers out in this round
	order   []peer.ID        // the round's nodes, in queue order
	staged  []peer.ID        // the round's nodes not offered yet (stagger)
	running peer.ID          // the accepted attempt
	failed  int              // failed rounds and attempts, for the backoff
	timer   int              // the wait it is in (backoff or hedge)
	hedged  bool             // its running attempt already started a hedge
	alive   bool             // its running attempt has sent progress
	sent    bool             // its running attempt's payload is sent
}

// sched is the state of one Run's scheduling.
type sched struct {
	cfg      schedConfig
	queue    []peer.AddrInfo // untried, best first
	infos    map[peer.ID]peer.AddrInfo
	byNode   map[peer.ID]*seeker
	seekers  []*seeker
	inflight int // offers and attempts out
	spent    int // nodes tried (committed attempts)
	results  []verifiedKey
	timers   map[int]*seeker
	nextID   int
	fatal    error
	finished bool
	attempts []Attempt
}

type verifiedKey struct {
	node peer.ID
	key  resultKey
}

func newSched(cfg schedConfig, cands []peer.AddrInfo) *sched {
	infos := make(map[peer.ID]peer.AddrInfo, len(cands))
	for _, ai := range cands {
		infos[ai.ID] = ai
	}
	return &sched{
		cfg:    cfg,
		infos:  infos,
		queue:  append([]peer.AddrInfo(nil), cands...),
		byNode: map[peer.ID]*seeker{},
		timers: map[int]*seeker{},
	}
}

// start launches one seeker per replica.
func (s *sched) start() []any {
	for range s.cfg.replicas {
		s.seekers = append(s.seekers, &seeker{})
	}
	return s.advance(nil)
}

// step applies one event and returns what to do next.
func (s *sched) step(ev any) []any {
	var out []any
	switch e := ev.(type) {
	case evAnswered:
		out = s.answered(e)
	case evDone:
		out = s.done(e)
	case evProgress:
		if sk := s.byNode[e.node]; sk != nil && sk.running == e.node {
			sk.alive = true
		}
		return nil
	case evUploading:
		// The node is taking the payload: the hedge clock starts again.
		// An upload is slow when the client's own link is busy with other
		// uploads; hedging it would add one more upload to that link, slow
		// every one of them further, and end in all of them timing out
		// (docs/SIMULATOR.md, "Adversarial runs of 1,000 jobs"). A node that
		// stops reading is still hedged hedgeAfter after its last byte.
		sk := s.byNode[e.node]
		if sk == nil || sk.running != e.node || sk.sent || sk.hedged || sk.alive || s.finished || s.cfg.hedgeAfter <= 0 {
			return nil
		}
		return []any{s.wait(sk, s.cfg.hedgeAfter)}
	case evSent:
		// The hedge clock starts again once the node has the payload: the
		// time an upload takes says nothing about how fast the node runs,
		// and a node that promised progress gets one and a half of its
		// intervals to show it before it is hedged.
		sk := s.byNode[e.node]
		if sk == nil || sk.running != e.node {
			return nil
		}
		sk.sent = true
		if sk.hedged || sk.alive || s.finished || s.cfg.hedgeAfter <= 0 {
			return nil
		}
		return []any{s.wait(sk, max(s.cfg.hedgeAfter, time.Duration(e.progressMS)*time.Millisecond*3/2))}
	case evTimer:
		sk := s.timers[e.id]
		delete(s.timers, e.id)
		if sk == nil || sk.timer != e.id || s.finished {
			return nil // stale: the seeker moved on
		}
		switch sk.state {
		case seekBackoff:
			sk.state = seekIdle
		case seekOffering: // the offers out did not answer in time: one more
			if len(sk.staged) > 0 {
				out = s.offerNext(sk)
			}
		case seekRunning: // the hedge delay passed without a result
			if !sk.hedged && !sk.alive {
				sk.hedged = true
				s.seekers = append(s.seekers, &seeker{})
			}
		}
	case evStop:
		if !s.finished {
			return s.finish(nil, e.err)
		}
		return nil
	}
	return s.advance(out)
}

func (s *sched) answered(e evAnswered) []any {
	sk := s.byNode[e.node]
	if s.finished || sk == nil || !sk.pending[e.node] {
		return nil // a withdrawn offer's late answer
	}
	delete(sk.pending, e.node)
	if e.fail != nil {
		delete(s.byNode, e.node)
		s.inflight--
		s.commit(*e.fail)
		if !e.fail.Retryable {
			s.fatal = refused(*e.fail)
			return nil
		}
		if len(sk.pending) == 0 && sk.state == seekOffering {
			if len(sk.staged) > 0 {
				return s.offerNext(sk)
			}
			return s.backoff(sk)
		}
		return nil
	}
	if sk.state != seekOffering {
		// Accepted after its round was decided: let it go.
		delete(s.byNode, e.node)
		s.inflight--
		return []any{actWithdraw{nodes: []peer.ID{e.node}}}
	}
	// The first to accept wins the round; the others go back to the front
	// of the queue: they were asked (or about to be), not tried.
	var out []any
	var withdraw []peer.ID
	for _, n := range sk.order {
		if sk.pending[n] {
			withdraw = append(withdraw, n)
			delete(s.byNode, n)
		}
	}
	back := slices.Concat(withdraw, sk.staged) // staged nodes come last in a round's order
	s.inflight -= len(back)
	sk.pending, sk.order, sk.staged = nil, nil, nil
	s.requeue(back)
	if len(withdraw) > 0 {
		out = append(out, actWithdraw{nodes: withdraw})
	}
	sk.state = seekRunning
	sk.running = e.node
	sk.timer = 0 // a stagger wait of the round is void
	sk.hedged, sk.alive, sk.sent = false, false, false
	out = append(out, actProceed{node: e.node})
	if s.cfg.hedgeAfter > 0 {
		out = append(out, s.wait(sk, s.cfg.hedgeAfter))
	}
	return out
}

func (s *sched) done(e evDone) []any {
	sk := s.byNode[e.node]
	delete(s.byNode, e.node)
	if s.finished || sk == nil || sk.running != e.node {
		// An attempt ended after the run decided without it.
		if e.att.Outcome != "" {
			s.attempts = append(s.attempts, e.att)
		}
		return nil
	}
	s.inflight--
	sk.running = ""
	s.commit(e.att)
	if e.key != nil {
		s.results = append(s.results, verifiedKey{node: e.node, key: *e.key})
		sk.state = seekDone
		if agree := s.largestGroup(); len(agree) >= s.cfg.replicas {
			return s.finish(agree, nil)
		}
		return nil
	}
	if !e.att.Retryable {
		s.fatal = refused(e.att)
		return nil
	}
	return s.backoff(sk)
}

// backoff puts a seeker to wait after a failed round or attempt:
// exponential from backoffMin, capped at backoffMax, jittered.
func (s *sched) backoff(sk *seeker) []any {
	sk.failed++
	d := s.cfg.backoffMin
	for i := 1; i < sk.failed && d < s.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.backoffMax)
	if s.cfg.jitter != nil {
		d = s.cfg.jitter(d)
	}
	sk.state = seekBackoff
	return []any{s.wait(sk, d)}
}

func (s *sched) wait(sk *seeker, d time.Duration) actWait {
	s.nextID++
	sk.timer = s.nextID
	s.timers[s.nextID] = sk
	return actWait{id: s.nextID, d: d}
}

// advance starts rounds for idle seekers, launches more seekers while a
// majority is still possible, and ends the run when nothing can change.
func (s *sched) advance(out []any) []any {
	if s.finished {
		return out
	}
	if s.fatal != nil {
		return append(out, s.finish(nil, s.fatal)...)
	}
	// More seekers while k agreeing results are still needed.
	if len(s.results) > 0 {
		need := s.cfg.replicas - len(s.largestGroup())
		active := 0
		for _, sk := range s.seekers {
			if sk.state != seekDone {
				active++
			}
		}
		for ; active < need; active++ {
			s.seekers = append(s.seekers, &seeker{})
		}
	}
	for _, sk := range s.seekers {
		if sk.state != seekIdle {
			continue
		}
		n := min(s.cfg.fanout, s.cfg.budget-s.spent-s.inflight, len(s.queue))
		if n <= 0 {
			// Only a withdrawn offer can bring a candidate (and budget)
			// back; with nothing out, this seeker has nothing left to try.
			if s.inflight == 0 {
				sk.state = seekDone
			}
			continue
		}
		if s.cfg.suspect != nil && !s.cfg.suspect(s.queue[0].ID) {
			for i := 1; i < n; i++ {
				if s.cfg.suspect(s.queue[i].ID) {
					n = i
					break
				}
			}
		}
		nodes := s.queue[:n:n]
		s.queue = s.queue[n:]
		sk.state = seekOffering
		sk.pending = map[peer.ID]bool{}
		sk.order, sk.staged = sk.order[:0], nil
		for _, ai := range nodes {
			sk.order = append(sk.order, ai.ID)
		}
		s.inflight += n // staged nodes hold their share of the budget
		if s.cfg.stagger > 0 && n > 1 {
			sk.staged = slices.Clone(sk.order[1:])
			nodes = nodes[:1]
		}
		for _, ai := range nodes {
			sk.pending[ai.ID] = true
			s.byNode[ai.ID] = sk
		}
		out = append(out, actOffer{nodes: nodes})
		if len(sk.staged) > 0 {
			out = append(out, s.wait(sk, s.cfg.stagger))
		}
	}
	for _, sk := range s.seekers {
		if sk.state != seekDone {
			return out
		}
	}
	return append(out, s.finish(nil, nil)...)
}

// offerNext sends the next staged offer of sk's round, and waits stagger
// for it before the one after.
func (s *sched) offerNext(sk *seeker) []any {
	id := sk.staged[0]
	sk.staged = sk.staged[1:]
	sk.timer = 0 // the stagger wait that led here, if any, is over
	sk.pending[id] = true
	s.byNode[id] = sk
	out := []any{actOffer{nodes: []peer.AddrInfo{s.infos[id]}}}
	if len(sk.staged) > 0 {
		out = append(out, s.wait(sk, s.cfg.stagger))
	}
	return out
}

// requeue puts withdrawn candidates back at the front, in their order.
func (s *sched) requeue(ids []peer.ID) {
	back := make([]peer.AddrInfo, 0, len(ids))
	for _, id := range ids {
		back = append(back, s.infos[id])
	}
	s.queue = append(back, s.queue...)
}

func (s *sched) commit(a Attempt) {
	s.spent++
	s.attempts = append(s.attempts, a)
}

// finish ends the run: success with the agreeing nodes, or the error that
// says why not. Everything still out is withdrawn.
func (s *sched) finish(agree []peer.ID, err error) []any {
	s.finished = true
	var out []any
	var pending []peer.ID
	for n := range s.byNode {
		pending = append(pending, n)
	}
	if len(pending) > 0 {
		out = append(out, actWithdraw{nodes: pending})
	}
	if agree == nil && err == nil {
		err = s.failure()
	}
	return append(out, actFinish{agree: agree, err: err})
}

// failure says why a run that ran out of candidates has no result.
func (s *sched) failure() error {
	best := s.largestGroup()
	switch {
	case len(s.results) > 0 && len(best) < len(s.results):
		return fmt.Errorf("%w: %d verified results, no %d of them alike", ErrDisagreement, len(s.results), s.cfg.replicas)
	case len(s.results) > 0:
		return fmt.Errorf("%w: only %d of %d replicas produced a verified result", ErrExhausted, len(s.results), s.cfg.replicas)
	case len(s.attempts) == 0:
		return fmt.Errorf("%w: no candidate could be offered the job", ErrExhausted)
	}
	return ErrExhausted
}

// largestGroup is the biggest group of alike results, in arrival order (the
// earliest formed on a tie).
func (s *sched) largestGroup() []peer.ID {
	var best []peer.ID
	for _, g := range s.groups() {
		if len(g) > len(best) {
			best = g
		}
	}
	return best
}

// groups returns the nodes grouped by what their results say, groups in
// order of first arrival.
func (s *sched) groups() [][]peer.ID {
	var out [][]peer.ID
	idx := map[resultKey]int{}
	for _, r := range s.results {
		i, ok := idx[r.key]
		if !ok {
			i = len(out)
			idx[r.key] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r.node)
	}
	return out
}

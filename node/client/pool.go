package client

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Failure score weights: how far a failure pushes a node down the order for
// later Runs of the same client. A lie (a bad receipt) costs most.
const (
	scoreFailure    = 1
	scoreBadReceipt = 4
	scoreMax        = 16
)

// pool hands out the candidates of one Run to the rounds of all its
// replicas: each node at most once, and never more nodes than the attempt
// budget allows. A node whose offer was withdrawn before it answered goes
// back to the pool: it was asked, not tried.
type pool struct {
	mu       sync.Mutex
	queue    []peer.AddrInfo // untried, best first
	inflight map[peer.ID]bool
	tried    map[peer.ID]bool
	budget   int // nodes that may still be tried (committed)
	attempts []Attempt
	changed  chan struct{} // closed and replaced on every change
}

func newPool(cands []peer.AddrInfo, budget int) *pool {
	return &pool{
		queue:    cands,
		inflight: map[peer.ID]bool{},
		tried:    map[peer.ID]bool{},
		budget:   budget,
		changed:  make(chan struct{}),
	}
}

// take removes up to n candidates from the queue. When it returns none,
// wait is closed at the next change, or is nil when no change can bring a
// candidate (nothing queued or in flight, or no budget left).
func (p *pool) take(n int) (got []peer.AddrInfo, wait <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, p.budget-len(p.inflight), len(p.queue))
	if n > 0 {
		got = slices.Clone(p.queue[:n])
		p.queue = p.queue[n:]
		for _, c := range got {
			p.inflight[c.ID] = true
		}
		return got, nil
	}
	if len(p.inflight) == 0 || p.budget <= 0 {
		return nil, nil
	}
	return nil, p.changed
}

// release puts candidates whose offer was withdrawn back at the front, in
// their original order.
func (p *pool) release(cands []peer.AddrInfo) {
	if len(cands) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	back := make([]peer.AddrInfo, 0, len(cands))
	for _, c := range cands {
		if p.inflight[c.ID] {
			delete(p.inflight, c.ID)
			back = append(back, c)
		}
	}
	p.queue = append(back, p.queue...)
	p.notifyLocked()
}

// commit records the attempt on a node that was tried, using up one unit
// of budget.
func (p *pool) commit(a Attempt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[a.Node] {
		delete(p.inflight, a.Node)
	}
	p.tried[a.Node] = true
	p.budget--
	p.attempts = append(p.attempts, a)
	p.notifyLocked()
}

// markDisagreed rewrites the ok attempt of a node that was outvoted.
func (p *pool) markDisagreed(id peer.ID, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.attempts {
		if p.attempts[i].Node == id && p.attempts[i].Outcome == AttemptOK {
			p.attempts[i].Outcome = AttemptDisagreed
			p.attempts[i].Detail = detail
		}
	}
}

func (p *pool) snapshot() []Attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.attempts)
}

func (p *pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// rank orders candidates: the given order (Find's ranking, or the caller's
// list), except that nodes that failed this client before sink by their
// failure score. Excluded nodes, the client's own host and duplicates are
// dropped.
func (c *Client) rank(cands []peer.AddrInfo, exclude []peer.ID) []peer.AddrInfo {
	self := c.Host.ID()
	seen := map[peer.ID]bool{self: true}
	for _, id := range exclude {
		seen[id] = true
	}
	out := make([]peer.AddrInfo, 0, len(cands))
	for _, ai := range cands {
		if ai.ID == "" || seen[ai.ID] {
			continue
		}
		seen[ai.ID] = true
		out = append(out, ai)
	}
	c.mu.Lock()
	scores := make([]int, len(out))
	for i, ai := range out {
		scores[i] = c.scores[ai.ID]
	}
	c.mu.Unlock()
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return scores[a] - scores[b] })
	ranked := make([]peer.AddrInfo, len(out))
	for i, j := range idx {
		ranked[i] = out[j]
	}
	return ranked
}

// score updates a node's failure score after an attempt: failures add,
// success halves, so a node that recovers climbs back.
func (c *Client) score(a Attempt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scores == nil {
		c.scores = map[peer.ID]int{}
	}
	s := c.scores[a.Node]
	switch a.Outcome {
	case AttemptOK:
		s /= 2
	case AttemptCancelled:
		return
	case AttemptBadReceipt, AttemptDisagreed:
		s += scoreBadReceipt
	default:
		s += scoreFailure
	}
	s = min(s, scoreMax)
	if s == 0 {
		delete(c.scores, a.Node)
		return
	}
	c.scores[a.Node] = s
}

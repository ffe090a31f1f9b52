package client

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Failure score weights: how far a failure pushes a node down the order for
// later Runs of the same client. A lie (a bad receipt, an outvoted result)
// and a node that accepted and then went quiet (a timeout or a stall) cost
// most: they waste the most of a job's time.
const (
	scoreFailure    = 1
	scoreBadReceipt = 4
	scoreStalled    = 4
	scoreMax        = 16
	// scoreHalfLife is how fast the memory fades: a score halves every
	// half-life, so a node that failed once is trusted again after a
	// while, and one that keeps failing stays at the back.
	scoreHalfLife = 10 * time.Minute
	// scoreForgotten: a decayed score below this is dropped.
	scoreForgotten = 0.5
)

// memory is what a client remembers of the nodes it tried, in memory
// only: a failure score per node, raised by failures, halved by each
// success and decaying with time, so a node that recovers climbs back.
type memory struct {
	mu     sync.Mutex
	now    func() time.Time // nil: time.Now
	scores map[peer.ID]score
}

type score struct {
	v  float64
	at time.Time // when v was last updated
}

func (m *memory) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// decayed is s's value at t.
func (s score) decayed(t time.Time) float64 {
	return s.v * math.Exp2(-float64(t.Sub(s.at))/float64(scoreHalfLife))
}

// rank orders candidates: the given order (Find's ranking, or the caller's
// list), except that nodes that failed this client recently sink by their
// failure score: every node with no recent failure comes before any node
// with one. Excluded nodes, self and duplicates are dropped.
func (m *memory) rank(cands []peer.AddrInfo, self peer.ID, exclude []peer.ID) []peer.AddrInfo {
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
	m.mu.Lock()
	now := m.clock()
	scores := make(map[peer.ID]float64, len(out))
	for _, ai := range out {
		if s, ok := m.scores[ai.ID]; ok {
			if v := s.decayed(now); v >= scoreForgotten {
				scores[ai.ID] = v
			}
		}
	}
	m.mu.Unlock()
	slices.SortStableFunc(out, func(a, b peer.AddrInfo) int {
		sa, sb := scores[a.ID], scores[b.ID]
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	return out
}

// record updates a node's score after an attempt.
func (m *memory) record(a Attempt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scores == nil {
		m.scores = map[peer.ID]score{}
	}
	now := m.clock()
	v := 0.0
	if s, ok := m.scores[a.Node]; ok {
		v = s.decayed(now)
	}
	switch a.Outcome {
	case AttemptOK:
		v /= 2
	case AttemptCancelled:
		return // says nothing about the node
	case AttemptBadReceipt, AttemptDisagreed:
		v += scoreBadReceipt
	case AttemptTimeout:
		if unreachable(a) {
			v += scoreFailure
		} else {
			v += scoreStalled // accepted, then nothing in time
		}
	default:
		v += scoreFailure
	}
	v = min(v, scoreMax)
	if v < scoreForgotten {
		delete(m.scores, a.Node)
		return
	}
	m.scores[a.Node] = score{v: v, at: now}
}

// suspects returns which of cands this client remembers failing it now
// (fixed for the Run: the scheduler is a plain function of its inputs).
func (m *memory) suspects(cands []peer.AddrInfo) func(peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	bad := map[peer.ID]bool{}
	for _, ai := range cands {
		if s, ok := m.scores[ai.ID]; ok && s.decayed(now) >= scoreForgotten {
			bad[ai.ID] = true
		}
	}
	return func(id peer.ID) bool { return bad[id] }
}

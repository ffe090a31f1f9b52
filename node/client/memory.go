package client

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
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
	// sentHalfLife is how fast the count of jobs a client recently gave
	// a node fades: long enough to cover a burst of jobs, short enough that
	// a node's share is forgotten once it has long finished them.
	sentHalfLife = time.Minute
	// A count faded below sentFaded (about seven half-lives) counts as
	// none; past sentKept nodes (or memory.sentPrune), such counts are
	// dropped.
	sentKept  = 1024
	sentFaded = 0.01
)

// memory is what a client remembers of the nodes it tried, in memory
// only: a failure score per node, raised by failures, halved by each
// success and decaying with time, so a node that recovers climbs back.
type memory struct {
	mu     sync.Mutex
	now    func() time.Time // nil: time.Now
	scores map[peer.ID]score
	sent   map[peer.ID]score // jobs this client gave each node, fading
	// sentPrune is the size of sent past which faded counts are dropped:
	// twice what the last pruning left, so a table of many live counts is
	// not walked on every job.
	sentPrune int
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

// decayed is s's value at t, as a failure score.
func (s score) decayed(t time.Time) float64 { return s.decayedOver(t, scoreHalfLife) }

// decayedOver is s's value at t when it halves every halfLife.
func (s score) decayedOver(t time.Time, halfLife time.Duration) float64 {
	return s.v * math.Exp2(-float64(t.Sub(s.at))/float64(halfLife))
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

// use notes that a node took one of this client's jobs.
func (m *memory) use(id peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sent == nil {
		m.sent = map[peer.ID]score{}
	}
	now := m.clock()
	v := 1.0
	if s, ok := m.sent[id]; ok {
		v += s.decayedOver(now, sentHalfLife)
	}
	m.sent[id] = score{v: v, at: now}
	if len(m.sent) > max(m.sentPrune, sentKept) {
		for k, s := range m.sent {
			if s.decayedOver(now, sentHalfLife) < sentFaded {
				delete(m.sent, k)
			}
		}
		m.sentPrune = 2 * len(m.sent)
	}
}

// spread is the power of two choices on what this client knows of load:
// Find's salted order pairs equally ranked nodes (caps.Tied) at random,
// and of each pair the node that took fewer of this client's recent jobs
// goes first; better ranked nodes stay first. The salted order alone put
// three times the mean share on some node now and then; working through
// every unused node first (least recently used) spread evenly but
// favoured nodes not heard from lately, which under churn are the ones
// that left (docs/SIMULATOR.md, load spread).
func (m *memory) spread(found []caps.Found, req caps.Requirements) []caps.Found {
	out := slices.Clone(found)
	m.mu.Lock()
	now := m.clock()
	sent := make(map[peer.ID]float64, len(out))
	for _, f := range out {
		if s, ok := m.sent[f.Peer.ID]; ok {
			if v := s.decayedOver(now, sentHalfLife); v >= sentFaded {
				sent[f.Peer.ID] = v
			}
		}
	}
	m.mu.Unlock()
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[i].Record != nil && out[j].Record != nil && caps.Tied(out[i].Record, out[j].Record, req) {
			j++
		}
		for k := i; k+1 < j; k += 2 {
			if sent[out[k+1].Peer.ID] < sent[out[k].Peer.ID] {
				out[k], out[k+1] = out[k+1], out[k]
			}
		}
		i = j
	}
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

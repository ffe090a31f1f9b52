package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
)

func TestSettingsDefaults(t *testing.T) {
	tests := []struct {
		name     string
		job      Job
		opts     Options
		attempts int
		attempt  time.Duration
		deadline time.Duration
	}{
		{"zero", Job{Module: []byte{1}}, Options{}, 5, 60 * time.Second, 5 * time.Minute},
		{"replicas raise attempts", Job{Module: []byte{1}, Replicas: 4}, Options{}, 6, 60 * time.Second, 6 * time.Minute},
		{"long job caps the deadline", Job{Module: []byte{1}, TimeoutSeconds: 3600}, Options{}, 5, 3630 * time.Second, 7260 * time.Second},
		{"explicit", Job{Module: []byte{1}, Attempts: 2}, Options{AttemptTimeout: time.Second, Deadline: time.Minute}, 2, time.Second, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newSettings(tt.job, tt.opts)
			require.NoError(t, err)
			assert.Equal(t, tt.attempts, s.attempts)
			assert.Equal(t, tt.attempt, s.AttemptTimeout)
			assert.Equal(t, tt.deadline, s.Deadline)
			assert.Equal(t, DefaultFanout, s.Fanout)
			assert.Equal(t, DefaultAcceptTimeout, s.AcceptTimeout)
			assert.Equal(t, DefaultStallTimeout, s.StallTimeout)
			assert.NoError(t, s.manifest.Validate())
			assert.Equal(t, phase.HashBytes(tt.job.Module), s.moduleHash)
		})
	}
}

func TestRankDemotes(t *testing.T) {
	var m memory
	self := peer.ID("self")
	cands := []peer.AddrInfo{{ID: "p1"}, {ID: "p2"}, {ID: "p2"}, {ID: self}, {ID: "p3"}, {ID: "p4"}}
	m.record(Attempt{Node: "p1", Outcome: AttemptBadReceipt})
	m.record(Attempt{Node: "p2", Outcome: AttemptTimeout, Reason: "answer"}) // no answer to the offer: a plain failure
	m.record(Attempt{Node: "p4", Outcome: AttemptCancelled})                 // says nothing about the node
	assert.Equal(t, []peer.ID{"p4", "p2", "p1"}, ids(m.rank(cands, self, []peer.ID{"p3"})))

	// Success halves the score until the node is back in Find's order.
	for range 4 {
		m.record(Attempt{Node: "p1", Outcome: AttemptOK})
		m.record(Attempt{Node: "p2", Outcome: AttemptOK})
	}
	assert.Equal(t, []peer.ID{"p1", "p2", "p3", "p4"}, ids(m.rank(cands, self, nil)))
}

func ids(ais []peer.AddrInfo) []peer.ID {
	out := make([]peer.ID, len(ais))
	for i, ai := range ais {
		out[i] = ai.ID
	}
	return out
}

func TestErrorFormat(t *testing.T) {
	a, b := peer.ID("12D3KooWabcdefghijklmnop"), peer.ID("12D3KooWqrstuvwxyz012345")
	e := &Error{
		Err: ErrExhausted,
		Attempts: []Attempt{
			{Node: a, Outcome: AttemptRejected, Reason: phase.ReasonQueueFull, Detail: "node busy"},
			{Node: b, Outcome: AttemptTimeout, Reason: string(session.StepAnswer), Detail: "no answer to the offer within 2s"},
		},
	}
	want := "no node could run the job; 2 node(s) tried:\n" +
		"  " + phase.ShortID(a.String()) + ": rejected queue_full (node busy)\n" +
		"  " + phase.ShortID(b.String()) + ": timeout answer (no answer to the offer within 2s)"
	assert.Equal(t, want, e.Error())
	assert.ErrorIs(t, e, ErrExhausted)
	assert.Equal(t, "no node could run the job (no node was tried)", (&Error{Err: ErrExhausted}).Error())
}

func TestPeerText(t *testing.T) {
	assert.Equal(t, `line\nbreak \x1b[31m`, peerText("line\nbreak \x1b[31m"))
	long := peerText(strings.Repeat("x", 1000))
	assert.Less(t, len(long), maxDetail+10)
	assert.Empty(t, peerText(""))
}

// The memory ranks nodes that failed this client last, stallers and liars
// below plain failures, and forgets with time.
func TestMemoryRanksFailuresLastAndFades(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	m := &memory{now: func() time.Time { return now }}
	ids := []peer.ID{"honest", "stalled", "unreachable", "liar", "self"}
	cands := make([]peer.AddrInfo, len(ids))
	for i, id := range ids {
		cands[i] = peer.AddrInfo{ID: id}
	}
	order := func() []peer.ID {
		var out []peer.ID
		for _, ai := range m.rank(cands, "self", nil) {
			out = append(out, ai.ID)
		}
		return out
	}
	m.record(Attempt{Node: "stalled", Outcome: AttemptTimeout, Reason: "result"})
	m.record(Attempt{Node: "unreachable", Outcome: AttemptUnreachable, Reason: "dial"})
	m.record(Attempt{Node: "liar", Outcome: AttemptBadReceipt})
	m.record(Attempt{Node: "liar", Outcome: AttemptDisagreed})
	m.record(Attempt{Node: "honest", Outcome: AttemptCancelled})
	assert.Equal(t, []peer.ID{"honest", "unreachable", "stalled", "liar"}, order())

	now = now.Add(scoreHalfLife)
	m.record(Attempt{Node: "liar", Outcome: AttemptOK}) // halves 4 (8 decayed) → 2
	assert.Equal(t, []peer.ID{"honest", "unreachable", "stalled", "liar"}, order(),
		"a half-life later the staller has 2, the unreachable 0.5, and the liar 8 → 4, halved by a success to 2: ties keep the given order")

	now = now.Add(10 * scoreHalfLife)
	assert.Equal(t, []peer.ID{"honest", "stalled", "unreachable", "liar"}, order(), "after ten half-lives everything is forgotten: the given order")
}

func TestMemorySpreadIsTwoChoicesAmongTiedNodes(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	m := &memory{now: func() time.Time { return now }}
	rec := func(id peer.ID, running int) caps.Found {
		r := &caps.Record{PeerID: string(id), Load: caps.Load{RunningJobs: running}, Limits: caps.Limits{MaxConcurrentJobs: 4}}
		return caps.Found{Peer: peer.AddrInfo{ID: id}, Record: r}
	}
	// Find's order: one idle node, then three tied at load 1 (pairs a-b,
	// then c alone), then a busier one, then one whose record is missing.
	found := []caps.Found{rec("idle", 0), rec("a", 1), rec("b", 1), rec("c", 1), rec("busy", 3), {Peer: peer.AddrInfo{ID: "bare"}}}
	order := func() []peer.ID {
		var out []peer.ID
		for _, f := range m.spread(found, caps.Requirements{}) {
			out = append(out, f.Peer.ID)
		}
		return out
	}
	assert.Equal(t, []peer.ID{"idle", "a", "b", "c", "busy", "bare"}, order(), "nothing sent yet: Find's order")

	m.use("a")
	m.use("a")
	m.use("b")
	m.use("idle")
	m.use("idle")
	m.use("busy")
	assert.Equal(t, []peer.ID{"idle", "b", "a", "c", "busy", "bare"}, order(),
		"of the pair a-b the one sent fewer jobs goes first; c, sent none, keeps its place (two choices, not a sort); "+
			"a better or worse ranked node keeps its place however many it took")

	now = now.Add(sentHalfLife)
	m.use("b")
	m.use("b") // a: 2 → 1; b: 1 → 0.5, +2
	assert.Equal(t, []peer.ID{"idle", "a", "b", "c", "busy", "bare"}, order(), "counts fade: a's two jobs a half-life ago weigh less than b's two now")

	m.use("a") // a: 2, b: 2.5
	now = now.Add(20 * sentHalfLife)
	assert.Equal(t, []peer.ID{"idle", "a", "b", "c", "busy", "bare"}, order(), "twenty half-lives later: Find's order")
	m.use("a")
	assert.Equal(t, []peer.ID{"idle", "b", "a", "c", "busy", "bare"}, order(), "a count faded to nothing is none: b (2.5 twenty half-lives ago) goes before a (1 now)")
	assert.Equal(t, peer.ID("a"), found[1].Peer.ID, "spread leaves its input alone")
}

func TestMemoryForgetsFadedSendCounts(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	m := &memory{now: func() time.Time { return now }}
	for i := range sentKept {
		m.use(peer.ID(fmt.Sprint("old", i)))
	}
	now = now.Add(10 * sentHalfLife)
	m.use("new")
	assert.Len(t, m.sent, 1, "past sentKept nodes, the faded counts are dropped")
}

// fakeStream takes writes of at most max bytes at a time.
type fakeStream struct {
	network.Stream
	max    int
	writes int
	got    int
}

func (f *fakeStream) Write(p []byte) (int, error) {
	f.writes++
	n := min(len(p), f.max)
	f.got += n
	return n, nil
}

// The payload upload reports the node taking bytes, chunk by chunk, at
// most once per interval; outside the upload, writes pass through whole.
func TestUploadStreamReportsProgress(t *testing.T) {
	tests := []struct {
		name   string
		every  time.Duration
		watch  bool
		size   int
		writes int
		tells  int
	}{
		{"not watched: one write", 0, false, 100 << 10, 1, 0},
		{"watched: a report a chunk", 0, true, 5*uploadChunk + 1, 6, 6},
		{"watched, long interval: no report", time.Hour, true, 5 * uploadChunk, 5, 0},
		{"small payload: one chunk", 0, true, 100, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStream{max: 1 << 30}
			u := &uploadStream{Stream: f}
			tells := 0
			if tt.watch {
				u.watch(tt.every, func() { tells++ })
			}
			n, err := u.Write(make([]byte, tt.size))
			require.NoError(t, err)
			assert.Equal(t, tt.size, n)
			assert.Equal(t, tt.size, f.got)
			assert.Equal(t, tt.writes, f.writes)
			assert.Equal(t, tt.tells, tells)
			u.watch(0, nil)
			_, _ = u.Write(make([]byte, tt.size))
			assert.Equal(t, tt.tells, tells, "no reports once unwatched")
		})
	}
}

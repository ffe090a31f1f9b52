package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/phase"
)

// The scheduler's decisions, tested without hosts: each case feeds events
// and checks the actions that come back, written as short strings
// ("offer a b", "proceed a", "withdraw b", "wait", "finish ok a",
// "finish error ...").

func nodes(names ...string) []peer.AddrInfo {
	out := make([]peer.AddrInfo, len(names))
	for i, n := range names {
		out[i] = peer.AddrInfo{ID: peer.ID(n)}
	}
	return out
}

func cfg(replicas, fanout, budget int) schedConfig {
	return schedConfig{replicas: replicas, fanout: fanout, budget: budget, backoffMin: 100 * time.Millisecond, backoffMax: time.Second}
}

// show renders actions as strings; waits are "wait <id> <d>".
func show(acts []any) []string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case actOffer:
			var ns []string
			for _, n := range a.nodes {
				ns = append(ns, string(n.ID))
			}
			out = append(out, "offer "+strings.Join(ns, " "))
		case actProceed:
			out = append(out, "proceed "+string(a.node))
		case actWithdraw:
			ns := make([]string, len(a.nodes))
			for i, n := range a.nodes {
				ns[i] = string(n)
			}
			slices.Sort(ns)
			out = append(out, "withdraw "+strings.Join(ns, " "))
		case actWait:
			out = append(out, fmt.Sprintf("wait %d %s", a.id, a.d))
		case actFinish:
			if a.err != nil {
				out = append(out, "finish error "+a.err.Error())
			} else {
				ns := make([]string, len(a.agree))
				for i, n := range a.agree {
					ns[i] = string(n)
				}
				out = append(out, "finish ok "+strings.Join(ns, " "))
			}
		}
	}
	return out
}

func accepted(n string) evAnswered { return evAnswered{node: peer.ID(n)} }

func rejected(n, reason string) evAnswered {
	return evAnswered{node: peer.ID(n), fail: &Attempt{Node: peer.ID(n), Outcome: AttemptRejected, Reason: reason, Retryable: reason != phase.ReasonInvalidRequest}}
}

func ok(n, stdout string) evDone {
	return evDone{node: peer.ID(n), key: &resultKey{outcome: phase.OutcomeExited, stdoutHash: stdout}, att: Attempt{Node: peer.ID(n), Outcome: AttemptOK}}
}

func failed(n string) evDone {
	return evDone{node: peer.ID(n), att: Attempt{Node: peer.ID(n), Outcome: AttemptTimeout, Retryable: true}}
}

type stepCase struct {
	ev   any
	want []string
}

func play(t *testing.T, s *sched, start []string, steps []stepCase) {
	t.Helper()
	require.Equal(t, start, show(s.start()), "start")
	for i, st := range steps {
		require.Equal(t, st.want, show(s.step(st.ev)), "step %d: %#v", i, st.ev)
	}
}

func TestSchedOneNode(t *testing.T) {
	s := newSched(cfg(1, 3, 5), nodes("a"))
	play(t, s, []string{"offer a"}, []stepCase{
		{accepted("a"), []string{"proceed a"}},
		{ok("a", "x"), []string{"finish ok a"}},
	})
	assert.Len(t, s.attempts, 1)
}

// The first of a fanout to accept wins; the others are withdrawn and go
// back to the front of the queue, not counted as tried.
func TestSchedFanoutFirstAcceptWins(t *testing.T) {
	s := newSched(cfg(1, 3, 5), nodes("a", "b", "c", "d"))
	play(t, s, []string{"offer a b c"}, []stepCase{
		{accepted("b"), []string{"withdraw a c", "proceed b"}},
		{accepted("a"), nil}, // a late answer of a withdrawn offer
		{failed("b"), []string{"wait 1 100ms"}},
		{evTimer{id: 1}, []string{"offer a c d"}}, // withdrawn nodes first, in order
		{accepted("c"), []string{"withdraw a d", "proceed c"}},
		{ok("c", "x"), []string{"finish ok c"}},
	})
	assert.Equal(t, 2, s.spent)
}

// Rejections are attempts: they use the budget, and a round with no
// acceptance backs off exponentially before the next.
func TestSchedRejectionsBackOffAndExhaust(t *testing.T) {
	s := newSched(cfg(1, 1, 3), nodes("a", "b", "c", "d"))
	play(t, s, []string{"offer a"}, []stepCase{
		{rejected("a", phase.ReasonQueueFull), []string{"wait 1 100ms"}},
		{evTimer{id: 1}, []string{"offer b"}},
		{rejected("b", phase.ReasonQueueFull), []string{"wait 2 200ms"}},
		{evTimer{id: 2}, []string{"offer c"}},
		{rejected("c", phase.ReasonTooLarge), []string{"wait 3 400ms"}},
		// Budget 3 used: d is never offered.
		{evTimer{id: 3}, []string{"finish error no node could run the job"}},
	})
	assert.Len(t, s.attempts, 3)
}

// invalid_request says the job is bad: nobody else is asked.
func TestSchedNotRetryableEndsTheRun(t *testing.T) {
	s := newSched(cfg(1, 2, 5), nodes("a", "b", "c"))
	play(t, s, []string{"offer a b"}, []stepCase{
		{rejected("a", phase.ReasonInvalidRequest), []string{"withdraw b", "finish error job refused by " + peer.ID("a").String() + ": rejected invalid_request ()"}},
	})
}

// Replicas: k seekers at once; agreement of k ends the run.
func TestSchedReplicasAgree(t *testing.T) {
	s := newSched(cfg(2, 1, 5), nodes("a", "b", "c"))
	play(t, s, []string{"offer a", "offer b"}, []stepCase{
		{accepted("a"), []string{"proceed a"}},
		{accepted("b"), []string{"proceed b"}},
		{ok("a", "x"), nil},
		{ok("b", "x"), []string{"finish ok a b"}},
	})
}

// A disagreement brings in another node while a majority is possible.
func TestSchedReplicasMajority(t *testing.T) {
	s := newSched(cfg(2, 1, 5), nodes("liar", "h1", "h2"))
	play(t, s, []string{"offer liar", "offer h1"}, []stepCase{
		{accepted("liar"), []string{"proceed liar"}},
		{accepted("h1"), []string{"proceed h1"}},
		{ok("liar", "lie"), nil},
		{ok("h1", "x"), []string{"offer h2"}},
		{accepted("h2"), []string{"proceed h2"}},
		{ok("h2", "x"), []string{"finish ok h1 h2"}},
	})
}

func TestSchedReplicasDisagreeWithNoOneLeft(t *testing.T) {
	s := newSched(cfg(2, 1, 5), nodes("a", "b"))
	play(t, s, []string{"offer a", "offer b"}, []stepCase{
		{accepted("a"), []string{"proceed a"}},
		{accepted("b"), []string{"proceed b"}},
		{ok("a", "x"), nil},
		{ok("b", "y"), []string{"finish error replicas disagree: 2 verified results, no 2 of them alike"}},
	})
}

func TestSchedReplicasTooFewNodes(t *testing.T) {
	s := newSched(cfg(2, 1, 5), nodes("a", "b"))
	play(t, s, []string{"offer a", "offer b"}, []stepCase{
		{accepted("a"), []string{"proceed a"}},
		{rejected("b", phase.ReasonQueueFull), []string{"wait 1 100ms"}},
		{ok("a", "x"), nil},
		{evTimer{id: 1}, []string{"finish error no node could run the job: only 1 of 2 replicas produced a verified result"}},
	})
}

// The deadline (or the caller) stops the run: everything out is withdrawn
// and later events are only recorded.
func TestSchedStop(t *testing.T) {
	s := newSched(cfg(1, 2, 5), nodes("a", "b"))
	stop := errors.New("overall deadline of 1s passed")
	play(t, s, []string{"offer a b"}, []stepCase{
		{accepted("a"), []string{"withdraw b", "proceed a"}},
		{evStop{err: stop}, []string{"withdraw a", "finish error overall deadline of 1s passed"}},
		{evDone{node: "a", att: Attempt{Node: "a", Outcome: AttemptCancelled}}, nil},
	})
	require.Len(t, s.attempts, 1)
	assert.Equal(t, AttemptCancelled, s.attempts[0].Outcome)
}

// A hedge: an attempt that runs past hedgeAfter starts one more round; the
// first verified result wins and the slow attempt is withdrawn.
func TestSchedHedge(t *testing.T) {
	c := cfg(1, 1, 5)
	c.hedgeAfter = 2 * time.Second
	s := newSched(c, nodes("slow", "fast", "spare"))
	play(t, s, []string{"offer slow"}, []stepCase{
		{accepted("slow"), []string{"proceed slow", "wait 1 2s"}},
		{evSent{node: "slow"}, []string{"wait 2 2s"}}, // the clock starts again with the payload sent
		{evTimer{id: 1}, nil},                         // stale
		{evTimer{id: 2}, []string{"offer fast"}},
		{accepted("fast"), []string{"proceed fast", "wait 3 2s"}},
		{evSent{node: "fast", progressMS: 2000}, []string{"wait 4 3s"}}, // 1.5 promised intervals
		{ok("fast", "x"), []string{"withdraw slow", "finish ok fast"}},
	})
	// A hedge timer that fires after its attempt ended is stale.
	s2 := newSched(c, nodes("a", "b"))
	play(t, s2, []string{"offer a"}, []stepCase{
		{accepted("a"), []string{"proceed a", "wait 1 2s"}},
		{failed("a"), []string{"wait 2 100ms"}},
		{evTimer{id: 1}, nil},
		{evTimer{id: 2}, []string{"offer b"}},
	})
}

// An upload that keeps going is not hedged, however long it takes: each
// sign that the node took more of the payload starts the hedge clock again.
// A node that stops taking it is hedged hedgeAfter after the last sign, and
// once the payload is sent, signs of upload no longer count.
func TestSchedNoHedgeWhileUploading(t *testing.T) {
	c := cfg(1, 1, 5)
	c.hedgeAfter = 2 * time.Second
	s := newSched(c, nodes("big", "spare"))
	play(t, s, []string{"offer big"}, []stepCase{
		{accepted("big"), []string{"proceed big", "wait 1 2s"}},
		{evUploading{node: "big"}, []string{"wait 2 2s"}},
		{evTimer{id: 1}, nil}, // stale: the upload went on
		{evUploading{node: "big"}, []string{"wait 3 2s"}},
		{evTimer{id: 2}, nil},
		{evUploading{node: "spare"}, nil}, // not running: ignored
		{evSent{node: "big"}, []string{"wait 4 2s"}},
		{evUploading{node: "big"}, nil}, // sent: the node runs the job now
		{evTimer{id: 3}, nil},
		{evTimer{id: 4}, []string{"offer spare"}},
		{evUploading{node: "big"}, nil}, // hedged already
		{ok("big", "x"), []string{"withdraw spare", "finish ok big"}},
	})

	// A node that stops reading the payload: hedged after the last sign.
	s2 := newSched(c, nodes("stuck", "spare"))
	play(t, s2, []string{"offer stuck"}, []stepCase{
		{accepted("stuck"), []string{"proceed stuck", "wait 1 2s"}},
		{evUploading{node: "stuck"}, []string{"wait 2 2s"}},
		{evTimer{id: 2}, []string{"offer spare"}},
		{accepted("spare"), []string{"proceed spare", "wait 3 2s"}},
		{evUploading{node: "stuck"}, nil}, // hedged already: no new clock
		{ok("spare", "x"), []string{"withdraw stuck", "finish ok spare"}},
	})
}

// A node that has shown progress is alive: its hedge timer starts no
// round (a stall would be caught by the stall timeout instead).
func TestSchedNoHedgeAfterProgress(t *testing.T) {
	c := cfg(1, 1, 5)
	c.hedgeAfter = 2 * time.Second
	s := newSched(c, nodes("busy", "spare"))
	play(t, s, []string{"offer busy"}, []stepCase{
		{accepted("busy"), []string{"proceed busy", "wait 1 2s"}},
		{evProgress{node: "busy"}, nil},
		{evSent{node: "busy"}, nil}, // alive already: no new hedge clock
		{evTimer{id: 1}, nil},
		{evProgress{node: "spare"}, nil}, // not running: ignored
		{ok("busy", "x"), []string{"finish ok busy"}},
	})
}

// A round that starts with a trusted node does not pair it with a suspect
// one; suspects are still offered, after.
func TestSchedSuspectsNotRacedAgainstTrusted(t *testing.T) {
	c := cfg(1, 2, 5)
	c.suspect = func(id peer.ID) bool { return id == "bad1" || id == "bad2" }
	s := newSched(c, nodes("good", "bad1", "bad2"))
	play(t, s, []string{"offer good"}, []stepCase{
		{rejected("good", "queue_full"), []string{"wait 1 100ms"}},
		{evTimer{id: 1}, []string{"offer bad1 bad2"}},
	})
}

func staggered(replicas, fanout, budget int) schedConfig {
	c := cfg(replicas, fanout, budget)
	c.stagger = 250 * time.Millisecond
	return c
}

// With a stagger, a round's offers go out one at a time: the next when
// the ones out have not answered in the stagger, or at once when they all
// said no. The first to accept still wins; nodes not yet offered go back
// to the queue, unspent, and need no withdrawal.
func TestSchedStaggeredOffers(t *testing.T) {
	cases := []struct {
		name  string
		cfg   schedConfig
		start []string
		steps []stepCase
		spent int
	}{
		{"first accepts in time", staggered(1, 2, 5), []string{"offer a", "wait 1 250ms"}, []stepCase{
			{accepted("a"), []string{"proceed a"}},
			{evTimer{id: 1}, nil}, // the round is decided: no second offer
			{ok("a", "x"), []string{"finish ok a"}},
		}, 1},
		{"first slow, second wins", staggered(1, 3, 5), []string{"offer a", "wait 1 250ms"}, []stepCase{
			{evTimer{id: 1}, []string{"offer b", "wait 2 250ms"}},
			{accepted("b"), []string{"withdraw a", "proceed b"}},
			{evTimer{id: 2}, nil},
			{failed("b"), []string{"wait 3 100ms"}},
			{evTimer{id: 3}, []string{"offer a", "wait 4 250ms"}}, // a was asked, not tried; c was never asked
			{rejected("a", "queue_full"), []string{"offer c", "wait 5 250ms"}},
			{accepted("c"), []string{"proceed c"}}, // d, staged, goes back unasked
			{ok("c", "x"), []string{"finish ok c"}},
		}, 3},
		{"a refusal sends the next at once", staggered(1, 2, 5), []string{"offer a", "wait 1 250ms"}, []stepCase{
			{rejected("a", "queue_full"), []string{"offer b"}},
			{evTimer{id: 1}, nil}, // stale: b was sent already
			{rejected("b", "queue_full"), []string{"wait 2 100ms"}},
			{evTimer{id: 2}, []string{"offer c", "wait 3 250ms"}},
		}, 2},
		{"staged nodes hold the budget", staggered(1, 3, 2), []string{"offer a", "wait 1 250ms"}, []stepCase{
			{evTimer{id: 1}, []string{"offer b"}}, // the budget of 2 allows no third
			{rejected("a", "queue_full"), nil},
			{rejected("b", "queue_full"), []string{"wait 2 100ms"}},
			{evTimer{id: 2}, []string{"finish error no node could run the job"}},
		}, 2},
		{"no hedge from a stale stagger wait", func() schedConfig { c := staggered(1, 2, 5); c.hedgeAfter = 0; return c }(),
			[]string{"offer a", "wait 1 250ms"}, []stepCase{
				{accepted("a"), []string{"proceed a"}},
				{evTimer{id: 1}, nil},
				{ok("a", "x"), []string{"finish ok a"}},
			}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSched(tc.cfg, nodes("a", "b", "c", "d"))
			play(t, s, tc.start, tc.steps)
			assert.Equal(t, tc.spent, s.spent)
		})
	}
}

// Nothing to offer at all.
func TestSchedNoCandidates(t *testing.T) {
	s := newSched(cfg(1, 3, 5), nil)
	assert.Equal(t, []string{"finish error no node could run the job: no candidate could be offered the job"}, show(s.start()))
}

// Jitter keeps a backoff within [d/2, d].
func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{100 * time.Millisecond, 2 * time.Second} {
		for range 100 {
			j := jitter(d)
			assert.GreaterOrEqual(t, j, d/2)
			assert.LessOrEqual(t, j, d)
		}
	}
}

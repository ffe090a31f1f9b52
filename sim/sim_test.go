package sim

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/scripted"
)

// A 50-node network in virtual time: every job succeeds, with the honest
// answer. The wall time it took is logged (the target is under 30 s; a
// timing is not asserted in a unit test).
func TestFiftyNodesEveryJobSucceeds(t *testing.T) {
	sc := small(50, 50)
	sc.Clients = 2
	sc.Network.BootstrapNodes = 3
	sc.Node.BucketSize, sc.Node.DHTConcurrency = 10, 3
	sc.Node.AutoRefresh, sc.Node.RefreshAtJoin = false, false
	sc.Workload.Mix = append(sc.Workload.Mix, Module{Module: "exit7", Weight: 1}, Module{Module: "trap", Weight: 1})
	start := wallNow()
	rep := runVirtual(t, sc)
	t.Logf("50-node virtual-time run: %.1f s wall", (wallNow() - start).Seconds())

	assert.True(t, rep.Converged, "every node published its record before the workload")
	assert.Equal(t, 50, rep.Jobs)
	assert.Equal(t, 50, rep.Succeeded, "failures: %v", rep.FailuresByReason)
	assert.Equal(t, 1.0, rep.SuccessRate)
	assert.Zero(t, rep.HonestMismatches, "every accepted result is the honest answer")
	assert.Zero(t, rep.BadResultsAccepted)
	assert.Zero(t, rep.HonestResultsRejected)
	assert.Equal(t, 50, rep.DiscoveryLatencyMS.N)
	assert.Positive(t, rep.JobLatencyMS.P50)
	assert.Positive(t, rep.Messages)
	for _, j := range rep.Records {
		assert.True(t, j.Correct, "job %d (%s) from node %d", j.ID, j.Module, j.Node)
		assert.GreaterOrEqual(t, j.Node, 0)
		assert.Less(t, j.Node, 50, "results come from servers")
	}
	outcomes := map[string]bool{}
	for _, j := range rep.Records {
		outcomes[j.Outcome] = true
	}
	assert.True(t, outcomes[phase.OutcomeExited], "exit7 and hello exit")
	assert.True(t, outcomes[phase.OutcomeTrapped], "a trap is a result, not a failure")
}

// A partition cuts off the servers clients prefer, mid-run. Jobs fail
// over to the reachable side (discovery stops returning the cut-off
// nodes, or the client moves past them), and after the heal every cut-off
// node answers again. (Discovery stalls while connections to the cut-off nodes still
// look alive, up to QUIC's idle timeout; the partition outlasts that.)
func TestPartitionFailsOverThenHeals(t *testing.T) {
	sc := small(15, 45)
	sc.Network.BootstrapNodes = 2
	sc.Workload.Duration = Duration(150 * time.Second)
	// Discovery may still return cut-off nodes (from DHT copies of their
	// records); enough attempts let a job get past all of them.
	sc.Workload.Attempts = 10
	// Clients spread jobs over every capable node (a salted tie-break and
	// who accepts first), so which nodes ran the ~12 jobs before the
	// partition varies from run to run: cutting off 7 of the 15 makes "none
	// of them was used before" a (8/15)^12 ≈ 0.05 % event.
	sc.Faults = []Fault{{Kind: FaultPartition, At: Duration(40 * time.Second), Duration: Duration(70 * time.Second), Nodes: []int{2, 4, 6, 8, 10, 12, 14}}}
	plan := MakePlan(sc)
	require.Len(t, plan.Events, 2)
	cut := plan.Events[0].Nodes
	from, to := plan.Events[0].At, plan.Events[1].At

	rep := runVirtual(t, sc)
	assert.Equal(t, rep.Jobs, rep.Succeeded, "every job fails over or waits out the partition: %v", rep.FailuresByReason)
	assert.Positive(t, rep.PacketsDropped, "the partition dropped packets")
	var before, during int // jobs whose result came from a cut-off node
	var ranDuring, afterHeal int
	for _, j := range rep.Records {
		fromCut := slices.Contains(cut, j.Node)
		switch {
		case j.FoundAt < from:
			if fromCut {
				before++
			}
		case j.FoundAt < to:
			// Discovery during the partition leaves the cut-off nodes out.
			ranDuring++
			assert.False(t, fromCut, "job %d, whose discovery ended during the partition, ran on cut-off node %d", j.ID, j.Node)
			if fromCut {
				during++
			}
		case j.SubmittedAt > to:
			afterHeal++
			assert.True(t, j.OK, "job %d after the heal", j.ID)
		}
	}
	assert.Positive(t, before, "before the partition clients used the nodes it cuts off")
	assert.Positive(t, ranDuring, "jobs found their nodes during the partition")
	assert.Zero(t, during, "during the partition they failed over to the reachable side")
	assert.Positive(t, afterHeal, "jobs ran after the heal")

	healed := false
	for _, e := range rep.Timeline {
		if strings.HasPrefix(e.What, "after heal:") {
			healed = true
			assert.True(t, strings.HasPrefix(e.What, "after heal: "+strconv.Itoa(len(cut))+" of "+strconv.Itoa(len(cut))),
				"every cut-off node answers after the heal: %s", e.What)
		}
	}
	assert.True(t, healed, "the heal was probed: %v", rep.Timeline)
}

// Each misbehaviour, alone in a small network: it is caught (by the
// client's receipt checks, by replicas where only replicas can catch it,
// or by the client moving on), no wrong result is accepted, and no honest
// result is rejected.
func TestMisbehavioursAreCaught(t *testing.T) {
	tests := []struct {
		behaviour string
		replicas  int
		caughtAs  string // attempt outcome at the liar
		reason    string // attempt reason, when it says more
	}{
		{scripted.WrongOutput, 2, client.AttemptDisagreed, ""},
		{scripted.TruncateOutput, 2, client.AttemptDisagreed, ""},
		{scripted.ForgedReceipt, 1, client.AttemptBadReceipt, ""},
		{scripted.ReplayedReceipt, 1, client.AttemptBadReceipt, ""},
		{scripted.ForeignReceipt, 1, client.AttemptBadReceipt, ""},
		{scripted.LyingCaps, 1, client.AttemptRejected, phase.ReasonInsufficientResources},
		{scripted.AcceptThenStall, 1, client.AttemptTimeout, ""},
		{scripted.RejectAll, 1, client.AttemptRejected, phase.ReasonQueueFull},
	}
	for _, tt := range tests {
		t.Run(tt.behaviour, func(t *testing.T) {
			// Ten jobs: a replayed receipt shows only from the liar's
			// second job on, and with five the liar once won only one race.
			sc := small(6, 10)
			sc.Network.BootstrapNodes = 2
			sc.Workload.Duration = Duration(20 * time.Second)
			sc.Workload.Replicas = tt.replicas
			sc.Workload.AttemptTimeout = Duration(5 * time.Second)
			sc.Workload.Fanout = sc.Nodes // every node is offered every job, at once: the fastest to accept wins
			sc.Workload.OfferStagger = Duration(-1)
			// One liar, placed close to everyone so that it wins the race
			// to accept: the worst case for the client.
			sc.Misbehaving = Misbehaving{Fraction: 1.0 / 6, Behaviours: []string{tt.behaviour}, LatencyFactor: 0.1}
			rep := runVirtual(t, sc)

			require.Equal(t, 1, rep.Misbehaving)
			assert.Equal(t, rep.Jobs, rep.Succeeded, "every job still succeeds: %v", rep.FailuresByReason)
			assert.Zero(t, rep.BadResultsAccepted, "no wrong result is accepted")
			assert.Zero(t, rep.HonestResultsRejected, "no honest result is rejected")
			assert.Zero(t, rep.HonestMismatches)
			st := rep.Behaviours[tt.behaviour]
			assert.Positive(t, st.Caught, "the %s node was caught: %+v", tt.behaviour, st)
			seen := false
			for _, j := range rep.Records {
				for _, a := range j.Attempts {
					if a.Liar == tt.behaviour && a.Outcome == tt.caughtAs && (tt.reason == "" || a.Reason == tt.reason) {
						seen = true
					}
				}
			}
			assert.True(t, seen, "an attempt at the liar ended %s %s", tt.caughtAs, tt.reason)
			if tt.caughtAs == client.AttemptBadReceipt || tt.caughtAs == client.AttemptDisagreed {
				assert.Positive(t, rep.BadResultsDetected)
			}
		})
	}
}

// The same seed gives the same plan and the same outcome counts, faults
// and a misbehaving node included.
func TestSameSeedSameOutcome(t *testing.T) {
	sc := small(10, 12)
	sc.Network.BootstrapNodes = 2
	sc.Workload.Duration = Duration(30 * time.Second)
	sc.Misbehaving = Misbehaving{Fraction: 0.1, Behaviours: []string{scripted.RejectAll}, LatencyFactor: 1}
	sc.Faults = []Fault{{Kind: FaultCrash, At: Duration(5 * time.Second), Duration: Duration(10 * time.Second), Count: 2}}
	counts := func(rep *Report) map[string]int {
		out := map[string]int{"jobs": rep.Jobs, "succeeded": rep.Succeeded, "failed": rep.Failed,
			"bad_accepted": rep.BadResultsAccepted, "honest_rejected": rep.HonestResultsRejected}
		for k, v := range rep.FailuresByReason {
			out["failed_"+k] = v
		}
		return out
	}
	first := runVirtual(t, sc)
	second := runVirtual(t, sc)
	assert.Equal(t, MakePlan(sc), MakePlan(sc))
	assert.Equal(t, first.Schedule, second.Schedule)
	assert.Equal(t, counts(first), counts(second))
	assert.Contains(t, strings.Join(first.Schedule, "\n"), "crash")
}

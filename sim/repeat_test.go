package sim

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInterval(t *testing.T) {
	tests := []struct {
		name           string
		vs             []float64
		mean, half, sd float64
	}{
		{"one run: no interval", []float64{5}, 5, 0, 0},
		{"all agree", []float64{7, 7, 7, 7}, 7, 0, 0},
		{"three runs", []float64{1, 2, 3}, 2, 4.303 / math.Sqrt(3), 1},
		{"five runs", []float64{0, 1, 2, 1, 1}, 1, 2.776 * math.Sqrt(0.5) / math.Sqrt(5), math.Sqrt(0.5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv := interval(tt.vs)
			assert.InDelta(t, tt.mean, iv.Mean, 1e-9)
			assert.InDelta(t, tt.sd, iv.SD, 1e-9)
			assert.InDelta(t, tt.mean-tt.half, iv.Lo, 1e-9)
			assert.InDelta(t, tt.mean+tt.half, iv.Hi, 1e-9)
		})
	}
}

func TestAggregateFlattensAndFlagsAnotherPlan(t *testing.T) {
	a := &Report{Scenario: "s", Seed: 3, Plan: "p1", Jobs: 10, Succeeded: 10, Converged: true,
		FailuresByReason: map[string]int{}, JobLatencyMS: Percentiles{P50: 100}}
	b := &Report{Scenario: "s", Seed: 3, Plan: "p1", Jobs: 10, Succeeded: 8, Failed: 2, Converged: false,
		FailuresByReason: map[string]int{"exhausted": 2}, JobLatencyMS: Percentiles{P50: 300}}
	agg, err := Aggregate([]*Report{a, b})
	require.NoError(t, err)
	assert.True(t, agg.PlanIdentical)
	assert.Equal(t, []float64{10, 8}, agg.Metrics["succeeded"].Values)
	assert.Equal(t, []float64{0, 2}, agg.Metrics["failures_by_reason.exhausted"].Values, "a count missing from a run is 0 there")
	assert.Equal(t, []float64{1, 0}, agg.Metrics["converged"].Values)
	assert.InDelta(t, 200, agg.Metrics["job_latency_ms.p50"].Mean, 1e-9)
	assert.NotContains(t, agg.Metrics, "seed")
	assert.Contains(t, agg.Summary(), "job_latency_ms.p50")

	c := *b
	c.Plan = "p2"
	agg, err = Aggregate([]*Report{a, &c})
	require.NoError(t, err)
	assert.False(t, agg.PlanIdentical)
	assert.Contains(t, agg.Summary(), "PLAN DIFFERED")

	c.Seed = 4
	_, err = Aggregate([]*Report{a, &c})
	assert.ErrorContains(t, err, "seed 4")
	_, err = Aggregate(nil)
	assert.Error(t, err)
}

// The same plan, run again: the plan is identical in every run, and a
// further run's outcome counts fall within the 95 % prediction interval
// the earlier runs give (mean ± t·sd·√(1+1/n)).
func TestRepeatSamePlanOutcomesWithinInterval(t *testing.T) {
	sc := small(4, 6)
	sc.Workload.Mix = []Module{{Module: "echo", Weight: 1}, {Module: "tiny", Weight: 1}}
	var reps []*Report
	for range 3 {
		reps = append(reps, runVirtual(t, sc))
	}
	agg, err := Aggregate(reps)
	require.NoError(t, err)
	assert.True(t, agg.PlanIdentical)
	assert.Equal(t, MakePlan(sc).Digest(), agg.Plan)

	next := runVirtual(t, sc)
	require.Equal(t, agg.Plan, next.Plan)
	got := map[string]float64{"succeeded": float64(next.Succeeded), "failed": float64(next.Failed),
		"bad_results_detected": float64(next.BadResultsDetected), "bad_results_accepted": float64(next.BadResultsAccepted),
		"honest_results_rejected": float64(next.HonestResultsRejected), "honest_mismatches": float64(next.HonestMismatches)}
	for k, v := range got {
		iv := agg.Metrics[k]
		half := tQuantile975(agg.Runs-1) * iv.SD * math.Sqrt(1+1/float64(agg.Runs))
		assert.GreaterOrEqual(t, v, iv.Mean-half-1e-9, k)
		assert.LessOrEqual(t, v, iv.Mean+half+1e-9, k)
	}
	assert.Equal(t, float64(sc.Workload.Jobs), agg.Metrics["succeeded"].Mean, "a fault-free run finishes every job")
}

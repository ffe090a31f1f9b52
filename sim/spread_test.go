package sim

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name     string
		perNode  map[int]int
		servers  int
		used     int
		max      int
		overMean float64
		share    float64
		gini     float64
		p50, p99 float64
	}{
		{"even", map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, 4, 4, 2, 1, 0.25, 0, 2, 2},
		{"one node ran all", map[int]int{3: 8}, 4, 1, 8, 4, 1, 0.75, 0, 8},
		{"idle servers count", map[int]int{0: 3, 1: 1}, 4, 2, 3, 3, 0.75, 0.63, 0, 3},
		{"a joiner past the servers", map[int]int{0: 1, 5: 1}, 4, 2, 1, 3, 0.5, 0.67, 0, 1},
		{"nothing", map[int]int{}, 3, 0, 0, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spreadOf(tt.perNode, tt.servers)
			assert.Equal(t, tt.used, s.NodesUsed)
			assert.Equal(t, tt.max, s.MaxJobs)
			assert.InDelta(t, tt.overMean, s.MaxOverMean, 0.01)
			assert.InDelta(t, tt.share, s.MaxShare, 0.01)
			assert.InDelta(t, tt.gini, s.Gini, 0.01)
			assert.InDelta(t, tt.p50, s.P50Jobs, 0.01)
			assert.InDelta(t, tt.p99, s.P99Jobs, 0.01)
			total := 0
			for _, c := range s.PerNode {
				total += c
			}
			assert.Equal(t, s.Results, total)
		})
	}
}

func TestByLatencyQuarter(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		perNode map[int]int
		latency []time.Duration
		want    []int
	}{
		{"nearest win", map[int]int{0: 5, 1: 3, 2: 1, 3: 0}, ms(10, 20, 30, 40), []int{5, 3, 1, 0}},
		{"slot order is not latency order", map[int]int{0: 5, 3: 2}, ms(40, 20, 30, 10), []int{2, 0, 0, 5}},
		{"eight servers, two a quarter", map[int]int{0: 1, 1: 1, 6: 4, 7: 1}, ms(1, 2, 3, 4, 5, 6, 7, 8), []int{2, 0, 0, 5}},
		{"joiners past the servers are left out", map[int]int{0: 1, 9: 7}, ms(1, 2, 3, 4), []int{1, 0, 0, 0}},
		{"too few servers", map[int]int{0: 1}, ms(1, 2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, byLatencyQuarter(tt.perNode, tt.latency))
		})
	}
}

// Every plot is written, the jobs-per-node plot included, from a report
// with results and from an empty one.
func TestWritePlotsIncludesJobsPerNode(t *testing.T) {
	for name, rep := range map[string]*Report{
		"results": {Spread: spreadOf(map[int]int{0: 5, 1: 1, 2: 2}, 5), Records: []JobRecord{{OK: true, Latency: 1e9}}},
		"empty":   {},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			names, err := rep.WritePlots(dir)
			require.NoError(t, err)
			assert.Contains(t, names, PlotJobsPerNode)
			svg, err := os.ReadFile(filepath.Join(dir, PlotJobsPerNode))
			require.NoError(t, err)
			assert.Contains(t, string(svg), "Accepted results per node")
		})
	}
}

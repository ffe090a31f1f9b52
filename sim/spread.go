package sim

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Spread is how evenly accepted results were spread over the servers: a
// network whose clients all pick the same few nodes shows few nodes used,
// a large max share and a Gini near 1.
type Spread struct {
	Servers     int     `json:"servers"`       // nodes that could run jobs (the plan's servers, plus any that joined and ran one)
	NodesUsed   int     `json:"nodes_used"`    // servers with at least one accepted result
	Results     int     `json:"results"`       // accepted results (each agreeing replica counts)
	MaxJobs     int     `json:"max_jobs"`      // most accepted results from one node
	MeanJobs    float64 `json:"mean_jobs"`     // results / servers
	MaxOverMean float64 `json:"max_over_mean"` // MaxJobs / MeanJobs
	MaxShare    float64 `json:"max_share"`     // MaxJobs / Results
	Gini        float64 `json:"gini"`          // of results per server, idle servers included: 0 even, → 1 one node ran all
	P50Jobs     float64 `json:"p50_jobs"`      // results per server, median (idle servers included)
	P99Jobs     float64 `json:"p99_jobs"`
	PerNode     []int   `json:"per_node"` // results per server slot, in slot order
	// ByLatencyQuarter is the results of the servers in each quarter of
	// the plan's access latencies, nearest quarter first. Even quarters
	// mean the way clients pick nodes does not favour the nodes nearest
	// them; falling counts mean the nearest nodes win the races.
	ByLatencyQuarter []int `json:"by_latency_quarter,omitempty"`
}

// spreadOf computes the spread from results per server slot; servers is
// how many slots could have run jobs (slots past it that appear in
// perNode are counted too).
func spreadOf(perNode map[int]int, servers int) Spread {
	n := servers
	for slot := range perNode {
		n = max(n, slot+1)
	}
	s := Spread{Servers: n, PerNode: make([]int, n)}
	for slot, c := range perNode {
		if slot < 0 {
			continue
		}
		s.PerNode[slot] = c
		s.Results += c
		s.MaxJobs = max(s.MaxJobs, c)
		if c > 0 {
			s.NodesUsed++
		}
	}
	if n == 0 || s.Results == 0 {
		return s
	}
	s.MeanJobs = round2(float64(s.Results) / float64(n))
	s.MaxOverMean = round2(float64(s.MaxJobs) * float64(n) / float64(s.Results))
	s.MaxShare = round2(float64(s.MaxJobs) / float64(s.Results))
	sorted := slices.Clone(s.PerNode)
	slices.Sort(sorted)
	// Gini = Σ (2i - n - 1) x_i / (n Σ x), x sorted ascending, i from 1.
	var num float64
	for i, x := range sorted {
		num += float64(2*(i+1)-n-1) * float64(x)
	}
	s.Gini = round2(num / (float64(n) * float64(s.Results)))
	s.P50Jobs = float64(sorted[quantileIndex(n, 0.50)])
	s.P99Jobs = float64(sorted[quantileIndex(n, 0.99)])
	return s
}

// quantileIndex is the nearest-rank index of quantile q in n sorted values.
func quantileIndex(n int, q float64) int {
	return min(n-1, max(0, int(math.Ceil(q*float64(n)))-1))
}

// byLatencyQuarter sums the results per server slot (perNode) over the
// quarters of the servers' access latencies (latency[slot]), nearest
// first; slots without a latency (joiners) are left out. Nil with fewer
// than four servers.
func byLatencyQuarter(perNode map[int]int, latency []time.Duration) []int {
	n := len(latency)
	if n < 4 {
		return nil
	}
	slots := make([]int, n)
	for i := range slots {
		slots[i] = i
	}
	slices.SortStableFunc(slots, func(a, b int) int { return cmp.Compare(latency[a], latency[b]) })
	out := make([]int, 4)
	for rank, slot := range slots {
		out[rank*4/n] += perNode[slot]
	}
	return out
}

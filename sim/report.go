package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/client"
)

// Report is what a run did. Its JSON form is plasmsim's --json output
// and report.json.
type Report struct {
	Scenario    string `json:"scenario"`
	Seed        uint64 `json:"seed"`
	Plan        string `json:"plan_sha256"` // Plan.Digest of what ran
	Time        string `json:"time"`
	Nodes       int    `json:"nodes"`
	Clients     int    `json:"clients"`
	Misbehaving int    `json:"misbehaving"`
	Replicas    int    `json:"replicas"`

	Jobs             int            `json:"jobs"`
	Succeeded        int            `json:"succeeded"`
	Failed           int            `json:"failed"`
	SuccessRate      float64        `json:"success_rate"`
	FailuresByReason map[string]int `json:"failures_by_reason"`
	Retries          int            `json:"retries"`
	Attempts         map[string]int `json:"attempts_by_outcome"`

	// A bad result is a misbehaving node's: detected when the client
	// rejected its receipt or replicas outvoted it, accepted when the
	// job's result differs from the honest answer.
	BadResultsDetected    int                       `json:"bad_results_detected"`
	BadResultsAccepted    int                       `json:"bad_results_accepted"`
	HonestResultsRejected int                       `json:"honest_results_rejected"`
	HonestMismatches      int                       `json:"honest_mismatches"` // an honest node's accepted result differed from the oracle
	Behaviours            map[string]BehaviourStats `json:"behaviours,omitempty"`

	JobLatencyMS       Percentiles `json:"job_latency_ms"`
	DiscoveryLatencyMS Percentiles `json:"discovery_latency_ms"`
	Discoveries        int         `json:"discoveries"`
	DiscoveryFailures  int         `json:"discovery_failures"`
	NodesUsed          int         `json:"nodes_used"`        // distinct nodes whose results were accepted
	MaxJobsPerNode     int         `json:"max_jobs_per_node"` // most accepted results from one node
	Spread             Spread      `json:"spread"`            // accepted results per node: how evenly the load spread
	Messages           int64       `json:"messages"`          // packets sent by all nodes
	Bytes              int64       `json:"bytes"`             // bytes sent by all nodes
	PacketsDropped     int64       `json:"packets_dropped"`   // by faults
	Converged          bool        `json:"converged"`         // every server published before the workload
	Published          int         `json:"published"`         // servers that had published by then
	Goroutines         int         `json:"goroutines"`        // at the end of the workload
	// Connections open per node, after boot and at the end of the
	// workload: the cost driver at scale (each is a QUIC connection with
	// its timers and buffers).
	ConnsAfterBoot ConnStats `json:"connections_after_boot"`
	ConnsAtEnd     ConnStats `json:"connections_at_end"`

	Sim         SimTimes    `json:"sim_seconds"`
	Wall        WallTimes   `json:"wall_phases_seconds"`
	WallSeconds float64     `json:"wall_seconds"`
	PeakRSSMB   float64     `json:"peak_rss_mb"`
	Memory      MemoryStats `json:"memory"`

	Schedule []string        `json:"schedule"`
	Timeline []TimelineEvent `json:"timeline"`
	Replay   string          `json:"replay"`

	Traffic Traffic      `json:"-"`
	Records []JobRecord  `json:"-"`
	finds   []findSample // for plots
}

// BehaviourStats is what one misbehaviour achieved.
type BehaviourStats struct {
	Nodes       int `json:"nodes"`
	Offered     int `json:"offered"`      // attempts that reached these nodes (withdrawn offers not counted)
	Caught      int `json:"caught"`       // attempts that failed, were rejected or outvoted
	Accepted    int `json:"accepted"`     // results of theirs that jobs accepted (correct ones included)
	BadAccepted int `json:"bad_accepted"` // results of theirs accepted though wrong
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// SimTimes are simulated (virtual-clock) durations.
type SimTimes struct {
	ConvergedSeconds float64 `json:"converged"` // from the first node's start
	WorkloadSeconds  float64 `json:"workload"`
}

// WallTimes are real durations of the run's phases.
type WallTimes struct {
	BootSeconds      float64 `json:"boot"`
	ConvergedSeconds float64 `json:"converged"` // from the start of the run
	WorkloadSeconds  float64 `json:"workload"`
	ShutdownSeconds  float64 `json:"shutdown"`
}

// ConnStats are the open connections of the up nodes at one moment.
type ConnStats struct {
	Mean    float64 `json:"mean"`     // per server node, bootstrap nodes excluded
	Max     int     `json:"max"`      // on one server node, bootstrap nodes excluded
	HubMean float64 `json:"hub_mean"` // per bootstrap node or client
}

// MemoryStats are the process's memory, to size runs by.
type MemoryStats struct {
	BaselineRSSMB  float64 `json:"baseline_rss_mb"`   // before any node
	BootRSSMB      float64 `json:"after_boot_rss_mb"` // every node joined and published
	PerNodeRSSMB   float64 `json:"per_node_rss_mb"`   // (after boot - baseline) / nodes
	BootHeapMB     float64 `json:"after_boot_heap_mb"`
	PerNodeHeapMB  float64 `json:"per_node_heap_mb"`
	BootGoroutines int     `json:"after_boot_goroutines"`
	// Where the after-boot RSS is, by Go's own accounting (MB): what Go's
	// memory limit counts beside the live heap squeezes the heap's goal.
	BootHeapUnusedMB float64 `json:"after_boot_heap_unused_mb"` // room in heap spans in use: fragmentation
	BootHeapFreeMB   float64 `json:"after_boot_heap_free_mb"`   // heap spans free but not returned to the OS
	BootStacksMB     float64 `json:"after_boot_stacks_mb"`      // goroutine stacks
	BootRuntimeMB    float64 `json:"after_boot_runtime_mb"`     // GC and allocator metadata, other runtime memory
	BootOutsideGoMB  float64 `json:"after_boot_outside_go_mb"`  // RSS Go did not allocate (mmaps such as compiled wasm code)
}

type memSample struct {
	rss, hwm float64 // MB
	heap     float64 // MB, after a GC
	ms       runtime.MemStats
}

func readMemory() memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: float64(ms.HeapAlloc) / (1 << 20), ms: ms}
	s.rss, s.hwm = procStatus()
	return s
}

// procStatus reads VmRSS and VmHWM (peak RSS) in MB from /proc; zeros
// where there is no /proc.
func procStatus() (rss, hwm float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

func memoryAfterBoot(base memSample, nodes int) MemoryStats {
	now := readMemory()
	m := now.ms
	mb := func(b uint64) float64 { return round1(float64(b) / (1 << 20)) }
	return MemoryStats{
		BaselineRSSMB: round1(base.rss), BootRSSMB: round1(now.rss),
		PerNodeRSSMB: round2((now.rss - base.rss) / float64(max(nodes, 1))),
		BootHeapMB:   round1(now.heap), PerNodeHeapMB: round2((now.heap - base.heap) / float64(max(nodes, 1))),
		BootGoroutines:   runtime.NumGoroutine(),
		BootHeapUnusedMB: mb(m.HeapInuse - m.HeapAlloc),
		BootHeapFreeMB:   mb(m.HeapIdle - m.HeapReleased),
		BootStacksMB:     mb(m.StackInuse),
		BootRuntimeMB:    mb(m.Sys - m.HeapSys - m.StackSys),
		BootOutsideGoMB:  round1(max(now.rss-float64(m.Sys-m.HeapReleased)/(1<<20), 0)),
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// percentiles uses the nearest-rank method.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: ms(s[len(s)-1]), N: len(s)}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

// fill computes the report from what the run recorded.
func (r *runner) fill(rep *Report, o Options, wall time.Duration) {
	sc := r.sc
	r.stats.mu.Lock()
	jobs := slices.Clone(r.stats.jobs)
	finds := slices.Clone(r.stats.finds)
	rep.Timeline = slices.Clone(r.stats.timeline)
	r.stats.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })

	rep.Scenario, rep.Seed, rep.Time = sc.Name, sc.Seed, o.TimeMode
	rep.Nodes, rep.Clients, rep.Replicas = sc.Nodes, sc.Clients, sc.Workload.Replicas
	rep.Jobs = len(r.plan.Jobs)
	rep.FailuresByReason = map[string]int{}
	rep.Attempts = map[string]int{}
	rep.Behaviours = map[string]BehaviourStats{}
	for b, slots := range r.plan.Liars() {
		rep.Behaviours[b] = BehaviourStats{Nodes: len(slots)}
		rep.Misbehaving += len(slots)
	}
	var lat []time.Duration
	perNode := map[int]int{}
	for _, j := range jobs {
		if j.OK {
			rep.Succeeded++
			lat = append(lat, j.Latency)
			ran := j.Agreeing // every agreeing replica ran the job
			if len(ran) == 0 {
				ran = []int{j.Node}
			}
			for _, slot := range ran {
				perNode[slot]++
			}
		} else {
			rep.Failed++
			rep.FailuresByReason[j.Reason]++
		}
		rep.Retries += j.Retries
		if j.BadAccepted {
			rep.BadResultsAccepted++
		} else if j.OK && !j.Correct {
			rep.HonestMismatches++
		}
		for _, a := range j.Attempts {
			rep.Attempts[a.Outcome]++
			rejected := a.Outcome == client.AttemptBadReceipt || a.Outcome == client.AttemptDisagreed
			if a.Liar == "" {
				if rejected {
					rep.HonestResultsRejected++
				}
				continue
			}
			if rejected {
				rep.BadResultsDetected++
			}
			b := rep.Behaviours[a.Liar]
			if a.Outcome != client.AttemptCancelled {
				b.Offered++
			}
			if a.Outcome != client.AttemptOK && a.Outcome != client.AttemptCancelled {
				b.Caught++
			}
			rep.Behaviours[a.Liar] = b
		}
		if j.OK {
			for _, s := range j.Agreeing {
				if s >= 0 && r.plan.Slots[s].Behaviour != "" {
					b := rep.Behaviours[r.plan.Slots[s].Behaviour]
					b.Accepted++
					if j.BadAccepted {
						b.BadAccepted++
					}
					rep.Behaviours[r.plan.Slots[s].Behaviour] = b
				}
			}
		}
	}
	if rep.Jobs > 0 {
		rep.SuccessRate = math.Round(float64(rep.Succeeded)/float64(rep.Jobs)*10000) / 10000
	}
	rep.JobLatencyMS = percentiles(lat)
	var dl []time.Duration
	for _, f := range finds {
		dl = append(dl, f.Latency)
		if f.Err {
			rep.DiscoveryFailures++
		}
	}
	rep.Discoveries = len(finds)
	rep.DiscoveryLatencyMS = percentiles(dl)
	rep.Spread = spreadOf(perNode, r.plan.Servers)
	slotLat := make([]time.Duration, min(r.plan.Servers, len(r.plan.Slots)))
	for i := range slotLat {
		slotLat[i] = r.plan.Slots[i].Latency
	}
	rep.Spread.ByLatencyQuarter = byLatencyQuarter(perNode, slotLat)
	rep.NodesUsed, rep.MaxJobsPerNode = rep.Spread.NodesUsed, rep.Spread.MaxJobs
	rep.Messages, rep.Bytes, rep.PacketsDropped = rep.Traffic.Packets, rep.Traffic.Bytes, rep.Traffic.Dropped
	rep.WallSeconds = math.Round(wall.Seconds()*100) / 100
	_, hwm := procStatus()
	rep.PeakRSSMB = round1(hwm)
	rep.Schedule = r.plan.Describe()
	rep.Replay = o.Replay
	rep.Records = jobs
	rep.finds = finds
}

// JSON is the report as one indented JSON object.
func (rep *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	return append(b, '\n'), nil
}

// Summary is the one-screen text summary.
func (rep *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plasmsim %s  seed %d  %s time\n", rep.Scenario, rep.Seed, rep.Time)
	fmt.Fprintf(&b, "  nodes %d (+%d clients), misbehaving %d, replicas %d; converged %v (%d published) at %.1fs simulated\n",
		rep.Nodes, rep.Clients, rep.Misbehaving, rep.Replicas, rep.Converged, rep.Published, rep.Sim.ConvergedSeconds)
	fmt.Fprintf(&b, "  jobs %d: %d succeeded, %d failed — success rate %.2f%%", rep.Jobs, rep.Succeeded, rep.Failed, 100*rep.SuccessRate)
	if len(rep.FailuresByReason) > 0 {
		fmt.Fprintf(&b, " (%s)", kv(rep.FailuresByReason))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  job latency ms        p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
		rep.JobLatencyMS.P50, rep.JobLatencyMS.P90, rep.JobLatencyMS.P99, rep.JobLatencyMS.Max)
	fmt.Fprintf(&b, "  discovery latency ms  p50 %.0f  p90 %.0f  p99 %.0f  (%d lookups, %d failed)\n",
		rep.DiscoveryLatencyMS.P50, rep.DiscoveryLatencyMS.P90, rep.DiscoveryLatencyMS.P99, rep.Discoveries, rep.DiscoveryFailures)
	fmt.Fprintf(&b, "  retries %d; attempts %s\n", rep.Retries, kv(rep.Attempts))
	fmt.Fprintf(&b, "  bad results: detected %d, accepted %d; honest results rejected %d; honest mismatches %d\n",
		rep.BadResultsDetected, rep.BadResultsAccepted, rep.HonestResultsRejected, rep.HonestMismatches)
	for _, name := range sortedKeys(rep.Behaviours) {
		s := rep.Behaviours[name]
		fmt.Fprintf(&b, "    %-18s nodes %d  offered %d  caught %d  accepted %d  bad accepted %d\n",
			name, s.Nodes, s.Offered, s.Caught, s.Accepted, s.BadAccepted)
	}
	sp := rep.Spread
	fmt.Fprintf(&b, "  spread: results came from %d of %d nodes; at most %d from one (%.2f× the mean, %.0f%% of %d); Gini %.2f; jobs per node p50 %.0f p99 %.0f\n",
		sp.NodesUsed, sp.Servers, sp.MaxJobs, sp.MaxOverMean, 100*sp.MaxShare, sp.Results, sp.Gini, sp.P50Jobs, sp.P99Jobs)
	if len(sp.ByLatencyQuarter) > 0 {
		fmt.Fprintf(&b, "  results by the nodes' access latency, nearest quarter first: %v\n", sp.ByLatencyQuarter)
	}
	fmt.Fprintf(&b, "  traffic %d packets, %.1f MB, %d dropped by faults\n", rep.Messages, float64(rep.Bytes)/(1<<20), rep.PacketsDropped)
	fmt.Fprintf(&b, "  wall %.1fs (boot %.1f, converged at %.1f, workload %.1f, shutdown %.1f); simulated workload %.1fs\n",
		rep.WallSeconds, rep.Wall.BootSeconds, rep.Wall.ConvergedSeconds, rep.Wall.WorkloadSeconds, rep.Wall.ShutdownSeconds, rep.Sim.WorkloadSeconds)
	fmt.Fprintf(&b, "  memory: peak RSS %.0f MB; after boot %.0f MB RSS = %.2f MB a node (heap %.2f MB a node), %d goroutines\n",
		rep.PeakRSSMB, rep.Memory.BootRSSMB, rep.Memory.PerNodeRSSMB, rep.Memory.PerNodeHeapMB, rep.Memory.BootGoroutines)
	if rep.Replay != "" {
		fmt.Fprintf(&b, "  replay: %s\n", rep.Replay)
	}
	return b.String()
}

// Markdown is report.md: the summary, the schedule and the timeline, with
// the plots linked.
func (rep *Report) Markdown(plots []string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# plasmsim report: %s\n\n", rep.Scenario)
	fmt.Fprintf(&b, "Replay with:\n\n```\n%s\n```\n\n", rep.Replay)
	b.WriteString("| metric | value |\n|---|---|\n")
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	row("seed", rep.Seed)
	row("time", rep.Time)
	row("nodes / clients", fmt.Sprintf("%d / %d", rep.Nodes, rep.Clients))
	row("misbehaving nodes", rep.Misbehaving)
	row("replicas", rep.Replicas)
	row("converged", fmt.Sprintf("%v (%d published, %.1f s simulated)", rep.Converged, rep.Published, rep.Sim.ConvergedSeconds))
	row("jobs", rep.Jobs)
	row("succeeded / failed", fmt.Sprintf("%d / %d", rep.Succeeded, rep.Failed))
	row("success rate", fmt.Sprintf("%.2f%%", 100*rep.SuccessRate))
	row("failures by reason", kv(rep.FailuresByReason))
	row("retries", rep.Retries)
	row("attempts by outcome", kv(rep.Attempts))
	row("bad results detected", rep.BadResultsDetected)
	row("bad results accepted", rep.BadResultsAccepted)
	row("honest results rejected", rep.HonestResultsRejected)
	row("honest mismatches", rep.HonestMismatches)
	row("job latency p50 / p90 / p99 / max (ms)", fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", rep.JobLatencyMS.P50, rep.JobLatencyMS.P90, rep.JobLatencyMS.P99, rep.JobLatencyMS.Max))
	row("discovery latency p50 / p90 / p99 (ms)", fmt.Sprintf("%.0f / %.0f / %.0f", rep.DiscoveryLatencyMS.P50, rep.DiscoveryLatencyMS.P90, rep.DiscoveryLatencyMS.P99))
	row("lookups (failed)", fmt.Sprintf("%d (%d)", rep.Discoveries, rep.DiscoveryFailures))
	sp := rep.Spread
	row("nodes whose results were accepted", fmt.Sprintf("%d of %d (at most %d jobs from one)", sp.NodesUsed, sp.Servers, sp.MaxJobs))
	row("spread: max / mean, max share, Gini", fmt.Sprintf("%.2f× / %.0f%% / %.2f", sp.MaxOverMean, 100*sp.MaxShare, sp.Gini))
	row("jobs per node p50 / p99", fmt.Sprintf("%.0f / %.0f", sp.P50Jobs, sp.P99Jobs))
	row("results by access-latency quarter, nearest first", fmt.Sprint(sp.ByLatencyQuarter))
	row("packets / bytes / dropped", fmt.Sprintf("%d / %d / %d", rep.Messages, rep.Bytes, rep.PacketsDropped))
	row("wall seconds", rep.WallSeconds)
	row("wall: boot / converged at / workload / shutdown (s)", fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", rep.Wall.BootSeconds, rep.Wall.ConvergedSeconds, rep.Wall.WorkloadSeconds, rep.Wall.ShutdownSeconds))
	row("simulated workload seconds", fmt.Sprintf("%.1f", rep.Sim.WorkloadSeconds))
	row("peak RSS (MB)", rep.PeakRSSMB)
	row("RSS after boot (MB) / per node", fmt.Sprintf("%.0f / %.2f", rep.Memory.BootRSSMB, rep.Memory.PerNodeRSSMB))
	row("Go heap after boot (MB) / per node", fmt.Sprintf("%.0f / %.2f", rep.Memory.BootHeapMB, rep.Memory.PerNodeHeapMB))
	row("goroutines after boot / at end", fmt.Sprintf("%d / %d", rep.Memory.BootGoroutines, rep.Goroutines))
	row("connections a node after boot / at end (mean, max; hubs' mean)", fmt.Sprintf("%.1f, %d; %.0f / %.1f, %d; %.0f",
		rep.ConnsAfterBoot.Mean, rep.ConnsAfterBoot.Max, rep.ConnsAfterBoot.HubMean, rep.ConnsAtEnd.Mean, rep.ConnsAtEnd.Max, rep.ConnsAtEnd.HubMean))
	if len(rep.Behaviours) > 0 {
		b.WriteString("\n## Misbehaving nodes\n\n| behaviour | nodes | offered | caught | accepted | bad accepted |\n|---|---|---|---|---|---|\n")
		for _, name := range sortedKeys(rep.Behaviours) {
			s := rep.Behaviours[name]
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", name, s.Nodes, s.Offered, s.Caught, s.Accepted, s.BadAccepted)
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(p, ".svg"), p)
		}
	}
	if len(rep.Schedule) > 0 {
		b.WriteString("\n## Fault schedule\n\n")
		for _, s := range rep.Schedule {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	if len(rep.Timeline) > 0 {
		b.WriteString("\n## Timeline (simulated time from the workload's start)\n\n")
		for _, e := range rep.Timeline {
			fmt.Fprintf(&b, "- %+.1fs %s\n", e.At.Seconds(), e.What)
		}
	}
	return b.String()
}

func kv(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// JobsJSON is every job's record, as a JSON array.
func (rep *Report) JobsJSON() ([]byte, error) {
	b, err := json.MarshalIndent(rep.Records, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encoding job records: %w", err)
	}
	return append(b, '\n'), nil
}

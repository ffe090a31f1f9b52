package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Digest is a SHA-256 of everything the plan fixes (identity seeds, links,
// bootstrap peers, roles, misbehaviours, jobs, fault schedule): two runs
// with the same digest ran the same experiment.
func (p Plan) Digest() string {
	b, err := json.Marshal(p)
	if err != nil { // a Plan is plain data; this cannot happen
		panic(fmt.Sprintf("plan digest: %v", err))
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Interval is one metric over repeated runs of the same plan.
type Interval struct {
	Mean float64 `json:"mean"`
	// Lo and Hi bound the 95 % confidence interval of the mean (Student's
	// t with runs−1 degrees of freedom); equal to Mean when every run
	// agreed or there was one run.
	Lo     float64   `json:"ci95_lo"`
	Hi     float64   `json:"ci95_hi"`
	SD     float64   `json:"sd"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"` // one per run, in order
}

// Repeated is the same plan run several times: every numeric field of
// the runs' reports as an Interval. Its JSON form is `plasmsim run
// --repeat N --json`.
type Repeated struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	Time     string `json:"time"`
	Runs     int    `json:"runs"`
	// Plan is the runs' plan digest; PlanIdentical says every run had it.
	Plan          string `json:"plan_sha256"`
	PlanIdentical bool   `json:"plan_identical"`
	// Metrics are keyed by the report's JSON path (job_latency_ms.p50,
	// failures_by_reason.exhausted, …); a count missing from a run's
	// report (a map key) counts as 0 there; true is 1.
	Metrics map[string]Interval `json:"metrics"`
	Replay  string              `json:"replay"`

	reports []*Report
}

// Aggregate summarises reports of runs of the same scenario and seed.
func Aggregate(reps []*Report) (*Repeated, error) {
	if len(reps) == 0 {
		return nil, fmt.Errorf("aggregate: no runs")
	}
	first := reps[0]
	out := &Repeated{
		Scenario: first.Scenario, Seed: first.Seed, Time: first.Time, Runs: len(reps),
		Plan: first.Plan, PlanIdentical: true, Replay: first.Replay, reports: reps,
		Metrics: map[string]Interval{},
	}
	flat := make([]map[string]float64, len(reps))
	keys := map[string]bool{}
	for i, r := range reps {
		if r.Seed != first.Seed || r.Scenario != first.Scenario {
			return nil, fmt.Errorf("aggregate: run %d is %s seed %d, run 0 is %s seed %d", i, r.Scenario, r.Seed, first.Scenario, first.Seed)
		}
		if r.Plan != first.Plan {
			out.PlanIdentical = false
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("aggregate: run %d: %w", i, err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("aggregate: run %d: %w", i, err)
		}
		flat[i] = map[string]float64{}
		flatten("", v, flat[i])
		for k := range flat[i] {
			keys[k] = true
		}
	}
	for k := range keys {
		vs := make([]float64, len(reps))
		for i := range reps {
			vs[i] = flat[i][k]
		}
		out.Metrics[k] = interval(vs)
	}
	return out, nil
}

// flatten collects v's numeric and boolean leaves by dotted path; lists
// (schedule, timeline) are not metrics and are skipped, and so is the
// seed.
func flatten(path string, v any, out map[string]float64) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(p, e, out)
		}
	case float64:
		if path != "seed" {
			out[path] = x
		}
	case bool:
		if x {
			out[path] = 1
		} else {
			out[path] = 0
		}
	}
}

// interval is the mean of vs with its 95 % confidence interval.
func interval(vs []float64) Interval {
	iv := Interval{Values: vs, Min: slices.Min(vs), Max: slices.Max(vs)}
	n := float64(len(vs))
	for _, v := range vs {
		iv.Mean += v / n
	}
	if len(vs) > 1 {
		ss := 0.0
		for _, v := range vs {
			ss += (v - iv.Mean) * (v - iv.Mean)
		}
		iv.SD = math.Sqrt(ss / (n - 1))
	}
	half := tQuantile975(len(vs)-1) * iv.SD / math.Sqrt(n)
	iv.Lo, iv.Hi = iv.Mean-half, iv.Mean+half
	return iv
}

// tQuantile975 is Student's t 0.975 quantile for df degrees of freedom
// (0 for df < 1, where there is no interval).
func tQuantile975(df int) float64 {
	table := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < 1:
		return 0
	case df <= len(table):
		return table[df-1]
	case df <= 60:
		return 2.000
	default:
		return 1.960
	}
}

// summaryMetrics are the metrics Summary prints, in order; every other
// one is in the JSON.
var summaryMetrics = []string{
	"succeeded", "failed", "success_rate", "retries", "bad_results_detected", "bad_results_accepted",
	"honest_results_rejected", "honest_mismatches", "nodes_used", "max_jobs_per_node",
	"job_latency_ms.p50", "job_latency_ms.p90", "job_latency_ms.p99",
	"discovery_latency_ms.p50", "discovery_latency_ms.p99", "sim_seconds.converged",
	"messages", "wall_seconds", "peak_rss_mb", "memory.per_node_rss_mb",
}

// Summary is the terminal form: the main metrics as mean [95 % interval]
// (min–max).
func (r *Repeated) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plasmsim %s  seed %d  %s time  %d runs of one plan\n", r.Scenario, r.Seed, r.Time, r.Runs)
	if r.PlanIdentical {
		fmt.Fprintf(&b, "  plan identical in every run (sha256 %s…)\n", r.Plan[:min(12, len(r.Plan))])
	} else {
		fmt.Fprintf(&b, "  PLAN DIFFERED between runs: the runs are not comparable\n")
	}
	fmt.Fprintf(&b, "  %-28s %12s  %-25s %s\n", "metric", "mean", "95 % interval of the mean", "min–max")
	for _, k := range summaryMetrics {
		iv, ok := r.Metrics[k]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "  %-28s %12s  [%s, %s]%s %s–%s\n", k, num(iv.Mean), num(iv.Lo), num(iv.Hi),
			strings.Repeat(" ", max(0, 22-len(num(iv.Lo))-len(num(iv.Hi)))), num(iv.Min), num(iv.Max))
	}
	fmt.Fprintf(&b, "  (%d metrics in all in the JSON)\n  replay each run: %s\n", len(r.Metrics), r.Replay)
	return b.String()
}

func num(v float64) string {
	if (v == math.Trunc(v) || math.Abs(v) >= 100) && math.Abs(v) < 1e12 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// JSON is the aggregate as indented JSON.
func (r *Repeated) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("repeat report: %w", err)
	}
	return append(b, '\n'), nil
}

// Plot file names written by Repeated.WritePlots.
const (
	PlotRepeatJobLatency = "repeat_job_latency_cdf.svg"
	PlotRepeatFinished   = "repeat_jobs_finished.svg"
)

// WritePlots draws the runs' job latency CDF and jobs finished over time,
// each as the mean over runs with its 95 % band, into dir.
func (r *Repeated) WritePlots(dir string) ([]string, error) {
	return savePlots(dir, []namedPlot{
		{PlotRepeatJobLatency, r.latencyBandPlot},
		{PlotRepeatFinished, r.finishedBandPlot},
	})
}

// band adds the mean of ys[run][i] at xs[i] as a line with its 95 %
// interval as a shaded band; horizontal swaps the axes (the band is then
// across x).
func band(p *plot.Plot, xs []float64, ys [][]float64, horizontal bool, label string) error {
	mean, lo, hi := make(plotter.XYs, len(xs)), make(plotter.XYs, len(xs)), make(plotter.XYs, len(xs))
	for i, x := range xs {
		vs := make([]float64, len(ys))
		for r := range ys {
			vs[r] = ys[r][i]
		}
		iv := interval(vs)
		xy := func(v float64) plotter.XY {
			if horizontal {
				return plotter.XY{X: v, Y: x}
			}
			return plotter.XY{X: x, Y: v}
		}
		mean[i], lo[i], hi[i] = xy(iv.Mean), xy(iv.Lo), xy(iv.Hi)
	}
	poly := append(slices.Clone(lo), reversed(hi)...)
	pg, err := plotter.NewPolygon(poly)
	if err != nil {
		return err
	}
	pg.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x40}
	pg.LineStyle.Width = 0
	l, err := plotter.NewLine(mean)
	if err != nil {
		return err
	}
	l.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	l.Width = vg.Points(1.5)
	p.Add(pg, l)
	p.Legend.Add(label, l)
	p.Legend.Add("95 % interval of the mean", pg)
	return nil
}

func reversed(xs plotter.XYs) plotter.XYs {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

// latencyBandPlot: for each fraction q, the q-quantile of job latency,
// mean over runs with its band.
func (r *Repeated) latencyBandPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Job latency CDF, %d runs of one plan", r.Runs)
	p.X.Label.Text = "milliseconds (simulated)"
	p.Y.Label.Text = "fraction of jobs ≤ x"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	var qs []float64
	for q := 0.01; q < 1.0001; q += 0.01 {
		qs = append(qs, math.Min(q, 1))
	}
	var ys [][]float64
	for _, rep := range r.reports {
		var lat []float64
		for _, j := range rep.Records {
			if j.OK {
				lat = append(lat, float64(j.Latency)/float64(time.Millisecond))
			}
		}
		if len(lat) == 0 {
			continue
		}
		sort.Float64s(lat)
		row := make([]float64, len(qs))
		for i, q := range qs {
			row[i] = lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)]
		}
		ys = append(ys, row)
	}
	if len(ys) == 0 {
		p.Title.Text += " — no samples"
		return p, nil
	}
	if err := band(p, qs, ys, true, "mean over runs"); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(90)
	return p, nil
}

// finishedBandPlot: jobs succeeded by each moment of the workload, mean
// over runs with its band.
func (r *Repeated) finishedBandPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Jobs succeeded over time, %d runs of one plan", r.Runs)
	p.X.Label.Text = "seconds since the workload started (simulated)"
	p.Y.Label.Text = "jobs succeeded so far"
	p.Add(plotter.NewGrid())
	end := 0.0
	for _, rep := range r.reports {
		for _, j := range rep.Records {
			end = max(end, (j.SubmittedAt + j.Latency).Seconds())
		}
	}
	if end == 0 {
		p.Title.Text += " — no jobs"
		return p, nil
	}
	const steps = 100
	xs := make([]float64, steps+1)
	for i := range xs {
		xs[i] = end * float64(i) / steps
	}
	ys := make([][]float64, len(r.reports))
	for ri, rep := range r.reports {
		var done []float64
		for _, j := range rep.Records {
			if j.OK {
				done = append(done, (j.SubmittedAt + j.Latency).Seconds())
			}
		}
		sort.Float64s(done)
		ys[ri] = make([]float64, len(xs))
		for i, x := range xs {
			ys[ri][i] = float64(sort.SearchFloat64s(done, x+1e-9))
		}
	}
	if err := band(p, xs, ys, false, "mean over runs"); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(30)
	p.Legend.YOffs = -vg.Points(14) // below the title
	p.X.Min, p.Y.Min = 0, 0
	return p, nil
}

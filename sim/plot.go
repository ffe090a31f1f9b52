package sim

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot file names written by WritePlots.
const (
	PlotJobLatency       = "job_latency_cdf.svg"
	PlotDiscoveryLatency = "discovery_latency_cdf.svg"
	PlotOverTime         = "jobs_over_time.svg"
	PlotJobsPerNode      = "jobs_per_node.svg"
)

// WritePlots draws the report's SVG plots into dir and returns their file
// names.
func (rep *Report) WritePlots(dir string) ([]string, error) {
	var jobLat, findLat []time.Duration
	for _, j := range rep.Records {
		if j.OK {
			jobLat = append(jobLat, j.Latency)
		}
	}
	for _, f := range rep.finds {
		findLat = append(findLat, f.Latency)
	}
	return savePlots(dir, []namedPlot{
		{PlotJobLatency, func() (*plot.Plot, error) {
			return cdfPlot("Job latency (submit to verified result)", jobLat)
		}},
		{PlotDiscoveryLatency, func() (*plot.Plot, error) {
			return cdfPlot("Discovery latency (Find: DHT providers + live records)", findLat)
		}},
		{PlotOverTime, rep.overTimePlot},
		{PlotJobsPerNode, rep.perNodePlot},
	})
}

// namedPlot is one SVG file to draw.
type namedPlot struct {
	name string
	make func() (*plot.Plot, error)
}

// savePlots draws each plot into dir at the reports' one size and returns
// the names written.
func savePlots(dir string, plots []namedPlot) ([]string, error) {
	var names []string
	for _, p := range plots {
		pl, err := p.make()
		if err != nil {
			return names, fmt.Errorf("plot %s: %w", p.name, err)
		}
		if err := pl.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(dir, p.name)); err != nil {
			return names, fmt.Errorf("plot %s: %w", p.name, err)
		}
		names = append(names, p.name)
	}
	return names, nil
}

// cdfPlot is the empirical CDF of latencies, in milliseconds.
func cdfPlot(title string, ds []time.Duration) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "milliseconds (simulated)"
	p.Y.Label.Text = "fraction of samples ≤ x"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	if len(ds) == 0 {
		p.Title.Text += " — no samples"
		return p, nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pts := make(plotter.XYs, 0, 2*len(s))
	prev := 0.0
	for i, d := range s {
		x := float64(d) / float64(time.Millisecond)
		pts = append(pts, plotter.XY{X: x, Y: prev}, plotter.XY{X: x, Y: float64(i+1) / float64(len(s))})
		prev = float64(i+1) / float64(len(s))
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	l.Width = vg.Points(1.5)
	p.Add(l)
	// The figures go in the axis label, not a legend: a legend drawn at
	// the right edge is cut off when the viewer's font is wider than the
	// one gonum measured with.
	p.X.Label.Text += fmt.Sprintf(" — n=%d, p50 %.0f ms, p99 %.0f ms",
		len(s), ms(s[(len(s)-1)/2]), ms(s[int(math.Ceil(0.99*float64(len(s))))-1]))
	return p, nil
}

// overTimePlot counts jobs finished per interval of simulated time,
// succeeded and failed, with the fault events marked.
func (rep *Report) overTimePlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Jobs finished over time"
	p.X.Label.Text = "seconds since the workload started (simulated)"
	p.Y.Label.Text = "jobs finished per bucket"
	p.Add(plotter.NewGrid())
	end := 0.0
	for _, j := range rep.Records {
		end = max(end, (j.SubmittedAt + j.Latency).Seconds())
	}
	if len(rep.Records) == 0 || end == 0 {
		p.Title.Text += " — no jobs"
		return p, nil
	}
	const buckets = 40
	width := end / buckets
	ok, failed := make([]float64, buckets), make([]float64, buckets)
	for _, j := range rep.Records {
		b := min(int((j.SubmittedAt+j.Latency).Seconds()/width), buckets-1)
		if j.OK {
			ok[b]++
		} else {
			failed[b]++
		}
	}
	top := 1.0
	for i := range buckets {
		top = max(top, ok[i], failed[i])
	}
	series := func(vs []float64, c color.Color, name string) error {
		pts := make(plotter.XYs, buckets)
		for i, v := range vs {
			pts[i] = plotter.XY{X: (float64(i) + 0.5) * width, Y: v}
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, s.Color = c, c
		s.Shape = draw.CircleGlyph{}
		s.Radius = vg.Points(2)
		p.Add(l, s)
		p.Legend.Add(name, l, s)
		return nil
	}
	if err := series(ok, color.RGBA{G: 0x99, B: 0x33, A: 0xff}, "succeeded"); err != nil {
		return nil, err
	}
	if err := series(failed, color.RGBA{R: 0xcc, A: 0xff}, "failed"); err != nil {
		return nil, err
	}
	for _, e := range rep.Timeline {
		if e.At <= 0 {
			continue
		}
		x := e.At.Seconds()
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil {
			return nil, err
		}
		l.Color = color.Gray{Y: 0x99}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: top * 1.38}}, Labels: []string{e.What}})
		if err == nil {
			lbl.TextStyle[0].Rotation = -math.Pi / 2
			lbl.TextStyle[0].Font.Size = vg.Points(7)
			p.Add(lbl)
		}
	}
	// Headroom above the data for the legend and the event labels, and a
	// margin on the right so a label near the end stays inside.
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(30)
	p.Legend.YOffs = -vg.Points(4)
	p.X.Min, p.Y.Min = 0, 0
	p.X.Max = end * 1.04
	p.Y.Max = top * 1.4
	return p, nil
}

// perNodePlot is a bar per server, most accepted results first, with the
// mean and three times the mean marked: how evenly the load spread.
func (rep *Report) perNodePlot() (*plot.Plot, error) {
	sp := rep.Spread
	p := plot.New()
	// Short texts: a long axis label runs past the right edge.
	p.Title.Text = fmt.Sprintf("Accepted results per node (max %.1f× mean, Gini %.2f)", sp.MaxOverMean, sp.Gini)
	p.X.Label.Text = fmt.Sprintf("nodes, most first: %d of %d used", sp.NodesUsed, sp.Servers)
	p.Y.Label.Text = "accepted results"
	p.Add(plotter.NewGrid())
	if sp.Results == 0 {
		p.Title.Text += " — no results"
		return p, nil
	}
	vals := slices.Clone(sp.PerNode)
	slices.SortFunc(vals, func(a, b int) int { return b - a })
	bars := make(plotter.Values, len(vals))
	for i, v := range vals {
		bars[i] = float64(v)
	}
	w := max(vg.Points(1), vg.Points(400/float64(len(bars))))
	bc, err := plotter.NewBarChart(bars, w)
	if err != nil {
		return nil, err
	}
	bc.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	bc.LineStyle.Width = 0
	p.Add(bc)
	for _, m := range []struct {
		y    float64
		name string
	}{{sp.MeanJobs, "mean"}, {3 * sp.MeanJobs, "3 × mean"}} {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: m.y}, {X: float64(len(bars)) - 0.5, Y: m.y}})
		if err != nil {
			return nil, err
		}
		l.Color = color.Gray{Y: 0x66}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.1f)", m.name, m.y), l)
	}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(60) // well clear of the right edge
	p.Legend.YOffs = -vg.Points(4)
	p.X.Min, p.Y.Min = -0.5, 0
	p.X.Max = float64(len(bars)) - 0.5
	p.Y.Max = max(float64(sp.MaxJobs), 3*sp.MeanJobs) * 1.3
	p.X.Tick.Marker = plot.ConstantTicks(nil)
	return p, nil
}

// Package metrics holds a node's Prometheus collectors, all on one
// registry per node so many nodes can live in one process (the simulator).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the collectors the node, job server and client update.
type Metrics struct {
	Registry *prometheus.Registry

	RecordsPublished prometheus.Counter
	RecordsRejected  *prometheus.CounterVec // by reason
	LookupSeconds    prometheus.Histogram   // Find: DHT + live query

	Jobs             *prometheus.CounterVec // server side, by outcome
	JobRejections    *prometheus.CounterVec // server side, by reason code
	JobSeconds       prometheus.Histogram   // server side, offer to result sent
	ModuleCache      *prometheus.CounterVec // module store: hit, miss
	ReceiptsRejected *prometheus.CounterVec // client side, by failed check
	ClientJobs       *prometheus.CounterVec // client side (API submissions), by result
}

// New registers a fresh set of collectors on a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{
		Registry: r,
		RecordsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phase_caps_records_published_total", Help: "Capability records this node published."}),
		RecordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_caps_records_rejected_total", Help: "Capability records refused, by reason."}, []string{"reason"}),
		LookupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phase_find_seconds", Help: "Latency of finding capable peers.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_jobs_total", Help: "Jobs run by this node, by outcome."}, []string{"outcome"}),
		JobRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_job_rejections_total", Help: "Job offers refused, by reason."}, []string{"reason"}),
		JobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phase_job_seconds", Help: "Time from offer to result sent.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		ModuleCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_module_cache_total", Help: "Module store lookups for offers, by result (hit, miss)."}, []string{"result"}),
		ReceiptsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_receipts_rejected_total", Help: "Receipts from other nodes refused, by failed check."}, []string{"check"}),
		ClientJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phase_client_jobs_total", Help: "Jobs submitted through this node, by result."}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.RecordsPublished, m.RecordsRejected, m.LookupSeconds, m.Jobs,
		m.JobRejections, m.JobSeconds, m.ModuleCache, m.ReceiptsRejected, m.ClientJobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Gauge registers a gauge read from fn at scrape time.
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

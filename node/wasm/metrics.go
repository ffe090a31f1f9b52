package wasm

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes the executor's Stats as Prometheus metrics, read at
// scrape time.
func (e *Executor) Collector() prometheus.Collector { return statsCollector{e} }

type statsCollector struct{ e *Executor }

var (
	descJobs = prometheus.NewDesc("phase_wasm_jobs_total",
		"Jobs whose result came from each engine tier (interpreter, compiler).", []string{"tier"}, nil)
	descCompiles = prometheus.NewDesc("phase_wasm_compiles_total",
		"Optimising compiles (kind=foreground: a job waited; background: a job ran on the interpreter meanwhile).", []string{"kind"}, nil)
	descSwitches = prometheus.NewDesc("phase_wasm_tier_switches_total",
		"Jobs restarted on compiled code that became ready while they ran on the interpreter.", nil, nil)
	descCacheBytes = prometheus.NewDesc("phase_wasm_cache_bytes",
		"Compiled code held (where=memory: estimated; disk: bytes in the compile cache directory).", []string{"where"}, nil)
	descCacheModules = prometheus.NewDesc("phase_wasm_cache_modules",
		"Modules with compiled code held, by where (memory, disk).", []string{"where"}, nil)
	descEvictions = prometheus.NewDesc("phase_wasm_cache_evictions_total",
		"Compiled modules evicted for the size bounds, by where (memory, disk).", []string{"where"}, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descCompiles, descSwitches, descCacheBytes, descCacheModules, descEvictions} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descJobs, st.JobsInterpreter, string(TierInterpreter))
	counter(descJobs, st.JobsCompiler, string(TierCompiler))
	counter(descCompiles, st.Compiles-st.BackgroundCompiles, "foreground")
	counter(descCompiles, st.BackgroundCompiles, "background")
	counter(descSwitches, st.TierSwitches)
	gauge(descCacheBytes, st.CachedBytes, "memory")
	gauge(descCacheBytes, st.DiskBytes, "disk")
	gauge(descCacheModules, int64(st.CachedModules), "memory")
	gauge(descCacheModules, int64(st.DiskModules), "disk")
	counter(descEvictions, st.Evictions, "memory")
	counter(descEvictions, st.DiskEvictions, "disk")
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "usage:"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"unknown flag", []string{"run", "--warp", "9"}, 2, "flag provided but not defined"},
		{"bad bandwidth", []string{"plan", "--bandwidth", "lots"}, 2, `"lots" is not a bandwidth`},
		{"bad value", []string{"plan", "--nodes", "0"}, 2, "nodes: 0 out of range"},
		{"bad time mode", []string{"plan", "--time", "warp"}, 2, `time: "warp" is not one of`},
		{"bad repeat", []string{"run", "--repeat", "0"}, 2, "--repeat 0: want 1 to 1000 runs"},
		{"two files", []string{"plan", "a.yaml", "b.yaml"}, 2, "more than one scenario file"},
		{"missing file", []string{"plan", filepath.Join(t.TempDir(), "none.yaml")}, 1, "reading scenario"},
		{"help", []string{"help"}, 0, "plasmsim run [SCENARIO.yaml]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			assert.Equal(t, tt.code, code, "stderr: %s", errb.String())
			assert.Contains(t, out.String()+errb.String(), tt.want)
		})
	}
}

func TestPlanPrintsScheduleAndReplay(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"plan", filepath.Join("..", "..", "scenarios", "sim", "partition.yaml"), "--seed", "7", "--nodes", "40"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	s := out.String()
	assert.Contains(t, s, "seed 7: 40 servers")
	assert.Contains(t, s, "partition nodes")
	assert.Contains(t, s, "heal nodes")
	assert.Contains(t, s, "replay: plasmsim run "+filepath.Join("..", "..", "scenarios", "sim", "partition.yaml")+" --nodes 40 --clients 2")
	assert.Contains(t, s, "--seed 7")
}

// writeScenario writes a tiny, fast scenario for CLI runs.
func writeScenario(t *testing.T, timeMode string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.yaml")
	doc := "name: tiny\ndescription: CLI test\ntime: " + timeMode + "\nnodes: 3\nclients: 1\n" +
		"network: {latency: 10ms, bootstrap_nodes: 1, wave_interval: 100ms}\n" +
		"workload: {jobs: 3, duration: 1s, mix: [{module: tiny, weight: 1}]}\n"
	require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
	return p
}

// requiredFields are the --json fields issue 5 names.
func checkJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var rep map[string]any
	require.NoError(t, json.Unmarshal(b, &rep), "one JSON object on stdout: %s", b)
	for _, k := range []string{"nodes", "jobs", "succeeded", "failed", "success_rate", "bad_results_detected",
		"bad_results_accepted", "job_latency_ms", "discovery_latency_ms", "wall_seconds", "peak_rss_mb", "seed", "replay"} {
		assert.Contains(t, rep, k)
	}
	for _, k := range []string{"p50", "p90", "p99"} {
		assert.Contains(t, rep["job_latency_ms"], k)
	}
	for _, k := range []string{"p50", "p99"} {
		assert.Contains(t, rep["discovery_latency_ms"], k)
	}
	return rep
}

// A real-time run in process: the report files are written and --json
// prints the report alone on stdout.
func TestRunRealTimeWritesReport(t *testing.T) {
	modules := filepath.Dir(testwasm.Path(t, testwasm.Tiny))
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", writeScenario(t, "real"), "--json", "--quiet", "--modules", modules,
		"--cache", t.TempDir(), "--out", out, "--seed", "3"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	rep := checkJSON(t, stdout.Bytes())
	assert.EqualValues(t, 3, rep["jobs"])
	assert.EqualValues(t, 3, rep["succeeded"])
	assert.EqualValues(t, 1, rep["success_rate"])
	assert.EqualValues(t, 3, rep["seed"])
	assert.Equal(t, "real", rep["time"])
	assert.Contains(t, rep["replay"], "--seed 3")
	assert.Contains(t, stderr.String(), "jobs 3: 3 succeeded", "the summary goes to stderr with --json")
	for _, f := range []string{"report.json", "report.md", "jobs.json", "scenario.yaml", "job_latency_cdf.svg", "discovery_latency_cdf.svg", "jobs_over_time.svg"} {
		st, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
		assert.Positive(t, st.Size(), f)
	}
	svg, err := os.ReadFile(filepath.Join(out, "job_latency_cdf.svg"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(bytes.TrimSpace(svg), []byte("<?xml")) || bytes.Contains(svg, []byte("<svg")), "an SVG document")
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "plasmsim run ")
	assert.Contains(t, string(md), "![job_latency_cdf](job_latency_cdf.svg)")
}

func TestRunMissingModulesIsHarnessError(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no such directory", []string{"--modules", filepath.Join(t.TempDir(), "none")}, "not a directory"},
		{"hello is not built in", []string{"--modules", t.TempDir(), "--nodes", "3"}, "module hello: no hello.wasm in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			scenario := filepath.Join("..", "..", "scenarios", "sim", "smoke.yaml")
			code := run(append([]string{"run", scenario, "--quiet", "--time", "real"}, tt.args...), &stdout, &stderr)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr.String(), tt.want)
		})
	}
}

// Virtual time needs the testing package's runner, which a test binary
// already owns: build the real command and run it, from a directory that
// is no checkout.
func TestRunVirtualTimeBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plasmsim")
	build := exec.Command("go", "build", "-o", bin, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	// Outside any checkout, with no --modules: the default workload is
	// built into the binary.
	cmd := exec.Command(bin, "run", "--nodes", "3", "--clients", "1", "--jobs", "4", "--json", "--cache", t.TempDir())
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	rep := checkJSON(t, stdout.Bytes())
	assert.Equal(t, "virtual", rep["time"])
	assert.EqualValues(t, 4, rep["succeeded"])
	assert.True(t, strings.Contains(stderr.String(), "done"), "the progress bar ran: %s", stderr.String())

	// --repeat: the same plan twice, each metric as mean and interval.
	out := t.TempDir()
	cmd = exec.Command(bin, "run", "--nodes", "3", "--clients", "1", "--jobs", "4", "--repeat", "2", "--quiet", "--json", "--out", out, "--cache", t.TempDir())
	cmd.Dir = t.TempDir()
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	var agg struct {
		Runs          int  `json:"runs"`
		PlanIdentical bool `json:"plan_identical"`
		Metrics       map[string]struct {
			Mean   float64   `json:"mean"`
			Lo     float64   `json:"ci95_lo"`
			Hi     float64   `json:"ci95_hi"`
			Values []float64 `json:"values"`
		} `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &agg), stdout.String())
	assert.Equal(t, 2, agg.Runs)
	assert.True(t, agg.PlanIdentical)
	assert.Equal(t, []float64{4, 4}, agg.Metrics["succeeded"].Values)
	lat := agg.Metrics["job_latency_ms.p50"]
	assert.LessOrEqual(t, lat.Lo, lat.Mean)
	assert.GreaterOrEqual(t, lat.Hi, lat.Mean)
	assert.Contains(t, stderr.String(), "95 % interval")
	for _, f := range []string{"repeat.json", "repeat.md", "repeat_job_latency_cdf.svg", "repeat_jobs_finished.svg", "run-1/report.json", "run-2/report.json"} {
		_, err := os.Stat(filepath.Join(out, f))
		assert.NoError(t, err, f)
	}
}

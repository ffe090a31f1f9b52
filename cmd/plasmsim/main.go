// Command plasmsim runs the real Phase node code across many simulated
// peers in one process and reports how jobs were found and run.
//
//	plasmsim run [SCENARIO.yaml] [--nodes N] [--clients C] [--jobs J] [--seed S]
//	    [--latency D] [--bandwidth B] [--misbehaving FRACTION] [--replicas K]
//	    [--time virtual|real] [--out DIR] [--json] [--quiet] [--modules DIR]
//	plasmsim plan [SCENARIO.yaml] [same overrides]   print the seed's schedule, run nothing
//	plasmsim conformance [--target MULTIADDR | --launch CMD] [--run PATTERN] ...   see conformance.go
//
// Exit status: 0 when the run completed (whatever its success rate), 1 on
// a harness error, 2 on a usage error.
//
// The simulator's TLS handshakes use X25519 alone rather than the
// X25519+ML-KEM-768 hybrid (the go:debug line below): a large run makes
// hundreds of thousands of handshakes, and the key exchange changes
// nothing the simulation measures.

//go:debug tlsmlkem=0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/sim"
	"github.com/phase-protocol/plasm/sim/vtime"
)

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// tuneGC trades memory for CPU, unless the user set GOGC or GOMEMLIMIT:
// a large simulation is hundreds of thousands of small goroutines whose
// stacks every collection scans. The memory limit makes the collector
// work harder only when the heap nears most of the machine's memory.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if total := totalMemory(); total > 0 {
			debug.SetMemoryLimit(total / 10 * 7)
		}
	}
}

// totalMemory is the machine's memory in bytes, 0 if unknown.
func totalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

const usage = `usage:
  plasmsim run [SCENARIO.yaml] [flags]   run a scenario and report
  plasmsim plan [SCENARIO.yaml] [flags]  print the plan a seed gives, without running
  plasmsim conformance [flags]           check a node or client against SPEC.md (conformance --help)
  plasmsim help                          this text

Without a scenario file the built-in defaults are used (a small fault-free
run); flags override the file's fields. Scenario files live in
scenarios/sim/.

flags:
`

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		newFlags(&options{}, stderr).PrintDefaults()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	if cmd == "conformance" {
		return runConformance(args[1:], stdout, stderr)
	}
	if cmd != "run" && cmd != "plan" {
		fmt.Fprintf(stderr, "plasmsim: unknown command %q (want run, plan, conformance or help)\n", cmd)
		return 2
	}
	o, err := parse(args[1:], stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "plasmsim %s: %v\n", cmd, err)
		}
		return 2
	}
	sc, err := o.scenario()
	if err != nil {
		fmt.Fprintf(stderr, "plasmsim %s: %v\n", cmd, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	if cmd == "plan" {
		return printPlan(sc, o, stdout)
	}
	if err := runScenario(sc, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "plasmsim run: %v\n", err)
		return 1
	}
	return 0
}

// options are the command line.
type options struct {
	file        string
	nodes       int
	clients     int
	jobs        int
	seed        uint64
	latency     time.Duration
	bandwidth   string
	misbehaving float64
	replicas    int
	timeMode    string
	out         string
	json        bool
	quiet       bool
	modules     string
	cache       string
	debugLog    string
	cpuProfile  string
	memProfile  string
	repeat      int
	set         map[string]bool // flags given explicitly
}

func newFlags(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("plasmsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 0, "server nodes")
	fs.IntVar(&o.clients, "clients", 0, "client nodes submitting jobs")
	fs.IntVar(&o.jobs, "jobs", 0, "jobs in the workload")
	fs.Uint64Var(&o.seed, "seed", 0, "seed: identities, topology, links, workload and faults")
	fs.DurationVar(&o.latency, "latency", 0, "mean one-way latency between two nodes (e.g. 50ms)")
	fs.StringVar(&o.bandwidth, "bandwidth", "", "each node's link rate (e.g. 20Mbps)")
	fs.Float64Var(&o.misbehaving, "misbehaving", 0, "fraction of server nodes that misbehave")
	fs.IntVar(&o.replicas, "replicas", 0, "nodes that must agree on each result")
	fs.StringVar(&o.timeMode, "time", "", "virtual (synctest clock, the default) or real")
	fs.StringVar(&o.out, "out", "", "write report.json, report.md, jobs.json, scenario.yaml and SVG plots here")
	fs.BoolVar(&o.json, "json", false, "print the report as one JSON object on stdout (the summary goes to stderr)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	fs.StringVar(&o.modules, "modules", "", "directory of NAME.wasm modules; a module not found there is taken from those built in (tiny, echo, exit7, trap, grow, bigmem, loop, flood; default: build/wasm of the checkout holding the working directory, if any)")
	fs.StringVar(&o.cache, "cache", "", "compiled-module cache directory (default: the user cache directory)")
	fs.StringVar(&o.debugLog, "debug-log", "", "write the harness's own log (JSON lines) to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.IntVar(&o.repeat, "repeat", 1, "run the same plan N times and report every metric as mean and 95 % interval")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile, once the network has converged, to this file (and a goroutine profile to FILE.goroutines)")
	return fs
}

// parse reads flags and at most one scenario file, in any order.
func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := newFlags(o, stderr)
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if o.file != "" {
			return nil, fmt.Errorf("more than one scenario file: %s and %s", o.file, args[0])
		}
		o.file = args[0]
		args = args[1:]
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// scenario is the file (or the defaults) with the flags applied.
func (o *options) scenario() (sim.Scenario, error) {
	sc := sim.Default()
	if o.file != "" {
		var err error
		if sc, err = sim.Load(o.file); err != nil {
			return sc, err
		}
	}
	if o.set["nodes"] {
		sc.Nodes = o.nodes
	}
	if o.set["clients"] {
		sc.Clients = o.clients
	}
	if o.set["jobs"] {
		sc.Workload.Jobs = o.jobs
	}
	if o.set["seed"] {
		sc.Seed = o.seed
	}
	if o.set["latency"] {
		sc.Network.Latency = sim.Duration(o.latency)
	}
	if o.set["bandwidth"] {
		b, err := sim.ParseBandwidth(o.bandwidth)
		if err != nil {
			return sc, fmt.Errorf("%w: --bandwidth: %w", errUsage, err)
		}
		sc.Network.Bandwidth = b
	}
	if o.set["misbehaving"] {
		sc.Misbehaving.Fraction = o.misbehaving
	}
	if o.set["replicas"] {
		sc.Workload.Replicas = o.replicas
	}
	if o.set["time"] {
		sc.Time = o.timeMode
	}
	if o.repeat < 1 || o.repeat > 1000 {
		return sc, fmt.Errorf("%w: --repeat %d: want 1 to 1000 runs", errUsage, o.repeat)
	}
	if err := sc.Validate(); err != nil {
		return sc, fmt.Errorf("%w: %w", errUsage, err)
	}
	return sc, nil
}

// replay is the command line that reproduces the run: the file plus every
// overridable field, spelled out.
func (o *options) replay(sc sim.Scenario) string {
	parts := []string{"plasmsim", "run"}
	if o.file != "" {
		parts = append(parts, o.file)
	}
	parts = append(parts,
		"--nodes", strconv.Itoa(sc.Nodes), "--clients", strconv.Itoa(sc.Clients),
		"--jobs", strconv.Itoa(sc.Workload.Jobs), "--seed", strconv.FormatUint(sc.Seed, 10),
		"--latency", sc.Network.Latency.String(), "--bandwidth", sc.Network.Bandwidth.String(),
		"--misbehaving", strconv.FormatFloat(sc.Misbehaving.Fraction, 'g', -1, 64),
		"--replicas", strconv.Itoa(sc.Workload.Replicas), "--time", sc.Time)
	return strings.Join(parts, " ")
}

func printPlan(sc sim.Scenario, o *options, stdout io.Writer) int {
	p := sim.MakePlan(sc)
	fmt.Fprintf(stdout, "scenario %s, seed %d: %d servers, %d clients, %d jobs\n", sc.Name, sc.Seed, p.Servers, p.Clients, len(p.Jobs))
	liars := p.Liars()
	for _, b := range slices.Sorted(maps.Keys(liars)) {
		fmt.Fprintf(stdout, "  %s: nodes %v\n", b, liars[b])
	}
	for _, line := range p.Describe() {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	fmt.Fprintf(stdout, "replay: %s\n", o.replay(sc))
	return 0
}

func runScenario(sc sim.Scenario, o *options, stdout, stderr io.Writer) error {
	if sc.MemoryLimitMB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(sc.MemoryLimitMB) << 20)
	}
	modules := o.modules
	if modules == "" {
		modules = defaultModulesDir()
	} else if st, err := os.Stat(modules); err != nil || !st.IsDir() {
		return fmt.Errorf("--modules %s: not a directory", modules)
	}
	cache := o.cache
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "plasm", "sim-wasm")
		}
	}
	log := slog.New(slog.DiscardHandler)
	if o.debugLog != "" {
		f, err := os.Create(o.debugLog)
		if err != nil {
			return fmt.Errorf("debug log: %w", err)
		}
		defer f.Close()
		log = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	opts := sim.Options{
		ModulesDir: modules, CacheDir: cache, Log: log,
		TimeMode: sc.Time, Replay: o.replay(sc),
	}
	var profErr error
	if o.memProfile != "" {
		opts.AfterBoot = func() { profErr = writeProfiles(o.memProfile) }
	}
	if o.repeat > 1 {
		return runRepeated(sc, o, opts, stdout, stderr)
	}
	rep, err := runOnce(sc, o, opts, stderr)
	if err != nil {
		return err
	}
	if profErr != nil {
		return profErr
	}

	summary := rep.Summary()
	if o.out != "" {
		files, werr := writeOut(o.out, sc, rep)
		if werr != nil {
			return werr
		}
		summary += fmt.Sprintf("  wrote %s\n", strings.Join(files, ", "))
	}
	if o.json {
		b, jerr := rep.JSON()
		if jerr != nil {
			return jerr
		}
		fmt.Fprint(stderr, summary)
		_, werr := stdout.Write(b)
		return werr
	}
	fmt.Fprint(stdout, summary)
	return nil
}

// runOnce runs the scenario once, with the progress bar unless --quiet.
func runOnce(sc sim.Scenario, o *options, opts sim.Options, stderr io.Writer) (*sim.Report, error) {
	prog := &sim.Progress{}
	opts.Progress = prog
	stopBar := func() {}
	if !o.quiet {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if isTerminal(stderr) {
				prog.Render(ctx, stderr, 200*time.Millisecond, 110)
			} else {
				prog.Render(ctx, lineWriter{stderr}, 15*time.Second, 100)
			}
		}()
		stopBar = func() { cancel(); <-done }
	}

	var rep *sim.Report
	body := func(ctx context.Context) error {
		var err error
		rep, err = sim.Run(ctx, sc, opts)
		return err
	}
	var err error
	if sc.Time == sim.TimeVirtual {
		err = vtime.Run(body)
	} else {
		err = body(context.Background())
	}
	stopBar()
	return rep, err
}

// runRepeated runs the same plan o.repeat times and reports every metric
// as its mean and 95 % interval; --out gets the aggregate (repeat.json,
// repeat.md, band plots) and each run's own files in run-K/.
func runRepeated(sc sim.Scenario, o *options, opts sim.Options, stdout, stderr io.Writer) error {
	var reps []*sim.Report
	for k := 1; k <= o.repeat; k++ {
		if !o.quiet {
			fmt.Fprintf(stderr, "run %d of %d\n", k, o.repeat)
		}
		rep, err := runOnce(sc, o, opts, stderr)
		if err != nil {
			return fmt.Errorf("run %d of %d: %w", k, o.repeat, err)
		}
		if o.out != "" {
			dir := filepath.Join(o.out, fmt.Sprintf("run-%d", k))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			if _, err := writeOut(dir, sc, rep); err != nil {
				return err
			}
		}
		reps = append(reps, rep)
		opts.AfterBoot = nil // profile the first run only
	}
	agg, err := sim.Aggregate(reps)
	if err != nil {
		return err
	}
	summary := agg.Summary()
	if o.out != "" {
		plots, err := agg.WritePlots(o.out)
		if err != nil {
			return err
		}
		j, err := agg.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "repeat.json"), j, 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		md := "# " + sc.Name + ": " + strconv.Itoa(o.repeat) + " runs of one plan\n\n```\n" + summary + "```\n"
		for _, p := range plots {
			md += fmt.Sprintf("\n![%s](%s)\n", strings.TrimSuffix(p, ".svg"), p)
		}
		if err := os.WriteFile(filepath.Join(o.out, "repeat.md"), []byte(md), 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		summary += fmt.Sprintf("  wrote %s: repeat.json, repeat.md, %s, run-1 … run-%d\n", o.out, strings.Join(plots, ", "), o.repeat)
	}
	if o.json {
		j, err := agg.JSON()
		if err != nil {
			return err
		}
		fmt.Fprint(stderr, summary)
		_, err = stdout.Write(j)
		return err
	}
	fmt.Fprint(stdout, summary)
	return nil
}

// writeProfiles writes the heap profile to path and the goroutine
// profile to path.goroutines.
func writeProfiles(path string) error {
	for _, p := range []struct{ name, file string }{{"heap", path}, {"goroutine", path + ".goroutines"}} {
		f, err := os.Create(p.file)
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		werr := pprof.Lookup(p.name).WriteTo(f, 0)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("--memprofile: %s profile: %w", p.name, werr)
		}
	}
	return nil
}

// writeOut writes the report files into dir and returns their paths.
func writeOut(dir string, sc sim.Scenario, rep *sim.Report) ([]string, error) {
	var files []string
	write := func(name string, b []byte) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		files = append(files, p)
		return nil
	}
	plots, err := rep.WritePlots(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range plots {
		files = append(files, filepath.Join(dir, p))
	}
	j, err := rep.JSON()
	if err != nil {
		return nil, err
	}
	if err := write("report.json", j); err != nil {
		return nil, err
	}
	if err := write("report.md", []byte(rep.Markdown(plots))); err != nil {
		return nil, err
	}
	y, err := sc.YAML()
	if err != nil {
		return nil, err
	}
	if err := write("scenario.yaml", y); err != nil {
		return nil, err
	}
	jobs, err := rep.JobsJSON()
	if err != nil {
		return nil, err
	}
	if err := write("jobs.json", jobs); err != nil {
		return nil, err
	}
	return files, nil
}

// defaultModulesDir is build/wasm under the repository holding the
// working directory, or build/wasm itself; it need not exist (the
// built-in modules then serve).
func defaultModulesDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("build", "wasm")
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "build", "wasm")
		}
		if filepath.Dir(d) == d {
			return filepath.Join("build", "wasm")
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lineWriter turns the progress bar's carriage returns into newlines, for
// logs.
type lineWriter struct{ w io.Writer }

func (l lineWriter) Write(p []byte) (int, error) {
	s := strings.TrimPrefix(strings.ReplaceAll(string(p), "\r", "\n"), "\n")
	if s == "" {
		return len(p), nil
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if _, err := io.WriteString(l.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

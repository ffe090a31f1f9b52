// Package sim is plasmsim's engine: it builds N real Phase nodes (package
// node) and M clients in one process over a simulated packet network
// (go-libp2p's QUIC over github.com/marcopolo/simnet links with latency
// and bandwidth), feeds them a workload of WebAssembly jobs, applies a
// fault schedule (crashes, partitions, churn, slow links, loss) and
// misbehaving nodes, and reports what happened.
//
// One seed fixes identities, topology, link parameters, workload and
// fault schedule (MakePlan). Run uses whatever clock it is called under:
// inside a testing/synctest bubble (go test, or plasmsim's default) time
// is virtual and only moves when every goroutine waits, so CPU cost never
// turns into timeouts; outside, it is the machine's clock.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Options are how to run a scenario, beyond the scenario itself.
type Options struct {
	// Modules are the workload's modules by name; nil: read from
	// ModulesDir.
	Modules    map[string][]byte
	ModulesDir string
	// CacheDir holds the compiled-module cache all nodes share; "": a
	// directory under WorkDir.
	CacheDir string
	// WorkDir holds the nodes' data directories; "": a temporary
	// directory, removed afterwards.
	WorkDir  string
	Progress *Progress    // nil: a private one
	Log      *slog.Logger // harness diagnostics; nil: discard
	// TimeMode is the clock Run is called under (TimeVirtual inside a
	// synctest bubble), for the report.
	TimeMode string
	// Replay is the command that replays this run, for the report.
	Replay string
	// AfterBoot, if set, is called once the network has converged, before
	// the workload (plasmsim writes its heap and goroutine profiles there).
	AfterBoot func()
}

// runner is one run in progress.
type runner struct {
	sc      Scenario
	plan    Plan
	c       *cluster
	oracle  *oracle
	modules map[string][]byte
	stats   *stats
	prog    *Progress
	log     *slog.Logger

	runStart  time.Time // simulated
	workStart time.Time

	mu  sync.Mutex
	err error // first harness error
}

func (r *runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
		r.log.Error("harness error", "event", "sim_error", "error", err.Error())
	}
}

func (r *runner) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Run runs a scenario to the end and reports on it. The error is for the
// harness (a node that could not be built, a missing module); whatever
// the jobs did is in the report.
func Run(ctx context.Context, sc Scenario, o Options) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	wall0 := wallNow()
	mem0 := readMemory()
	prog := o.Progress
	if prog == nil {
		prog = &Progress{}
	}
	log := o.Log
	if log == nil {
		log = discardLogger()
	}
	prog.SetPhase(PhaseSetup)
	plan := MakePlan(sc)

	modules := o.Modules
	if modules == nil {
		var err error
		if modules, err = LoadModules(o.ModulesDir, modulesOf(sc)); err != nil {
			return nil, err
		}
	}
	for _, name := range modulesOf(sc) {
		if len(modules[name]) == 0 {
			return nil, fmt.Errorf("module %s: not provided", name)
		}
	}
	work := o.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "plasmsim-")
		if err != nil {
			return nil, fmt.Errorf("work directory: %w", err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(work, "wasm-cache")
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	st := &stats{}
	r := &runner{sc: sc, plan: plan, modules: modules, stats: st, prog: prog, log: log, runStart: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopClock := r.tick(ctx)
	defer stopClock()

	var err error
	if r.oracle, err = newOracle(ctx, sc, modules, cacheDir); err != nil {
		return nil, err
	}
	defer r.oracle.close(context.Background())
	// Compile every module once before any node needs it, so the nodes
	// load it from the shared cache instead of each compiling it.
	for _, j := range firstOfEach(plan.Jobs) {
		if _, err := r.oracle.answer(ctx, j); err != nil {
			return nil, err
		}
	}

	if r.c, err = newCluster(ctx, sc, plan, work, cacheDir, st, prog, log); err != nil {
		return nil, err
	}
	prog.NodesTotal.Store(int64(sc.Nodes + sc.Clients))
	prog.JobsTotal.Store(int64(len(plan.Jobs)))

	rep := &Report{}
	func() {
		defer func() {
			prog.SetPhase(PhaseShutdown)
			shut := wallNow()
			r.c.closeAll()
			rep.Wall.ShutdownSeconds = seconds(wallNow() - shut)
		}()
		prog.SetPhase(PhaseBoot)
		if err := r.boot(ctx); err != nil {
			r.fail(err)
			return
		}
		rep.Wall.BootSeconds = seconds(wallNow() - wall0)
		prog.SetPhase(PhaseConverge)
		r.converge(ctx, rep)
		rep.Wall.ConvergedSeconds = seconds(wallNow() - wall0)
		rep.Memory = memoryAfterBoot(mem0, sc.Nodes+sc.Clients)
		rep.ConnsAfterBoot = r.c.conns()
		if o.AfterBoot != nil {
			o.AfterBoot()
		}

		prog.SetPhase(PhaseWorkload)
		w0 := wallNow()
		r.workload(ctx)
		rep.Wall.WorkloadSeconds = seconds(wallNow() - w0)
		rep.Sim.WorkloadSeconds = time.Since(r.workStart).Seconds()
		rep.Traffic = r.c.nw.Traffic()
		rep.Goroutines = runtime.NumGoroutine()
		rep.ConnsAtEnd = r.c.conns()
	}()
	if err := r.failed(); err != nil {
		return nil, err
	}
	prog.SetPhase(PhaseDone)
	r.fill(rep, o, wallNow()-wall0)
	rep.Plan = plan.Digest()
	return rep, nil
}

// tick keeps Progress.SimNanos current once a second of simulated time.
func (r *runner) tick(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			r.prog.SimNanos.Store(int64(time.Since(r.runStart)))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// firstOfEach returns the first job of each module.
func firstOfEach(jobs []JobPlan) []JobPlan {
	seen := map[string]bool{}
	var out []JobPlan
	for _, j := range jobs {
		if !seen[j.Module] {
			seen[j.Module] = true
			out = append(out, j)
		}
	}
	return out
}

// boot starts the servers wave by wave, then the clients. A wave's nodes
// start at their own moments over the wave interval, and each wave waits
// for the one before to join: a bootstrap node is never hit by a whole
// wave at once (libp2p's resource manager would refuse most of it).
func (r *runner) boot(ctx context.Context) error {
	waves := map[int][]int{}
	last := 0
	for _, s := range r.plan.Slots {
		if s.Wave >= 0 {
			waves[s.Wave] = append(waves[s.Wave], s.Index)
			last = max(last, s.Wave)
		}
	}
	deadline := time.Now().Add(r.sc.ConvergeTimeout.D())
	for w := 0; w <= last; w++ {
		began := time.Now()
		errs := make(chan error, len(waves[w]))
		for _, i := range waves[w] {
			go func() {
				if !sleepCtx(ctx, r.plan.Slots[i].StartOffset) {
					errs <- ctx.Err()
					return
				}
				errs <- r.c.start(i)
			}()
		}
		var all []error
		for range waves[w] {
			all = append(all, <-errs)
		}
		if err := errors.Join(all...); err != nil {
			return err
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		r.c.waitReady(wctx, waves[w])
		cancel()
		r.stats.event(fmt.Sprintf("wave %d: %d nodes started", w, len(waves[w])))
		if w < last && !sleepCtx(ctx, r.sc.Network.WaveInterval.D()-time.Since(began)) {
			return ctx.Err()
		}
	}
	return nil
}

// converge waits until every server has published its capability record
// (or the converge timeout passes).
func (r *runner) converge(ctx context.Context, rep *Report) {
	deadline := r.runStart.Add(r.sc.ConvergeTimeout.D())
	for {
		done, up := r.c.published()
		r.prog.Published.Store(int64(done))
		if done == up || !time.Now().Before(deadline) {
			rep.Converged = done == up
			rep.Published = done
			break
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
	}
	rep.Sim.ConvergedSeconds = time.Since(r.runStart).Seconds()
	r.stats.event(fmt.Sprintf("converged: %d of %d servers published", rep.Published, r.sc.Nodes))
}

// workload submits every job at its time and applies the fault schedule
// meanwhile; it returns when every job has finished.
func (r *runner) workload(ctx context.Context) {
	r.workStart = time.Now()
	r.stats.mu.Lock()
	r.stats.start = r.workStart
	r.stats.mu.Unlock()
	fctx, stopFaults := context.WithCancel(ctx)
	var faults sync.WaitGroup
	faults.Go(func() { r.runFaults(fctx) })
	var jobs sync.WaitGroup
	for _, j := range r.plan.Jobs {
		if !sleepCtx(ctx, j.At-time.Since(r.workStart)) {
			break
		}
		jobs.Go(func() { r.runJob(ctx, j) })
	}
	jobs.Wait()
	stopFaults()
	faults.Wait()
}

func seconds(d time.Duration) float64 { return d.Seconds() }

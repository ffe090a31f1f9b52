package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phase-protocol/plasm/examples/wat"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wasm"
)

// LoadModules finds the workload's modules, each as NAME.wasm: in dir
// when it is given and holds the file (build/wasm, made by `make wasm`),
// else among the modules built into the simulator (examples/wat: tiny,
// echo, exit7, trap, grow, bigmem, loop, flood, …). examples/hello is
// built from Go and is not built in: it needs dir.
func LoadModules(dir string, names []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, name := range names {
		if _, ok := out[name]; ok {
			continue
		}
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
			if err == nil {
				out[name] = b
				continue
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("module %s: %w", name, err)
			}
		}
		b, err := wat.Module(name)
		if err != nil {
			return nil, fmt.Errorf("module %s: no %s.wasm in %q and not built into plasmsim (build it with `make wasm`, pass --modules DIR)", name, name, dir)
		}
		out[name] = b
	}
	return out, nil
}

// modulesOf lists the modules a scenario's mix uses.
func modulesOf(sc Scenario) []string {
	var out []string
	for _, m := range sc.Workload.Mix {
		if !slices.Contains(out, m.Module) {
			out = append(out, m.Module)
		}
	}
	return out
}

// answer is what an honest node returns for a job.
type answer struct {
	outcome        string
	exitCode       int
	stdout, stderr []byte
}

func (a answer) same(b answer) bool {
	return a.outcome == b.outcome && a.exitCode == b.exitCode && bytes.Equal(a.stdout, b.stdout) && bytes.Equal(a.stderr, b.stderr)
}

// oracle knows the honest answer to every job: it runs the job itself, in
// deterministic mode, within the limits an honest node would apply.
type oracle struct {
	exec    *wasm.Executor
	sc      Scenario
	modules map[string][]byte

	mu      sync.Mutex
	answers map[string]answer
}

func newOracle(ctx context.Context, sc Scenario, modules map[string][]byte, cacheDir string) (*oracle, error) {
	e, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, fmt.Errorf("reference executor: %w", err)
	}
	return &oracle{exec: e, sc: sc, modules: modules, answers: map[string]answer{}}, nil
}

func (o *oracle) close(ctx context.Context) { _ = o.exec.Close(ctx) }

func (o *oracle) answer(ctx context.Context, j JobPlan) (answer, error) {
	key := fmt.Sprintf("%s\x00%q\x00%q\x00%d", j.Module, j.Args, j.Stdin, j.Seed)
	o.mu.Lock()
	a, ok := o.answers[key]
	o.mu.Unlock()
	if ok {
		return a, nil
	}
	n, w := o.sc.Node, o.sc.Workload
	res, err := o.exec.Run(ctx, wasm.Job{
		Module: o.modules[j.Module], Args: j.Args, Stdin: []byte(j.Stdin),
		Limits: wasm.Limits{
			MemoryMB: min(w.MemoryMB, n.MaxMemoryMB),
			Timeout:  time.Duration(min(w.TimeoutSeconds, n.MaxTimeoutSeconds)) * time.Second,
		},
		Deterministic: true, Seed: j.Seed,
	})
	if err != nil {
		return answer{}, fmt.Errorf("reference run of job %d (%s): %w", j.ID, j.Module, err)
	}
	a = answer{outcome: string(res.Outcome), exitCode: res.ExitCode, stdout: res.Stdout, stderr: res.Stderr}
	if res.Outcome != phase.OutcomeExited {
		a.exitCode = -1
	}
	o.mu.Lock()
	o.answers[key] = a
	o.mu.Unlock()
	return a, nil
}

// AttemptRecord is one node tried for a job.
type AttemptRecord struct {
	Node    int    `json:"node"` // slot, -1 if unknown
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	Liar    string `json:"liar,omitempty"` // the node's misbehaviour
}

// JobRecord is what happened to one job.
type JobRecord struct {
	ID          int             `json:"id"`
	Module      string          `json:"module"`
	Client      int             `json:"client"`
	SubmittedAt time.Duration   `json:"submitted_at_ns"` // after the workload started
	FoundAt     time.Duration   `json:"found_at_ns"`     // when discovery returned, after the workload started
	Latency     time.Duration   `json:"latency_ns"`
	OK          bool            `json:"ok"`
	Reason      string          `json:"reason,omitempty"` // failure reason
	Error       string          `json:"error,omitempty"`
	Node        int             `json:"node"` // slot whose result was accepted, -1 if none
	Outcome     string          `json:"outcome,omitempty"`
	Correct     bool            `json:"correct"`  // the accepted result is the honest answer
	BadAccepted bool            `json:"bad"`      // a misbehaving node's wrong result was accepted
	Agreeing    []int           `json:"agreeing"` // replicas whose results agreed
	Attempts    []AttemptRecord `json:"attempts"` // every node tried
	Retries     int             `json:"retries"`  // attempts that failed and moved the job on
}

// Failure reasons of a job.
const (
	ReasonNoCandidates = "no_candidates"
	ReasonExhausted    = "exhausted"
	ReasonDisagreement = "disagreement"
	ReasonRefused      = "refused"
	ReasonDeadline     = "deadline"
	ReasonInvalidJob   = "invalid_job"
	ReasonOther        = "other"
)

func failureReason(err error) string {
	switch {
	case errors.Is(err, client.ErrInvalidJob):
		return ReasonInvalidJob
	case errors.Is(err, client.ErrNoCandidates):
		return ReasonNoCandidates
	case errors.Is(err, client.ErrDisagreement):
		return ReasonDisagreement
	case errors.Is(err, client.ErrJobRefused):
		return ReasonRefused
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonDeadline
	case errors.Is(err, client.ErrExhausted):
		return ReasonExhausted
	}
	return ReasonOther
}

// runJob submits one job from its client and records the outcome.
func (r *runner) runJob(ctx context.Context, j JobPlan) {
	rec := JobRecord{ID: j.ID, Module: j.Module, Client: j.Client, SubmittedAt: time.Since(r.workStart), Node: -1}
	defer func() {
		if rec.OK {
			r.prog.JobsOK.Add(1)
		} else {
			r.prog.JobsFailed.Add(1)
		}
		r.stats.job(rec)
	}()
	m := r.c.members[j.Client]
	m.mu.Lock()
	cl := m.client
	m.mu.Unlock()
	if cl == nil {
		rec.Reason, rec.Error = ReasonOther, fmt.Sprintf("client slot %d is not running", j.Client)
		return
	}
	w := r.sc.Workload
	job := client.Job{
		Module: r.modules[j.Module], Args: j.Args, Stdin: []byte(j.Stdin),
		MemoryMB: w.MemoryMB, TimeoutSeconds: w.TimeoutSeconds, Deterministic: true, Seed: j.Seed,
		Attempts: w.Attempts, Replicas: w.Replicas,
	}
	opts := client.Options{
		Fanout: w.Fanout, OfferStagger: w.OfferStagger.D(),
		AcceptTimeout: w.AcceptTimeout.D(), AttemptTimeout: w.AttemptTimeout.D(), Deadline: w.Deadline.D(),
	}
	start := time.Now()
	res, err := cl.Run(context.WithValue(ctx, jobKey{}, &rec), job, opts)
	rec.Latency = time.Since(start)
	var attempts []client.Attempt
	if err != nil {
		rec.Reason = failureReason(err)
		rec.Error = firstLine(err.Error())
		var ce *client.Error
		if errors.As(err, &ce) {
			attempts = ce.Attempts
		}
	} else {
		rec.OK = true
		rec.Node = r.c.slotOf(res.Node)
		rec.Outcome = res.Outcome
		attempts = res.Attempts
		rec.Agreeing = []int{rec.Node}
		if len(res.Replicas) > 0 {
			rec.Agreeing = rec.Agreeing[:0]
			for _, rp := range res.Replicas {
				rec.Agreeing = append(rec.Agreeing, r.c.slotOf(rp.Node))
			}
		}
		truth, terr := r.oracle.answer(ctx, j)
		if terr != nil {
			r.fail(terr)
		} else {
			got := answer{outcome: res.Outcome, exitCode: res.ExitCode, stdout: res.Stdout, stderr: res.Stderr}
			rec.Correct = got.same(truth)
			if !rec.Correct {
				for _, s := range rec.Agreeing {
					if s >= 0 && r.plan.Slots[s].Behaviour != "" {
						rec.BadAccepted = true
					}
				}
			}
		}
	}
	for _, a := range attempts {
		s := r.c.slotOf(a.Node)
		ar := AttemptRecord{Node: s, Outcome: a.Outcome, Reason: a.Reason}
		if s >= 0 {
			ar.Liar = r.plan.Slots[s].Behaviour
		}
		rec.Attempts = append(rec.Attempts, ar)
		if a.Outcome != client.AttemptOK && a.Outcome != client.AttemptCancelled {
			rec.Retries++
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// jobKey carries a job's record to the discovery hook.
type jobKey struct{}

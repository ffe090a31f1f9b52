// Package conformance checks an implementation of Phase against the
// numbered requirements of its specification (conformance/spec): a node
// (in-process, by multiaddr, or a binary launched through a small contract),
// its local HTTP API, or a client. Each case names the requirement IDs it
// checks; a requirement's verdict is the worst of its cases'. Wire-level
// cases build their bytes from the spec (conformance/ref), not through the
// node's own encoder, and read answers the same way.
//
// Mutants — deliberately broken variants of Plasm's node — prove the suite
// bites: each must make the suite fail on the requirement it breaks.
package conformance

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// Side is what a case plays against.
type Side string

const (
	SideNode   Side = "node"   // a node under test, over the wire
	SideAPI    Side = "api"    // a node's local HTTP API
	SideClient Side = "client" // a client under test; the suite plays the node
	// SideAPIClient: a client of a node's HTTP API under test; the suite
	// plays the API.
	SideAPIClient Side = "api-client"
)

// Needs are what a case requires of its target; a target without them makes
// the case not applicable.
type Needs uint8

const (
	// NeedAPI: the target's local HTTP API.
	NeedAPI Needs = 1 << iota
	// NeedConfig: a node whose settings the suite chose (in-process or
	// launched): small queues and short step deadlines.
	NeedConfig
	// NeedDHT: the suite's own node joins the target's DHT.
	NeedDHT
	// NeedPlasm: the case checks Plasm's own code (a verifier, a config
	// rule) and runs only with the in-process target.
	NeedPlasm
)

// Case is one check.
type Case struct {
	Name  string   // area/what, e.g. "job/offer/module-too-large"
	Reqs  []string // requirement IDs it checks
	Side  Side
	Needs Needs
	// Exclusive cases hold the node's job slots (stalls, full queues):
	// they run one at a time, after the others.
	Exclusive bool
	Run       func(t *T)
}

// Verdict of a case or a requirement.
type Verdict string

const (
	Pass          Verdict = "pass"
	Fail          Verdict = "fail"
	NotApplicable Verdict = "not_applicable"
	// Informational: a SHOULD or MAY that failed; it does not fail the run.
	Informational Verdict = "informational"
	// NotImplemented: a requirement no case checks.
	NotImplemented Verdict = "not_implemented"
)

// CaseResult is what one case did.
type CaseResult struct {
	Name       string        `json:"name"`
	Reqs       []string      `json:"requirements"`
	Side       Side          `json:"side"`
	Verdict    Verdict       `json:"verdict"`
	Message    string        `json:"message,omitempty"`
	Transcript []Line        `json:"transcript,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
}

// Line is one thing sent or received, for the report.
type Line struct {
	Dir  string `json:"dir"` // "sent", "got" or "note"
	Text string `json:"text"`
}

// ReqResult is a requirement's verdict.
type ReqResult struct {
	spec.Requirement
	Verdict Verdict  `json:"verdict"`
	Cases   []string `json:"cases"`
}

// Report is a whole run.
type Report struct {
	Target       string        `json:"target"`
	Started      time.Time     `json:"started"`
	Duration     time.Duration `json:"duration_ns"`
	Level        string        `json:"level"`
	Cases        []CaseResult  `json:"cases"`
	Requirements []ReqResult   `json:"requirements"`
	Mutants      []MutantKill  `json:"mutants,omitempty"`
}

// Options select and configure a run.
type Options struct {
	Run      *regexp.Regexp // only cases whose name matches (nil: all)
	Level    string         // "must", "should" or "all" (default all)
	Parallel int            // cases at once (default 4)
	Progress io.Writer      // one line per case, when set
}

// Suite is the registry of cases.
type Suite struct {
	reg   *spec.Registry
	cases []Case
}

// New builds the suite from the embedded specification and every case.
func New() (*Suite, error) {
	reg, err := spec.Load()
	if err != nil {
		return nil, err
	}
	s := &Suite{reg: reg, cases: AllCases()}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// Registry is the specification's requirements.
func (s *Suite) Registry() *spec.Registry { return s.reg }

// Cases returns every case.
func (s *Suite) Cases() []Case { return slices.Clone(s.cases) }

// check refuses a suite whose cases name unknown requirements or repeat a
// name.
func (s *Suite) check() error {
	var errs []string
	names := map[string]bool{}
	for _, c := range s.cases {
		if names[c.Name] {
			errs = append(errs, "case "+c.Name+" is defined twice")
		}
		names[c.Name] = true
		if len(c.Reqs) == 0 {
			errs = append(errs, "case "+c.Name+" names no requirement")
		}
		for _, id := range c.Reqs {
			if _, ok := s.reg.Get(id); !ok {
				errs = append(errs, fmt.Sprintf("case %s names %s, which the specification does not define", c.Name, id))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("conformance: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Coverage maps each requirement ID to the cases that check it.
func (s *Suite) Coverage() map[string][]string {
	out := map[string][]string{}
	for _, c := range s.cases {
		for _, id := range c.Reqs {
			out[id] = append(out[id], c.Name)
		}
	}
	return out
}

// selected reports whether a case runs under opts.
func (s *Suite) selected(c Case, opts Options) bool {
	if opts.Run != nil && !opts.Run.MatchString(c.Name) && !slices.ContainsFunc(c.Reqs, opts.Run.MatchString) {
		return false
	}
	if opts.Level == "" || opts.Level == "all" {
		return true
	}
	for _, id := range c.Reqs {
		r, _ := s.reg.Get(id)
		if opts.Level == "must" && r.Level == spec.Must || opts.Level == "should" && r.Level != spec.May {
			return true
		}
	}
	return false
}

// Run runs the selected cases of one side against env and grades the
// requirements.
func (s *Suite) Run(ctx context.Context, env *Env, side Side, opts Options) *Report {
	return s.runFiltered(ctx, env, side, opts, nil)
}

func (s *Suite) runFiltered(ctx context.Context, env *Env, side Side, opts Options, keep func(Case) bool) *Report {
	start := time.Now()
	par := opts.Parallel
	if par <= 0 {
		par = 4
	}
	var todo []Case
	for _, c := range s.cases {
		if c.Side == side && s.selected(c, opts) && (keep == nil || keep(c)) {
			todo = append(todo, c)
		}
	}
	// Shared cases first, in parallel; exclusive ones after, alone.
	slices.SortStableFunc(todo, func(a, b Case) int {
		switch {
		case a.Exclusive == b.Exclusive:
			return 0
		case b.Exclusive:
			return -1
		}
		return 1
	})
	results := make([]CaseResult, len(todo))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var pmu sync.Mutex
	done := 0
	for i, c := range todo {
		if c.Exclusive {
			wg.Wait()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = runCase(ctx, env, c)
			if opts.Progress != nil {
				pmu.Lock()
				done++
				fmt.Fprintf(opts.Progress, "[%3d/%3d] %-14s %s (%s) %s\n", done, len(todo), results[i].Verdict, c.Name,
					results[i].Duration.Round(10*time.Millisecond), shorten(results[i].Message, 100))
				pmu.Unlock()
			}
		}()
		if c.Exclusive {
			wg.Wait()
		}
	}
	wg.Wait()
	rep := &Report{Target: env.Describe(), Started: start, Duration: time.Since(start), Level: opts.Level, Cases: results}
	rep.Requirements = s.grade(results, opts)
	return rep
}

// grade gives each requirement a case of this run checked the worst
// verdict of its cases; a failed SHOULD or MAY is informational. With no
// case filter, a requirement that no case of the suite checks at all is
// listed as not implemented.
func (s *Suite) grade(results []CaseResult, opts Options) []ReqResult {
	byReq := map[string][]CaseResult{}
	for _, r := range results {
		for _, id := range r.Reqs {
			byReq[id] = append(byReq[id], r)
		}
	}
	cov := s.Coverage()
	var out []ReqResult
	for _, q := range s.reg.All() {
		rs, ran := byReq[q.ID]
		if !ran {
			if opts.Run == nil && len(cov[q.ID]) == 0 {
				out = append(out, ReqResult{Requirement: q, Verdict: NotImplemented})
			}
			continue
		}
		rr := ReqResult{Requirement: q, Verdict: NotApplicable}
		for _, r := range rs {
			rr.Cases = append(rr.Cases, r.Name)
			switch {
			case r.Verdict == Fail:
				rr.Verdict = Fail
			case r.Verdict == Pass && rr.Verdict == NotApplicable:
				rr.Verdict = Pass
			}
		}
		if rr.Verdict == Fail && q.Level != spec.Must {
			rr.Verdict = Informational
		}
		out = append(out, rr)
	}
	sort.SliceStable(out, func(i, j int) bool { return spec.Less(out[i].ID, out[j].ID) })
	return out
}

// OK reports whether every MUST requirement that ran passed (or was not
// applicable) and no case failed outright on a MUST.
func (r *Report) OK() bool {
	for _, q := range r.Requirements {
		if q.Level == spec.Must && q.Verdict == Fail {
			return false
		}
	}
	return true
}

// Failed lists the MUST requirements that failed.
func (r *Report) Failed() []string {
	var out []string
	for _, q := range r.Requirements {
		if q.Level == spec.Must && q.Verdict == Fail {
			out = append(out, q.ID)
		}
	}
	return out
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

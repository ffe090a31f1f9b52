package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/phase-protocol/plasm/conformance"
)

const conformanceUsage = `usage: plasmsim conformance [TARGET] [flags]

Checks an implementation of Phase against the numbered requirements of
SPEC.md, docs/spec-wire.md and docs/spec-api.md (docs/CONFORMANCE.md).

Targets (one; default: Plasm's own node, in-process):
  --target MULTIADDR   a running node, black box (…/p2p/<peer-id>); --api ADDR adds its HTTP API
  --launch CMD         a node started through the launch contract (sh -c CMD)
  --mutants            every mutant of Plasm's node; fails unless each is killed
  --mutant NAME        one mutant, as the target
  --client CMD         a client under the client contract (sh -c CMD, once per
                       case): the suite plays the nodes (docs/conformance-clients.md)
  --api-client CMD     a client of a node's HTTP API under the API-client contract:
                       the suite plays the API

Exit status: 0 when every MUST passed (with --mutants: when every mutant is
killed), 1 when one failed, 2 on a usage error.

flags:
`

func runConformance(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plasmsim conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, conformanceUsage); fs.PrintDefaults() }
	target := fs.String("target", "", "multiaddr of a running node (…/p2p/<peer-id>)")
	apiAddr := fs.String("api", "", "with --target: the node's API address (host:port)")
	launch := fs.String("launch", "", "command that starts a node under the launch contract")
	clientCmd := fs.String("client", "", "a client command under the client contract; the suite plays the nodes")
	apiClientCmd := fs.String("api-client", "", "an API client command under the API-client contract; the suite plays the API")
	runPat := fs.String("run", "", "only cases whose name or requirement ID matches this regular expression")
	level := fs.String("level", "all", "must, should or all")
	mutant := fs.String("mutant", "", "run against this mutant of Plasm's node")
	mutants := fs.Bool("mutants", false, "run against every mutant; fail unless each is killed")
	list := fs.Bool("list", false, "print the requirements and the cases that check them, then exit")
	junit := fs.String("junit", "", "write a JUnit XML report here")
	jsonOut := fs.String("json", "", "write a JSON report here")
	htmlOut := fs.String("html", "", "write a self-contained HTML report here")
	parallel := fs.Int("parallel", 4, "cases at once")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "plasmsim conformance: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	targets := 0
	for _, set := range []bool{*target != "", *launch != "", *mutant != "", *mutants, *clientCmd != "", *apiClientCmd != ""} {
		if set {
			targets++
		}
	}
	if targets > 1 {
		fmt.Fprintln(stderr, "plasmsim conformance: give at most one of --target, --launch, --mutant, --mutants, --client, --api-client")
		return 2
	}
	if *apiAddr != "" && *target == "" {
		fmt.Fprintln(stderr, "plasmsim conformance: --api goes with --target")
		return 2
	}
	if !slices.Contains([]string{"must", "should", "all"}, *level) {
		fmt.Fprintf(stderr, "plasmsim conformance: --level %q is not must, should or all\n", *level)
		return 2
	}
	opts := conformance.Options{Level: *level, Parallel: *parallel}
	if *runPat != "" {
		re, err := regexp.Compile(*runPat)
		if err != nil {
			fmt.Fprintf(stderr, "plasmsim conformance: --run: %v\n", err)
			return 2
		}
		opts.Run = re
	}
	if !*quiet {
		opts.Progress = stderr
	}
	s, err := conformance.New()
	if err != nil {
		fmt.Fprintf(stderr, "plasmsim conformance: %v\n", err)
		return 1
	}
	if *list {
		printRegistry(s, stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "plasmsim-conformance-")
	if err != nil {
		fmt.Fprintf(stderr, "plasmsim conformance: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	if *mutants {
		rep := &conformance.Report{Target: "mutants of plasmd"}
		rep.Mutants = s.RunMutants(ctx, dir, nil, opts)
		code := 0
		for _, k := range rep.Mutants {
			if !k.Killed {
				fmt.Fprintf(stderr, "mutant %s survived (breaks %s)\n", k.Name, strings.Join(k.Breaks, " "))
				code = 1
			}
		}
		fmt.Fprintf(stdout, "%d mutants, %d killed\n", len(rep.Mutants), countKilled(rep.Mutants))
		if err := writeReports(rep, *junit, *jsonOut, *htmlOut); err != nil {
			fmt.Fprintf(stderr, "plasmsim conformance: %v\n", err)
			return 1
		}
		return code
	}

	for _, c := range []struct {
		cmd, label string
		side       conformance.Side
	}{{*clientCmd, "client: ", conformance.SideClient}, {*apiClientCmd, "API client: ", conformance.SideAPIClient}} {
		if c.cmd != "" {
			env := conformance.ForClient(c.cmd, dir)
			env.Name = c.label + c.cmd
			defer env.Close()
			return finish(s.Run(ctx, env, c.side, opts), stdout, stderr, *junit, *jsonOut, *htmlOut)
		}
	}

	var env *conformance.Env
	switch {
	case *target != "":
		env, err = conformance.ByAddr(*target, *apiAddr, dir)
	case *launch != "":
		env, err = conformance.Launch(ctx, *launch, dir, stderr)
	case *mutant != "":
		var m *conformance.Mutant
		for _, x := range conformance.Mutants() {
			if x.Name == *mutant {
				m = &x
			}
		}
		if m == nil {
			fmt.Fprintf(stderr, "plasmsim conformance: no mutant %q (see --mutants)\n", *mutant)
			return 2
		}
		o := conformance.InProcessOptions{Dir: dir, Stamp: m.Stamp, API: m.API}
		if m.Hooks != nil {
			o.Hooks = m.Hooks()
		}
		env, err = conformance.InProcess(ctx, o)
		if env != nil {
			env.Name = "mutant " + m.Name
		}
	default:
		env, err = conformance.InProcess(ctx, conformance.InProcessOptions{Dir: dir})
	}
	if err != nil {
		fmt.Fprintf(stderr, "plasmsim conformance: %v\n", err)
		return 1
	}
	defer env.Close()
	rep := s.Run(ctx, env, conformance.SideNode, opts)
	api := s.Run(ctx, env, conformance.SideAPI, opts)
	return finish(conformance.Merge(rep, api), stdout, stderr, *junit, *jsonOut, *htmlOut)
}

// finish prints the summary, writes the reports and gives the exit status.
func finish(rep *conformance.Report, stdout, stderr io.Writer, junit, jsonOut, htmlOut string) int {
	printSummary(rep, stdout)
	if err := writeReports(rep, junit, jsonOut, htmlOut); err != nil {
		fmt.Fprintf(stderr, "plasmsim conformance: %v\n", err)
		return 1
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

func countKilled(ks []conformance.MutantKill) int {
	n := 0
	for _, k := range ks {
		if k.Killed {
			n++
		}
	}
	return n
}

func printSummary(rep *conformance.Report, w io.Writer) {
	fmt.Fprintf(w, "target: %s  (%d cases in %s)\n", rep.Target, len(rep.Cases), rep.Duration.Round(1e8))
	for _, c := range rep.Summary() {
		if c.Total == 0 {
			continue
		}
		fmt.Fprintf(w, "%-6s %3d requirements: %3d pass  %3d fail  %3d not applicable  %3d informational  %3d not implemented\n",
			c.Level, c.Total, c.Pass, c.Fail, c.NA, c.Informational, c.NotImplemented)
	}
	if f := rep.Failed(); len(f) > 0 {
		fmt.Fprintf(w, "failed MUST requirements: %s\n", strings.Join(f, " "))
	}
}

func printRegistry(s *conformance.Suite, w io.Writer) {
	cov := s.Coverage()
	for _, q := range s.Registry().All() {
		cases := cov[q.ID]
		sort.Strings(cases)
		party := q.Party
		if party == "" {
			party = "-"
		}
		fmt.Fprintf(w, "%-8s %-6s %-6s %-24s %d case(s)\n", q.ID, q.Level, party, filepath.Base(q.File), len(cases))
		for _, c := range cases {
			fmt.Fprintf(w, "           %s\n", c)
		}
	}
}

func writeReports(rep *conformance.Report, junit, jsonPath, htmlPath string) error {
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{junit, rep.WriteJUnit}, {jsonPath, rep.WriteJSON}, {htmlPath, rep.WriteHTML}} {
		if out.path == "" {
			continue
		}
		f, err := os.Create(out.path)
		if err != nil {
			return err
		}
		err = out.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", out.path, err)
		}
	}
	return nil
}

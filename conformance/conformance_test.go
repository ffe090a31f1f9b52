package conformance

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// Every MUST of the specification has at least one case (and every case
// names requirements that exist: New checks that).
func TestEveryMustHasACase(t *testing.T) {
	s, err := New()
	require.NoError(t, err)
	cov := s.Coverage()
	var missing []string
	musts := 0
	for _, q := range s.Registry().All() {
		if q.Level != spec.Must {
			continue
		}
		musts++
		if len(cov[q.ID]) == 0 {
			missing = append(missing, q.ID)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return spec.Less(missing[i], missing[j]) })
	t.Logf("%d cases; MUST coverage %d of %d", len(s.Cases()), musts-len(missing), musts)
	if len(missing) > 0 {
		t.Errorf("MUST requirements with no case: %s", strings.Join(missing, " "))
	}
}

// The node side of the suite against Plasm's own node, in-process.
func TestInProcessNode(t *testing.T) { runInProcess(t, SideNode) }

// The API side of the suite against Plasm's own node's API, in-process,
// with the suite's worker as the node that runs the jobs.
func TestInProcessAPI(t *testing.T) { runInProcess(t, SideAPI) }

func runInProcess(t *testing.T, side Side) {
	s, err := New()
	require.NoError(t, err)
	ctx := context.Background()
	env, err := InProcess(ctx, InProcessOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	defer env.Close()
	opts := Options{}
	if testing.Verbose() {
		opts.Progress = os.Stderr
	}
	rep := s.Run(ctx, env, side, opts)
	ran := 0
	for _, c := range rep.Cases {
		if c.Verdict == Fail {
			t.Errorf("%s %v: %s\n%s", c.Name, c.Reqs, c.Message, transcriptText(c.Transcript))
		}
		if c.Verdict != NotApplicable {
			ran++
		}
	}
	require.NotZero(t, ran, "no %s case ran", side)
	t.Log(summaryLine(rep))
}

func summaryLine(r *Report) string {
	var b strings.Builder
	for _, c := range r.Summary() {
		fmt.Fprintf(&b, "%s: %d pass, %d fail, %d n/a, %d informational; ", c.Level, c.Pass, c.Fail, c.NA, c.Informational)
	}
	return b.String()
}

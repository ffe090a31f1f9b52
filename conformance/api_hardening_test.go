package conformance

import (
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The local API's access rules (spec-api §1.1) against Plasm's own node,
// in-process.
func TestInProcessAPIAccess(t *testing.T) {
	s, err := New()
	require.NoError(t, err)
	ctx := context.Background()
	env, err := InProcess(ctx, InProcessOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	defer env.Close()
	rep := s.Run(ctx, env, SideAPI, Options{Run: regexp.MustCompile(`^api/access/`)})
	require.NotEmpty(t, rep.Cases)
	for _, c := range rep.Cases {
		if c.Verdict != Pass {
			t.Errorf("%s %v: %s: %s\n%s", c.Name, c.Reqs, c.Verdict, c.Message, transcriptText(c.Transcript))
		}
	}
	t.Log(summaryLine(rep))
}

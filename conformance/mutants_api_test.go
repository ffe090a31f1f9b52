package conformance

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every API mutant of Plasm's node is killed by the API cases.
func TestAPIMutantsKilled(t *testing.T) {
	s, err := New()
	require.NoError(t, err)
	var names []string
	for _, m := range Mutants() {
		if m.API != nil {
			names = append(names, m.Name)
		}
	}
	require.NotEmpty(t, names)
	opts := Options{}
	if testing.Verbose() {
		opts.Progress = os.Stderr
	}
	for _, k := range s.RunMutants(context.Background(), t.TempDir(), names, opts) {
		assert.True(t, k.Killed, "mutant %s survived (breaks %v; failed %v) %s", k.Name, k.Breaks, k.Failed, k.Message)
	}
}

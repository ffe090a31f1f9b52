package vtime

import (
	"context"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestToolchainIsThePinnedOne fails loudly when the Go that runs the tests
// is not the minor version sim/go.mod pins and this package was written
// for: testing.MainStart may have changed under it.
func TestToolchainIsThePinnedOne(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^toolchain (go\d+\.\d+)(\.\d+)?$`).FindSubmatch(mod)
	require.NotNil(t, m, "sim/go.mod has no toolchain line")
	pinned := string(m[1])
	assert.Equal(t, SupportedGo, pinned, "sim/go.mod pins %s but vtime is written for %s", pinned, SupportedGo)
	if err := CheckToolchain(); err != nil {
		t.Fatalf("the toolchain changed: %v", err)
	}
	assert.True(t, strings.HasPrefix(runtime.Version(), pinned))
}

// Virtual time: a long sleep inside Run costs no wall time.
func TestRunIsVirtual(t *testing.T) {
	start := time.Now()
	var slept time.Duration
	err := Run(func(ctx context.Context) error {
		t0 := time.Now()
		time.Sleep(time.Hour)
		slept = time.Since(t0)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, time.Hour, slept)
	assert.Less(t, time.Since(start), time.Minute)
}

//go:debug tlsmlkem=0
package sim

import (
	"os"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
)

// sharedCache is one compiled-module cache for every test in the package:
// compiling examples/hello takes seconds, once is enough.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plasmsim-test-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testModules returns the bytes of every module a scenario's mix uses.
func testModules(t *testing.T, sc Scenario) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range modulesOf(sc) {
		out[name] = testwasm.Bytes(t, name)
	}
	return out
}

// runVirtual runs a scenario inside a synctest bubble (virtual time).
func runVirtual(t *testing.T, sc Scenario) *Report {
	t.Helper()
	mods := testModules(t, sc)
	var rep *Report
	synctest.Test(t, func(t *testing.T) {
		var err error
		rep, err = Run(t.Context(), sc, Options{Modules: mods, CacheDir: sharedCache, WorkDir: t.TempDir(), TimeMode: TimeVirtual})
		require.NoError(t, err)
	})
	require.NotNil(t, rep)
	t.Logf("\n%s", rep.Summary())
	return rep
}

// small is a quick fault-free scenario to build tests on.
func small(nodes, jobs int) Scenario {
	sc := Default()
	sc.Name = "test"
	sc.Nodes, sc.Clients = nodes, 1
	sc.Workload.Jobs = jobs
	sc.Workload.Duration = Duration(10e9)
	sc.Workload.Mix = []Module{{Module: "hello", Weight: 2}, {Module: "tiny", Weight: 1}}
	return sc
}

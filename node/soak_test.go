//go:build soak

package node_test

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/phase-protocol/plasm/node/config"
)

var soakFor = flag.Duration("soak", 2*time.Minute, "how long the hostile-load soak attacks")

// The hostile-load soak: the short test's mix with more identities, for
// -soak (default 2 min), with the shipped job settings. Run:
//
//	go test -tags soak -run TestHostileSoak -count=1 -v -timeout 10m ./node/
func TestHostileSoak(t *testing.T) {
	cfg := testConfig(t)
	cfg.Jobs.StepTimeout = config.Duration(30 * time.Second)
	a := hostile{Stallers: 8, Holders: 16, Trickle: 4, Junk: 4, Compilers: 4, Replayers: 4, compileHeat: 2000}
	r := hostileRun(t, cfg, a, 20*time.Second, *soakFor)
	r.log(t)
	assert.Equal(t, r.during.total.Load(), r.during.ok.Load(), "every honest job succeeds during the attack")
	assert.LessOrEqual(t, r.uploadPeak, r.bufferMax)
	// Compile-heavy modules dominate: each holds ~50 MB of interpreter
	// arrays until its compile lands, and those in use by running jobs
	// cannot be evicted (docs/PERFORMANCE.md, "Hostile load").
	assert.Less(t, r.heapGrowth, int64(2<<30), "heap bounded during the attack")
}

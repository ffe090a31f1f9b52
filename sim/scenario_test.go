package sim

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/phase-protocol/plasm/node/scripted"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseScenario(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // substring; "" means valid
		check   func(t *testing.T, sc Scenario)
	}{
		{name: "empty document keeps defaults", doc: "", check: func(t *testing.T, sc Scenario) {
			assert.Equal(t, Default(), sc)
		}},
		{name: "fields override defaults", doc: "nodes: 7\nnetwork:\n  latency: 80ms\n  bandwidth: 5Mbps\nworkload:\n  jobs: 3\n",
			check: func(t *testing.T, sc Scenario) {
				assert.Equal(t, 7, sc.Nodes)
				assert.Equal(t, 80*time.Millisecond, sc.Network.Latency.D())
				assert.Equal(t, Bandwidth(5_000_000), sc.Network.Bandwidth)
				assert.Equal(t, 3, sc.Workload.Jobs)
				assert.Equal(t, Default().Clients, sc.Clients)
			}},
		{name: "unknown field", doc: "nodez: 3\n", wantErr: "field nodez not found"},
		{name: "unknown nested field", doc: "network:\n  latencyy: 1s\n", wantErr: "latencyy"},
		{name: "bad duration", doc: "network:\n  latency: fast\n", wantErr: `"fast" is not a duration`},
		{name: "bad bandwidth", doc: "network:\n  bandwidth: lots\n", wantErr: `"lots" is not a bandwidth`},
		{name: "nodes out of range", doc: "nodes: 0\n", wantErr: "nodes: 0 out of range"},
		{name: "memory limit", doc: "memory_limit_mb: 5120\n", check: func(t *testing.T, sc Scenario) {
			assert.Equal(t, 5120, sc.MemoryLimitMB)
		}},
		{name: "packets on a 1 ms grid by default", doc: "", check: func(t *testing.T, sc Scenario) {
			assert.Equal(t, time.Millisecond, sc.Network.Tick.D())
		}},
		{name: "exact packet times", doc: "network: {tick: 0s}\n", check: func(t *testing.T, sc Scenario) {
			assert.Zero(t, sc.Network.Tick.D())
		}},
		{name: "negative tick", doc: "network: {tick: -1ms}\n", wantErr: "network.tick"},
		{name: "negative memory limit", doc: "memory_limit_mb: -1\n", wantErr: "memory_limit_mb: -1 is negative"},
		{name: "negative conn grace", doc: "node: {conn_grace: -1s}\n", wantErr: "node.conn_grace (ms): -1000 out of range"},
		{name: "unknown module", doc: "workload:\n  mix: [{module: nope, weight: 1}]\n", wantErr: `workload.mix[0].module: "nope"`},
		{name: "spinning module in virtual time", doc: "workload:\n  mix: [{module: loop, weight: 1}]\n", wantErr: "never blocks"},
		{name: "spinning module in real time", doc: "time: real\nworkload:\n  mix: [{module: loop, weight: 1}]\n"},
		{name: "unknown fault", doc: "faults: [{kind: meteor}]\n", wantErr: `faults[0].kind: "meteor"`},
		{name: "partition needs a share", doc: "faults: [{kind: partition, fraction: 1}]\n", wantErr: "faults[0].fraction"},
		{name: "churn needs a rate", doc: "faults: [{kind: churn, duration: 10s}]\n", wantErr: "faults[0].rate"},
		{name: "unknown behaviour", doc: "misbehaving: {fraction: 0.1, behaviours: [sneaky]}\n", wantErr: `misbehaving.behaviours[0]: "sneaky"`},
		{name: "attempts below replicas", doc: "workload: {replicas: 3, attempts: 2}\n", wantErr: "workload.attempts"},
		{name: "two documents", doc: "nodes: 3\n---\nnodes: 4\n", wantErr: "more than one YAML document"},
		{name: "not a mapping", doc: "- 1\n- 2\n", wantErr: "decoding"},
		{name: "every error named", doc: "nodes: 0\nclients: 0\n", wantErr: "clients: 0 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse([]byte(tt.doc))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, sc)
			}
		})
	}
}

func TestScenarioYAMLRoundTrip(t *testing.T) {
	sc := Default()
	sc.Faults = []Fault{{Kind: FaultCrash, At: Duration(5 * time.Second), Duration: Duration(time.Second), Count: 2}}
	sc.Misbehaving.Behaviours = []string{scripted.WrongOutput}
	b, err := sc.YAML()
	require.NoError(t, err)
	back, err := Parse(b)
	require.NoError(t, err)
	assert.Equal(t, sc, back)
}

// Every shipped scenario parses, and its plan is what its comments
// promise in outline.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "scenarios", "sim", "*.yaml"))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
		sc, err := Load(f)
		require.NoError(t, err, f)
		assert.NotEmpty(t, sc.Description, "%s: every scenario says what it is for", f)
		p := MakePlan(sc)
		assert.Len(t, p.Jobs, sc.Workload.Jobs, f)
	}
	for _, want := range []string{"smoke.yaml", "1000-nodes.yaml", "churn.yaml", "partition.yaml", "adversarial.yaml"} {
		assert.True(t, names[want], "scenarios/sim/%s is missing", want)
	}
	adv, err := Load(filepath.Join("..", "scenarios", "sim", "adversarial.yaml"))
	require.NoError(t, err)
	assert.Equal(t, 2, adv.Workload.Replicas)
	assert.InDelta(t, 0.1, adv.Misbehaving.Fraction, 1e-9)
}

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in   string
		want Bandwidth
		bad  bool
	}{
		{in: "20Mbps", want: 20_000_000},
		{in: "1.5Gbps", want: 1_500_000_000},
		{in: "500 kbps", want: 500_000},
		{in: "64000", want: 64000},
		{in: "fast", bad: true},
		{in: "-3Mbps", bad: true},
		{in: "", bad: true},
		{in: "9999Gbps", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseBandwidth(tt.in)
		if tt.bad {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		again, err := ParseBandwidth(got.String())
		require.NoError(t, err)
		assert.Equal(t, got, again, "String() reads back")
	}
}

func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "sim", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("nodes: 3\nfaults: [{kind: crash, count: 1, at: 1s}]\n"))
	f.Add([]byte("network: {bandwidth: 1kbps}\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := Parse(b)
		if err != nil {
			return
		}
		// A scenario that parses is valid and can be planned.
		require.NoError(t, sc.Validate())
		if sc.Nodes <= 200 && sc.Workload.Jobs <= 1000 && len(sc.Faults) <= 8 {
			p := MakePlan(sc)
			require.Len(t, p.Jobs, sc.Workload.Jobs)
		}
	})
}

func TestPlanIsFixedBySeed(t *testing.T) {
	sc := Default()
	sc.Nodes, sc.Clients = 40, 3
	sc.Misbehaving = Misbehaving{Fraction: 0.2, LatencyFactor: 0.5}
	sc.Faults = []Fault{
		{Kind: FaultCrash, At: Duration(time.Second), Duration: Duration(5 * time.Second), Fraction: 0.1},
		{Kind: FaultPartition, At: Duration(2 * time.Second), Duration: Duration(5 * time.Second), Fraction: 0.3},
		{Kind: FaultChurn, At: Duration(0), Duration: Duration(10 * time.Second), Rate: 0.5},
		{Kind: FaultSlow, At: Duration(0), Fraction: 0.1, Factor: 5},
		{Kind: FaultLoss, At: Duration(3 * time.Second), Duration: Duration(time.Second), Loss: 0.01},
	}
	a, b := MakePlan(sc), MakePlan(sc)
	require.True(t, reflect.DeepEqual(a, b), "same seed, same plan")

	sc2 := sc
	sc2.Seed = 2
	c := MakePlan(sc2)
	assert.NotEqual(t, a.Slots[0].IdentitySeed, c.Slots[0].IdentitySeed, "identities follow the seed")
	assert.NotEqual(t, a.Describe(), c.Describe(), "the fault schedule follows the seed")

	// The plan's shape is what the scenario asks for.
	assert.Len(t, a.Liars()[scripted.WrongOutput], 1)
	n := 0
	for _, s := range a.Slots {
		if s.Behaviour != "" {
			n++
			assert.GreaterOrEqual(t, s.Index, sc.Network.BootstrapNodes, "bootstrap nodes are honest")
		}
		if s.Role == RoleServer {
			for _, bi := range s.Bootstrap {
				assert.Less(t, bi, sc.Network.BootstrapNodes)
				assert.NotEqual(t, s.Index, bi, "no node bootstraps through itself")
			}
		}
	}
	assert.Equal(t, 8, n)
	kinds := map[string]int{}
	for _, e := range a.Events {
		kinds[e.Kind]++
	}
	assert.Equal(t, 1, kinds[EvCrash])
	assert.Equal(t, 1, kinds[EvRestart])
	assert.Equal(t, 1, kinds[EvHeal])
	assert.Equal(t, 5, kinds[EvJoin], "churn at 0.5/s for 10 s")
	assert.Equal(t, 2, kinds[EvLoss], "loss on, then back to the network's own")
	assert.True(t, isSorted(a.Events))
	// Changing only the workload leaves topology and faults alone.
	sc3 := sc
	sc3.Workload.Jobs = 7
	d := MakePlan(sc3)
	assert.Equal(t, a.Slots, d.Slots)
	assert.Equal(t, a.Events, d.Events)
}

func isSorted(evs []Event) bool {
	for i := 1; i < len(evs); i++ {
		if evs[i].At < evs[i-1].At {
			return false
		}
	}
	return true
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	assert.Equal(t, Percentiles{P50: 50, P90: 90, P99: 99, Max: 100, N: 100}, p)
	assert.Equal(t, Percentiles{}, percentiles(nil))
	assert.Equal(t, 7.0, percentiles([]time.Duration{7 * time.Millisecond}).P99)
}

func TestProgressLine(t *testing.T) {
	var p Progress
	p.SetPhase(PhaseWorkload)
	p.NodesTotal.Store(10)
	p.NodesUp.Store(10)
	p.JobsTotal.Store(4)
	p.JobsOK.Store(1)
	p.JobsFailed.Store(1)
	line := p.Line(80, 65*time.Second)
	assert.Contains(t, line, "jobs 2/4 ok 1 failed 1")
	assert.Contains(t, line, "wall 01:05")
	assert.Contains(t, line, "[#")
	assert.Contains(t, line, ".]")
}

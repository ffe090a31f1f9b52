package scenarios

import (
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
)

// archJob is one deterministic job both archs run.
type archJob struct {
	name string
	req  api.JobRequest
}

func archJobs(t *testing.T) []archJob {
	req := func(mod string, args []string, stdin string) api.JobRequest {
		return api.JobRequest{Module: module(t, mod), Args: args, Stdin: []byte(stdin), MemoryMB: 32, TimeoutSeconds: 60,
			Attempts: 3, Deterministic: true, Seed: 1234}
	}
	return []archJob{
		// probe: clock readings and 16 random bytes, all fixed by
		// deterministic mode and the seed.
		{"probe", req("probe.wasm", nil, "")},
		{"hello", req("hello.wasm", []string{"byte-identical on amd64 and arm64 ✓"}, "")},
		{"echo", req("echo.wasm", []string{"a", "b c"}, "stdin bytes\x00\xff\n")},
	}
}

// TestMixedArch: amd64 and arm64 nodes on one network; a client of each
// arch sends the same deterministic jobs to a node of the other arch.
// Outputs, output hashes and module/input hashes must be byte-identical
// across archs, and each node's record must report its real arch.
func TestMixedArch(t *testing.T) {
	s := newScenario(t, "arch")
	nw := s.Network("arch", "")
	boot := s.StartNode(NodeSpec{Name: "boot", Image: imageNodeAMD64, Arch: "amd64", Networks: []string{nw}})
	bs := []string{boot.Addr(nw)}
	clientCfg := map[string]any{"dht": map[string]any{"client_mode": true}}
	specs := []NodeSpec{
		{Name: "node-amd64", Image: imageNodeAMD64, Arch: "amd64", Networks: []string{nw}, Bootstrap: bs},
		{Name: "node-arm64", Image: imageNodeARM64, Arch: "arm64", Networks: []string{nw}, Bootstrap: bs},
		{Name: "client-amd64", Image: imageClientAMD64, Arch: "amd64", Networks: []string{nw}, Bootstrap: bs, Config: clientCfg},
		{Name: "client-arm64", Image: imageClientARM64, Arch: "arm64", Networks: []string{nw}, Bootstrap: bs, Config: clientCfg},
	}
	ctrs := make([]*Ctr, len(specs))
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctrs[i] = s.StartNode(sp)
		}()
	}
	wg.Wait()
	for i, c := range ctrs {
		require.NotNil(t, c, "%s did not start", specs[i].Name)
		require.NotEmpty(t, c.Peer, "%s did not start", specs[i].Name)
	}
	nodeAMD, nodeARM, clientAMD, clientARM := ctrs[0], ctrs[1], ctrs[2], ctrs[3]

	// Each client finds the other arch's node, and each record tells the
	// arch the node really runs on.
	armFound, took := s.WaitFound(clientAMD, "arch=arm64&require_arch=true", 1, 3*time.Minute)
	s.logf("amd64 client found the arm64 node in %v", took)
	s.row.note("amd64 client finds arm64 node %s", ms(took))
	amdFound, took := s.WaitFound(clientARM, "arch=amd64&require_arch=true", 2, 3*time.Minute)
	s.logf("arm64 client found the amd64 nodes in %v", took)
	s.row.note("arm64 client finds amd64 nodes %s", ms(took))
	require.Len(t, armFound, 1)
	require.Equal(t, nodeARM.Peer.String(), armFound[0].PeerID)
	require.Equal(t, "arm64", armFound[0].Record.Arch)
	for _, f := range amdFound {
		require.Equal(t, "amd64", f.Record.Arch, "record of %s", f.PeerID)
		require.Contains(t, []string{nodeAMD.Peer.String(), boot.Peer.String()}, f.PeerID)
	}

	type ran struct {
		stdout  []byte
		rc      *receipt.Receipt
		node    string
		latency time.Duration
	}
	run := func(c *Ctr, arch string, j archJob) ran {
		t.Helper()
		req := j.req
		req.Arch, req.RequireArch = arch, true
		res, err := s.Submit(s.ctx, c, req)
		require.NoError(t, err, "%s from %s", j.name, c.Name)
		require.Nil(t, res.Err, "%s from %s: %+v", j.name, c.Name, res.Err)
		require.Equal(t, phase.OutcomeExited, res.Resp.Outcome, "%s on %s: %s", j.name, arch, res.Resp.Detail)
		require.NoError(t, Verify(res.Resp), "%s receipt from %s", j.name, arch)
		rc, err := receipt.Parse(res.Resp.Receipt)
		require.NoError(t, err)
		require.True(t, rc.Deterministic, "%s ran deterministic", j.name)
		return ran{stdout: res.Resp.StdoutBase64, rc: rc, node: res.Resp.Node, latency: res.Latency}
	}
	var lat = map[string][]time.Duration{}
	for _, j := range archJobs(t) {
		onARM := run(clientAMD, "arm64", j)
		onAMD := run(clientARM, "amd64", j)
		require.Equal(t, nodeARM.Peer.String(), onARM.node, "%s: amd64 client's job ran on the arm64 node", j.name)
		require.NotEqual(t, nodeARM.Peer.String(), onAMD.node, "%s: arm64 client's job ran on an amd64 node", j.name)
		require.Equal(t, onAMD.stdout, onARM.stdout, "%s: stdout differs between archs:\namd64 %s\narm64 %s", j.name,
			hex.EncodeToString(onAMD.stdout), hex.EncodeToString(onARM.stdout))
		require.Equal(t, onAMD.rc.StdoutHash, onARM.rc.StdoutHash, j.name)
		require.Equal(t, onAMD.rc.StderrHash, onARM.rc.StderrHash, j.name)
		require.Equal(t, onAMD.rc.ModuleHash, onARM.rc.ModuleHash, j.name)
		require.Equal(t, onAMD.rc.InputHash, onARM.rc.InputHash, j.name)
		require.Equal(t, onAMD.rc.ExitCode, onARM.rc.ExitCode, j.name)
		require.NotEmpty(t, onARM.stdout, j.name)
		s.logf("%s: %d identical bytes, %s; on arm64 %v (node %dms), on amd64 %v (node %dms)", j.name, len(onARM.stdout),
			onARM.rc.StdoutHash, onARM.latency, onARM.rc.WallTimeMS, onAMD.latency, onAMD.rc.WallTimeMS)
		lat["arm64"] = append(lat["arm64"], onARM.latency)
		lat["amd64"] = append(lat["amd64"], onAMD.latency)
	}
	for _, a := range []string{"amd64", "arm64"} {
		p50, _ := percentiles(lat[a])
		s.row.note("job latency on %s p50 %s", a, ms(p50))
	}
	s.row.note("%d jobs identical across archs", len(lat["arm64"]))
}

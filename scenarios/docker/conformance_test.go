package scenarios

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConformance runs the conformance suite black box (plasmsim
// conformance --target) from the host against a containerised amd64 node
// and an arm64 node, over the scenario's Docker network.
func TestConformance(t *testing.T) {
	s := newScenario(t, "conformance")
	nw := s.Network("conf", "")
	// The suite dials from one address (the host's on the bridge) with a
	// fresh peer and connection per case: past libp2p's per-IP burst of
	// 16 new connections most would be reset, so the node trusts the
	// scenario's network (network.trusted_networks).
	subnet := s.Subnet(nw)
	plasmsim, err := filepath.Abs("../../bin/plasmsim")
	require.NoError(t, err)
	_, err = os.Stat(plasmsim)
	require.NoError(t, err, "plasmsim not built (make build)")
	outDir, err := filepath.Abs(summaryDir())
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(outDir, 0o755))

	// A black-box target is not run with the suite's settings, so its
	// step-deadline cases wait out the node's own jobs.step_timeout: 5 s
	// (10 s under qemu) instead of the default 30 s keeps each of those
	// cases short without making the node's ordinary steps tight.
	for _, tc := range []struct {
		arch, image, step string
		limit             time.Duration
	}{
		{"amd64", imageNodeAMD64, "5s", 4 * time.Minute},
		{"arm64", imageNodeARM64, "10s", 6 * time.Minute},
	} {
		node := s.StartNode(NodeSpec{Name: "node-" + tc.arch, Image: tc.image, Arch: tc.arch, Networks: []string{nw},
			Config: map[string]any{
				"network": map[string]any{"trusted_networks": []string{subnet}},
				"jobs":    map[string]any{"step_timeout": tc.step},
			}})
		report := filepath.Join(outDir, "conformance-"+tc.arch+".json")
		ctx, cancel := context.WithTimeout(s.ctx, tc.limit)
		began := time.Now()
		cmd := exec.CommandContext(ctx, plasmsim, "conformance", "--target", node.Addr(nw), "--api", node.IPs[nw]+":4748",
			"--parallel", "1", "--json", report, "--junit", filepath.Join(outDir, "conformance-"+tc.arch+".xml"), "--quiet")
		out, err := cmd.CombinedOutput()
		cancel()
		took := time.Since(began)
		s.logf("conformance against %s node (%v):\n%s", tc.arch, took.Round(time.Millisecond), out)
		require.NoError(t, err, "conformance suite against the %s node failed", tc.arch)
		var rep struct {
			Cases []struct {
				Verdict string `json:"verdict"`
			} `json:"cases"`
		}
		b, err := os.ReadFile(report)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &rep), "report %s", report)
		counts := map[string]int{}
		for _, c := range rep.Cases {
			counts[c.Verdict]++
		}
		require.NotEmpty(t, rep.Cases, "no cases ran against the %s node", tc.arch)
		require.Zero(t, counts["fail"], "failed cases against the %s node (report %s)", tc.arch, report)
		s.row.note("%s: %d cases (%d pass, %d not applicable, %d fail) in %s", tc.arch, len(rep.Cases),
			counts["pass"], counts["not_applicable"], counts["fail"], ms(took))
	}
}

// summaryDir is where the summary and reports go.
func summaryDir() string {
	if p := os.Getenv("PLASM_SCENARIO_SUMMARY"); p != "" {
		return dirOf(p)
	}
	return "../../build/scenarios"
}

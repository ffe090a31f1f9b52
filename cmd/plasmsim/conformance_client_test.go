package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --client runs the client cases against a command and reports like a
// node run: the reference client passes, a client that skips the
// signature check fails RCPT-6 and the exit status says so.
func TestConformanceClient(t *testing.T) {
	dir := t.TempDir()
	mutant := filepath.Join(dir, "mutant")
	build := exec.Command("go", "build", "-o", mutant, "./clients/mutant")
	build.Dir = filepath.Join("..", "..", "conformance")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	tests := []struct {
		name   string
		cmd    string
		code   int
		failed []string
	}{
		{"reference client", mutant, 0, nil},
		{"skips the signature check", "PHASE_MUTANT=skip-signature " + mutant, 1, []string{"RCPT-6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jsonPath, htmlPath, junitPath := filepath.Join(t.TempDir(), "r.json"), filepath.Join(t.TempDir(), "r.html"), filepath.Join(t.TempDir(), "r.xml")
			var stdout, stderr bytes.Buffer
			code := runConformance([]string{"--client", tc.cmd, "--run", "^client/(honest/echo|receipt/forged-signature)$", "--quiet",
				"--json", jsonPath, "--html", htmlPath, "--junit", junitPath}, &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stdout %s\nstderr %s", stdout.String(), stderr.String())
			var rep struct {
				Cases []struct {
					Name, Side, Verdict string
				} `json:"cases"`
				Requirements []struct {
					ID, Verdict string
				} `json:"requirements"`
			}
			b, err := os.ReadFile(jsonPath)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &rep))
			require.Len(t, rep.Cases, 2)
			for _, c := range rep.Cases {
				assert.Equal(t, "client", c.Side)
			}
			var failed []string
			for _, q := range rep.Requirements {
				if q.Verdict == "fail" {
					failed = append(failed, q.ID)
				}
			}
			for _, id := range tc.failed {
				assert.Contains(t, failed, id)
			}
			if tc.failed == nil {
				assert.Empty(t, failed)
			}
			for _, p := range []string{htmlPath, junitPath} {
				st, err := os.Stat(p)
				require.NoError(t, err)
				assert.Positive(t, st.Size())
			}
		})
	}
	var stderr bytes.Buffer
	assert.Equal(t, 2, runConformance([]string{"--client", "x", "--api-client", "y"}, &bytes.Buffer{}, &stderr))
	assert.Contains(t, stderr.String(), "at most one of")
}

// --api-client runs the API-client cases: a "client" that accepts without
// looking fails them.
func TestConformanceAPIClient(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	code := runConformance([]string{"--api-client", `echo '{"verdict":"accepted","node":"x"}'`, "--run", "^api-client/receipt/forged-signature$",
		"--quiet", "--json", jsonPath}, &stdout, &stderr)
	assert.Equal(t, 1, code, "stdout %s\nstderr %s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "failed MUST requirements: API-16 API-20")
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"side": "api-client"`)
}

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

func TestConformanceUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"two targets", []string{"--target", "/ip4/127.0.0.1/tcp/1", "--launch", "true"}, "at most one of"},
		{"api without target", []string{"--api", "127.0.0.1:1"}, "--api goes with --target"},
		{"bad level", []string{"--level", "may"}, `--level "may"`},
		{"stray argument", []string{"node"}, `unexpected argument "node"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runConformance(tt.args, &out, &errb)
			assert.Equal(t, 2, code)
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}

// The launch contract end to end: plasmd started through
// conformance/launch/plasmd.sh, a subset of cases over the wire and the
// API, a JSON report, and no node left running afterwards.
func TestConformanceLaunchesPlasmd(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plasmd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/plasmd")
	build.Dir = "../.."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building plasmd: %s", out)

	report := filepath.Join(t.TempDir(), "launch.json")
	var stdout, stderr bytes.Buffer
	code := runConformance([]string{
		"--launch", "PLASMD=" + bin + " ../../conformance/launch/plasmd.sh",
		"--run", "^(exchange/echo|offer/refused/not-json|caps/)",
		"--json", report, "--quiet",
	}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())

	raw, err := os.ReadFile(report)
	require.NoError(t, err)
	var rep struct {
		Target string `json:"target"`
		Cases  []struct {
			Name    string `json:"name"`
			Verdict string `json:"verdict"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &rep))
	assert.Contains(t, rep.Target, "launched")
	passed := 0
	for _, c := range rep.Cases {
		assert.NotEqual(t, "fail", c.Verdict, c.Name)
		if c.Verdict == "pass" {
			passed++
		}
	}
	assert.GreaterOrEqual(t, passed, 3, "cases passed against the launched node")

	// The launched node is stopped with the run: no plasmd from this
	// binary outlives it.
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == bin {
			pid := filepath.Base(filepath.Dir(p))
			t.Errorf("launched plasmd (pid %s) still running after the run", pid)
		}
	}
}

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubmitArgs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	args, dl, err := submitArgs(env(map[string]string{"PHASE_BOOTSTRAP": "/ip4/127.0.0.1/tcp/1/p2p/X", "PHASE_MODULE": "m.wasm",
		"PHASE_ARGS": `["a",""]`, "PHASE_STDIN": "in", "PHASE_TIMEOUT_SECONDS": "2", "PHASE_DEADLINE_SECONDS": "10",
		"PHASE_DETERMINISTIC": "1", "PHASE_ARCH": "arm64", "PHASE_REQUIRE_ARCH": "1"}))
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, dl)
	assert.Equal(t, []string{"submit", "--json", "--timeout", "2", "--memory-mb", "64", "--deadline", "10s",
		"--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/X", "--stdin", "in", "--deterministic", "--arch", "arm64", "--require-arch",
		"m.wasm", "--", "a", ""}, args)

	args, _, err = submitArgs(env(map[string]string{"PHASE_API": "127.0.0.1:9", "PHASE_MODULE": "m.wasm"}))
	require.NoError(t, err)
	assert.Contains(t, args, "--api")

	for name, m := range map[string]map[string]string{
		"neither":     {"PHASE_MODULE": "m.wasm"},
		"both":        {"PHASE_MODULE": "m.wasm", "PHASE_API": "a:1", "PHASE_BOOTSTRAP": "/p2p/X"},
		"no module":   {"PHASE_API": "a:1"},
		"bad args":    {"PHASE_MODULE": "m.wasm", "PHASE_API": "a:1", "PHASE_ARGS": `{"a":1}`},
		"bad timeout": {"PHASE_MODULE": "m.wasm", "PHASE_API": "a:1", "PHASE_TIMEOUT_SECONDS": "two"},
	} {
		_, _, err := submitArgs(env(m))
		assert.Error(t, err, name)
	}
}

func TestParse(t *testing.T) {
	v := parse([]byte(`{"outcome":"exited","exit_code":7,"stdout_base64":"aGk=","node":"12D3KooWX","receipt":{"version":"1"}}`), 7)
	require.Equal(t, "accepted", v.Verdict)
	assert.Equal(t, "12D3KooWX", v.Node)
	assert.Equal(t, []byte("hi"), v.Stdout)
	assert.EqualValues(t, 7, *v.ExitCode)
	assert.Equal(t, "refused", parse([]byte(`{"error":"no node could run the job","attempts":[{"outcome":"bad_receipt"}]}`), 1).Verdict)
	assert.Equal(t, "error", parse([]byte(`{"error":"find: no providers","attempts":[]}`), 1).Verdict)
	assert.Equal(t, "error", parse(nil, 120).Verdict)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
)

// runCLI runs plasmd in-process and returns its status and streams.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code := dispatch(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func dataDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }

func TestRunExamples(t *testing.T) {
	dir := dataDir(t)
	for _, tc := range []struct {
		name       string
		module     string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"hello args", testwasm.Hello, []string{"--", "Hello,", "World"}, "", 0, "dlroW ,olleH\n", ""},
		{"hello stdin", testwasm.Hello, []string{"--stdin", "-"}, "abc\n", 0, "cba\n", ""},
		{"exit 7", testwasm.Exit7, nil, "", 7, "", "bye\n"},
		{"trap", testwasm.Trap, nil, "", exitTrapped, "", "trapped"},
		{"timeout", testwasm.Loop, []string{"--timeout", "0.3"}, "", exitTimeout, "", "timeout after 300ms"},
		{"memory limit", testwasm.Grow, []string{"--memory-mb", "2"}, "", exitMemoryLimit, "", "memory limit of 2 MB"},
		{"declared memory over limit", testwasm.BigMem, []string{"--memory-mb", "16"}, "", exitMemoryLimit, "", "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--data-dir", dir, testwasm.Path(t, tc.module)}, tc.args...)
			code, stdout, stderr := runCLI(t, tc.stdin, args...)
			assert.Equal(t, tc.wantCode, code, "stderr: %s", stderr)
			assert.Equal(t, tc.wantStdout, stdout)
			assert.Contains(t, stderr, tc.wantStderr)
		})
	}
}

func TestEXEC4_RunFloodIsCapped(t *testing.T) {
	code, stdout, stderr := runCLI(t, "", "run", "--data-dir", dataDir(t), "--timeout", "0.3", "--stdout-cap", "1000", testwasm.Path(t, testwasm.Flood))
	assert.Equal(t, exitTimeout, code)
	assert.Len(t, stdout, 1000)
	assert.Contains(t, stderr, "truncated at 1000 bytes")
}

func TestRunBadInput(t *testing.T) {
	dir := dataDir(t)
	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	require.NoError(t, os.WriteFile(garbage, []byte("not wasm at all"), 0o644))
	badManifest := filepath.Join(t.TempDir(), "m.json")
	require.NoError(t, os.WriteFile(badManifest, []byte(`{"version":"0.1","module_hash":"sha256:00","cpu_cores":1,"memory_mb":64,"timeout_seconds":5}`), 0o644))
	wrongHash := filepath.Join(t.TempDir(), "m2.json")
	require.NoError(t, os.WriteFile(wrongHash, []byte(`{"version":"0.1","module_hash":"sha256:`+strings.Repeat("ab", 32)+`","cpu_cores":1,"memory_mb":64,"timeout_seconds":5}`), 0o644))
	hello := testwasm.Path(t, testwasm.Hello)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"missing file", []string{"run", "--data-dir", dir, "/nonexistent.wasm"}, exitHarness, "no such file"},
		{"not wasm", []string{"run", "--data-dir", dir, garbage}, exitInvalidModule, "invalid module"},
		{"manifest out of range", []string{"run", "--data-dir", dir, "--manifest", badManifest, hello}, exitHarness, "module_hash"},
		{"manifest hash mismatch", []string{"run", "--data-dir", dir, "--manifest", wrongHash, hello}, exitHashMismatch, "hash"},
		{"memory flag out of range", []string{"run", "--data-dir", dir, "--memory-mb", "0", hello}, exitUsage, "--memory-mb: 0 out of range 1–32768"},
		{"memory flag over the range", []string{"run", "--data-dir", dir, "--memory-mb", "40000", hello}, exitUsage, "--memory-mb: 40000 out of range 0–32768"},
		{"seed without deterministic", []string{"run", "--data-dir", dir, "--seed", "3", hello}, exitUsage, "--seed: is set but deterministic is false"},
		{"no module", []string{"run", "--data-dir", dir}, exitUsage, "want exactly one MODULE.wasm"},
		{"unknown tier", []string{"run", "--data-dir", dir, "--tier", "jit", hello}, exitUsage, `--tier: tier "jit" is not one of auto, interpreter, compiler`},
		{"unknown flag", []string{"run", "--bogus", hello}, exitUsage, "bogus"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", tc.args...)
			assert.Equal(t, tc.wantCode, code, stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		code, _, stderr := runCLI(t, "", c.name, "--help")
		assert.Equal(t, exitOK, code, c.name)
		assert.Contains(t, stderr, "Usage: plasmd "+c.name, c.name)
	}
}

// run --json prints the shape submit --json and POST /v1/jobs print.
func TestRunJSON(t *testing.T) {
	dir := dataDir(t)
	code, stdout, _ := runCLI(t, "", "run", "--json", "--data-dir", dir, testwasm.Path(t, testwasm.Hello), "--", "abc")
	require.Equal(t, 0, code)
	var out api.JobResponse
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	assert.Equal(t, "exited", out.Outcome)
	require.NotNil(t, out.Stdout)
	assert.Equal(t, "cba\n", *out.Stdout)
	assert.Equal(t, []byte("cba\n"), out.StdoutBase64)
	rc, err := receipt.Parse(out.Receipt)
	require.NoError(t, err)
	assert.Equal(t, rc.StdoutHash, "sha256:"+sha256hex("cba\n"))
	assert.Equal(t, rc.NodePeerID, out.Node, "the node is this one")
	assert.Empty(t, out.Attempts)
}

// TestVerifyCatchesEveryTamperedField runs hello, then changes each field
// of the receipt in turn: plasmd verify must refuse every one.
func TestRCPT4_RCPT6_VerifyCatchesEveryTamperedField(t *testing.T) {
	dir := dataDir(t)
	rcPath := filepath.Join(t.TempDir(), "receipt.json")
	stdoutPath := filepath.Join(t.TempDir(), "stdout.txt")
	code, stdout, stderr := runCLI(t, "", "run", "--data-dir", dir, "--receipt", rcPath, testwasm.Path(t, testwasm.Hello), "--", "Hello, World")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, os.WriteFile(stdoutPath, []byte(stdout), 0o644))
	code, initOut, _ := runCLI(t, "", "init", "--json", "--data-dir", dir)
	require.Equal(t, 0, code)
	var id struct{ PeerID, PublicKey string }
	require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(initOut, "peer_id", "PeerID"), "public_key", "PublicKey")), &id))

	code, out, _ := runCLI(t, "", "verify", "--peer", id.PeerID, "--stdout", stdoutPath, rcPath)
	require.Equal(t, 0, code, out)
	assert.True(t, strings.HasPrefix(out, "valid"), out)
	code, out, _ = runCLI(t, "", "verify", "--pubkey", id.PublicKey, rcPath)
	require.Equal(t, 0, code, out)
	code, out, _ = runCLI(t, "", "verify", rcPath)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "self-consistent only")

	original, err := os.ReadFile(rcPath)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(original, &fields))
	require.Greater(t, len(fields), 15)
	for name, value := range fields {
		t.Run(name, func(t *testing.T) {
			tampered := map[string]any{}
			for k, v := range fields {
				tampered[k] = v
			}
			tampered[name] = tamper(value)
			b, err := json.Marshal(tampered)
			require.NoError(t, err)
			p := filepath.Join(t.TempDir(), "r.json")
			require.NoError(t, os.WriteFile(p, b, 0o644))
			code, out, _ := runCLI(t, "", "verify", "--peer", id.PeerID, "--stdout", stdoutPath, p)
			assert.Equal(t, exitFailed, code, "tampered %s accepted: %s", name, out)
			assert.True(t, strings.HasPrefix(out, "invalid: "), out)
		})
	}

	// Wrong signer, wrong output, truncated and non-hex signatures.
	other := dataDir(t)
	_, otherOut, _ := runCLI(t, "", "init", "--json", "--data-dir", other)
	var oid struct{ PeerID string }
	require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(otherOut, "peer_id", "PeerID")), &oid))
	code, out, _ = runCLI(t, "", "verify", "--peer", oid.PeerID, rcPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "signer")
	wrongOut := filepath.Join(t.TempDir(), "wrong.txt")
	require.NoError(t, os.WriteFile(wrongOut, []byte("something else\n"), 0o644))
	code, out, _ = runCLI(t, "", "verify", "--peer", id.PeerID, "--stdout", wrongOut, rcPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "stdout_hash")
	for name, sig := range map[string]string{"truncated": fields["signature"].(string)[:64], "non-hex": strings.Repeat("zz", 64)} {
		tampered := map[string]any{}
		for k, v := range fields {
			tampered[k] = v
		}
		tampered["signature"] = sig
		b, _ := json.Marshal(tampered)
		p := filepath.Join(t.TempDir(), "r.json")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		code, out, _ := runCLI(t, "", "verify", "--peer", id.PeerID, p)
		assert.Equal(t, exitFailed, code, name)
		assert.Contains(t, out, "signature", name)
	}
}

// tamper returns a different value of the same JSON kind.
func tamper(v any) any {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "x"
		}
		b := []byte(x)
		// Flip one hex-compatible character near the end so formats hold.
		i := max(len(b)-2, 0)
		if b[i] == 'a' {
			b[i] = 'b'
		} else if b[i] >= '0' && b[i] <= '9' {
			b[i] = '0' + (b[i]-'0'+1)%10
		} else {
			b[i] = 'a'
		}
		return string(b)
	case float64:
		return x + 1
	case bool:
		return !x
	case map[string]any:
		out := map[string]any{}
		for k, vv := range x {
			out[k] = tamper(vv)
		}
		return out
	}
	return "tampered"
}

func TestInitAndVersion(t *testing.T) {
	dir := dataDir(t)
	code, out1, _ := runCLI(t, "", "init", "--data-dir", dir)
	require.Equal(t, 0, code)
	code, out2, _ := runCLI(t, "", "init", "--data-dir", dir)
	require.Equal(t, 0, code)
	assert.Equal(t, out1, out2, "init shows the same identity the second time")
	assert.Contains(t, out1, "peer ID:    12D3KooW")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "identity.key"), []byte("short"), 0o600))
	code, _, stderr := runCLI(t, "", "init", "--data-dir", dir)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "32")

	code, out, _ := runCLI(t, "", "version")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "/phase/job/1.0.0")
}

func TestRunTiersAndCompileOnly(t *testing.T) {
	dir := dataDir(t)
	hello := testwasm.Path(t, testwasm.Hello)
	for _, tier := range []string{"interpreter", "compiler", "auto"} {
		code, stdout, stderr := runCLI(t, "", "run", "--data-dir", dir, "--tier", tier, hello, "--", "abc")
		assert.Equal(t, 0, code, stderr)
		assert.Equal(t, "cba\n", stdout, tier)
	}
	// --compile-only fills the cache and runs nothing.
	tiny := testwasm.Path(t, testwasm.Tiny)
	b, err := os.ReadFile(tiny)
	require.NoError(t, err)
	cache := filepath.Join(dir, "cache", "wasm")
	require.False(t, wasm.CompiledOnDisk(cache, wasm.HashModule(b)))
	code, stdout, stderr := runCLI(t, "", "run", "--compile-only", "--data-dir", dir, tiny)
	assert.Equal(t, 0, code, stderr)
	assert.Empty(t, stdout, "nothing ran")
	assert.True(t, wasm.CompiledOnDisk(cache, wasm.HashModule(b)))
	code, _, stderr = runCLI(t, "", "run", "--compile-only", "--data-dir", dir, testwasm.Path(t, testwasm.Trap)+".missing")
	assert.Equal(t, exitHarness, code, stderr)
}

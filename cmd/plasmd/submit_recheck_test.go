package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
)

// recheck refuses an API answer whose receipt is not for the job sent, or
// whose response says other than its receipt (spec-api API-21, API-22,
// API-25, API-13).
func TestRecheck(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pub := priv.Public().(ed25519.PublicKey)
	id, err := identity.PeerIDFromPublicKey(pub)
	require.NoError(t, err)
	req := api.JobRequest{Module: []byte("\x00asm module"), Args: []string{"a"}, Stdin: []byte("in")}
	stdout, stderr := []byte("out\n"), []byte("")
	answer := func(edit func(*receipt.Receipt), editResp func(*api.JobResponse)) *api.JobResponse {
		r := &receipt.Receipt{Version: "1", ModuleHash: phase.HashBytes(req.Module), ExitCode: 0, NodePubkey: hex.EncodeToString(pub),
			JobID: "job-1", Nonce: hex.EncodeToString(make([]byte, 32)), Requester: id.String(), NodePeerID: id.String(),
			InputHash: receipt.InputHash(req.Args, req.Stdin), StdoutHash: phase.HashBytes(stdout), StderrHash: phase.HashBytes(stderr),
			Outcome: phase.OutcomeExited, Limits: receipt.Limits{MemoryMB: 16, TimeoutMS: 1000, StdoutCap: 10, StderrCap: 10}}
		r.SetTimes(time.Now().Add(-time.Millisecond), time.Now())
		if edit != nil {
			edit(r)
		}
		require.NoError(t, r.Sign(priv))
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		text := string(stdout)
		resp := &api.JobResponse{Outcome: r.Outcome, ExitCode: r.ExitCode, Stdout: &text, StdoutBase64: stdout, StderrBase64: stderr,
			Node: id.String(), Receipt: raw}
		if editResp != nil {
			editResp(resp)
		}
		return resp
	}
	other := "not this"
	tests := []struct {
		name    string
		receipt func(*receipt.Receipt)
		resp    func(*api.JobResponse)
		want    string
	}{
		{"honest", nil, nil, ""},
		{"module hash of another module", func(r *receipt.Receipt) { r.ModuleHash = phase.HashBytes([]byte("other")) }, nil, "module_hash"},
		{"input hash of other args", func(r *receipt.Receipt) { r.InputHash = receipt.InputHash([]string{"b"}, req.Stdin) }, nil, "input_hash"},
		{"exit code differs", nil, func(r *api.JobResponse) { r.ExitCode = 3 }, "exit_code 3, receipt 0"},
		{"outcome differs", nil, func(r *api.JobResponse) { r.Outcome = phase.OutcomeTrapped }, "outcome"},
		{"truncation differs", nil, func(r *api.JobResponse) { r.StdoutTruncated = true }, "truncated"},
		{"text differs from bytes", nil, func(r *api.JobResponse) { r.Stdout = &other }, "stdout text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := recheck(answer(tc.receipt, tc.resp), req)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

package session

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

// fuzzFixture is a fixed node, client and job with a validly signed receipt.
type fuzzFixture struct {
	exp     receipt.Expect
	acc     *wire.Accepted
	valid   []byte
	stdout  []byte
	outcome string
}

func newFuzzFixture(tb testing.TB) fuzzFixture {
	tb.Helper()
	node, err := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	require.NoError(tb, err)
	requester, err := identity.FromSeed(bytes.Repeat([]byte{9}, 32))
	require.NoError(tb, err)
	stdout := []byte("ok\n")
	limits := wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 1000, StdoutCap: 1024, StderrCap: 1024}
	rc := &receipt.Receipt{
		Version: receipt.Version, ModuleHash: phase.HashBytes([]byte("module")), ExitCode: 0, WallTimeMS: 3,
		NodePubkey: node.PublicKeyHex(), JobID: "job-1", Nonce: string(bytes.Repeat([]byte("ab"), 32)),
		Requester: requester.ID.String(), NodePeerID: node.ID.String(),
		InputHash: receipt.InputHash(nil, nil), StdoutHash: phase.HashBytes(stdout), StderrHash: phase.HashBytes(nil),
		Outcome: phase.OutcomeExited,
		Limits:  receipt.Limits{MemoryMB: limits.MemoryMB, TimeoutMS: limits.TimeoutMS, StdoutCap: limits.StdoutCap, StderrCap: limits.StderrCap},
	}
	rc.StartedAt, rc.FinishedAt, rc.Timestamp = "2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.003Z", 1767323045
	require.NoError(tb, rc.Sign(node.Ed25519()))
	valid, err := json.Marshal(rc)
	require.NoError(tb, err)
	return fuzzFixture{
		exp: receipt.Expect{
			PeerID: node.ID, JobID: rc.JobID, Nonce: rc.Nonce, Requester: rc.Requester,
			ModuleHash: rc.ModuleHash, InputHash: rc.InputHash,
			Stdout: stdout, CheckStdout: true, CheckStderr: true,
		},
		acc:     &wire.Accepted{Limits: limits},
		valid:   valid,
		stdout:  stdout,
		outcome: rc.Outcome,
	}
}

var knownChecks = []string{
	receipt.CheckFormat, receipt.CheckSigner, receipt.CheckSignature, receipt.CheckJobID, receipt.CheckNonce,
	receipt.CheckRequester, receipt.CheckModuleHash, receipt.CheckInputHash, receipt.CheckStdoutHash, receipt.CheckStderrHash,
	CheckOutcome, CheckExitCode, CheckTruncated, CheckLimits, CheckDeterministic,
}

func TestRCPT10_CheckResultFixture(t *testing.T) {
	fx := newFuzzFixture(t)
	res := &wire.Result{Outcome: fx.outcome, Receipt: fx.valid}
	rc, check, err := Check(&Output{Result: res, Stdout: fx.stdout}, fx.acc, Expect{Receipt: fx.exp})
	require.NoError(t, err)
	require.Empty(t, check)
	require.Equal(t, fx.exp.JobID, rc.JobID)

	// One changed byte anywhere in the signed document is caught.
	for i := range fx.valid {
		b := slices.Clone(fx.valid)
		b[i] ^= 0x01
		_, check, err := Check(&Output{Result: &wire.Result{Outcome: fx.outcome, Receipt: b}, Stdout: fx.stdout}, fx.acc, Expect{Receipt: fx.exp})
		require.Error(t, err, "byte %d flipped: %s", i, b)
		require.Contains(t, knownChecks, check)
	}
}

// FuzzCheck feeds arbitrary receipts and result fields to the check a
// client applies before it trusts a result: it must never panic, must name
// a known check when it refuses, and must accept only a receipt that the
// expected node signed for this job and these bytes.
func FuzzCheck(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.valid, fx.outcome, 0, false, fx.stdout)
	f.Add(fx.valid, phase.OutcomeTrapped, 0, false, fx.stdout)
	f.Add(fx.valid, fx.outcome, 1, true, fx.stdout)
	f.Add(fx.valid, fx.outcome, 0, false, []byte("ok"))
	f.Add(bytes.Replace(fx.valid, []byte(`"exit_code":0`), []byte(`"exit_code":1`), 1), fx.outcome, 0, false, fx.stdout)
	f.Add([]byte(`{}`), fx.outcome, 0, false, fx.stdout)
	f.Add([]byte(`{"version":"1","version":"1"}`), fx.outcome, 0, false, fx.stdout)
	f.Add([]byte(`null`), "", -1, false, []byte(nil))
	f.Add([]byte("\xff\xfe"), "exited", 0, false, []byte(nil))
	f.Fuzz(func(t *testing.T, raw []byte, outcome string, exitCode int, truncated bool, stdout []byte) {
		res := &wire.Result{Outcome: outcome, ExitCode: exitCode, StdoutTruncated: truncated, Receipt: raw}
		exp := fx.exp
		exp.Stdout = stdout
		rc, check, err := Check(&Output{Result: res, Stdout: stdout}, fx.acc, Expect{Receipt: fx.exp})
		if err != nil {
			if !slices.Contains(knownChecks, check) {
				t.Fatalf("refused with unknown check %q: %v", check, err)
			}
			return
		}
		// Accepted: it must be the expected node's signature over this job
		// and these bytes, and the result must say what the receipt says.
		if verr := receipt.Verify(rc, exp); verr != nil {
			t.Fatalf("accepted a receipt that does not verify: %v", verr)
		}
		if rc.Outcome != outcome || rc.StdoutTruncated != truncated || !bytes.Equal(stdout, fx.stdout) {
			t.Fatalf("accepted a result that differs from its receipt: %+v vs %+v", res, rc)
		}
	})
}

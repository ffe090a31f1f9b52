package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
)

// Spec is one job as the node runs it: the sandbox job plus the facts a
// receipt binds it to.
type Spec struct {
	JobID     string
	Nonce     string // 64 lowercase hex
	Requester string // requester peer ID; "" for a local run
	Job       wasm.Job
}

// Execute runs a job and signs a receipt for what happened. Guest failures
// are outcomes in the result, not errors; the error is for the harness.
func Execute(ctx context.Context, exec *wasm.Executor, id *identity.Identity, spec Spec) (wasm.Result, *receipt.Receipt, error) {
	res, err := exec.Run(ctx, spec.Job)
	if err != nil {
		return res, nil, fmt.Errorf("running job %s: %w", spec.JobID, err)
	}
	rc, err := Sign(id, spec, res)
	if err != nil {
		return res, nil, err
	}
	return res, rc, nil
}

// Sign builds and signs the receipt for a finished job.
func Sign(id *identity.Identity, spec Spec, res wasm.Result) (*receipt.Receipt, error) {
	moduleHash := res.ModuleHash
	if moduleHash == "" {
		moduleHash = wasm.HashModule(spec.Job.Module)
	}
	exitCode := res.ExitCode
	if res.Outcome != wasm.OutcomeExited {
		exitCode = -1
	}
	l := spec.Job.Limits
	rc := &receipt.Receipt{
		Version:         receipt.Version,
		ModuleHash:      moduleHash,
		ExitCode:        exitCode,
		WallTimeMS:      res.WallTime.Milliseconds(),
		Timestamp:       res.Finished.Unix(),
		NodePubkey:      id.PublicKeyHex(),
		JobID:           spec.JobID,
		Nonce:           spec.Nonce,
		Requester:       spec.Requester,
		NodePeerID:      id.ID.String(),
		InputHash:       receipt.InputHash(spec.Job.Args, spec.Job.Stdin),
		StdoutHash:      receipt.HashBytes(res.Stdout),
		StderrHash:      receipt.HashBytes(res.Stderr),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		Outcome:         string(res.Outcome),
		Deterministic:   spec.Job.Deterministic,
		Limits: receipt.Limits{
			MemoryMB:  l.MemoryMB,
			TimeoutMS: l.Timeout.Milliseconds(),
			StdoutCap: l.StdoutCap,
			StderrCap: l.StderrCap,
		},
		StartedAt:  formatTime(res.Started),
		FinishedAt: formatTime(res.Finished),
	}
	if err := rc.Sign(id.Ed25519()); err != nil {
		return nil, fmt.Errorf("signing receipt for job %s: %w", spec.JobID, err)
	}
	return rc, nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// Spec is one job as the node runs it: the sandbox job plus the facts a
// receipt binds it to.
type Spec struct {
	JobID     string
	Nonce     string // 64 lowercase hex
	Requester string // requester peer ID; "" for a local run
	Job       wasm.Job
}

// SpecOf is the pure builder "accepted offer + applied limits + payload →
// what the sandbox runs": the applied limits, not the requested ones
// (EXEC-7), and the manifest's hash so stored bytes are checked too (JOB-8).
func SpecOf(job *session.Job, requester string) Spec {
	l := job.Limits
	return Spec{
		JobID:     job.Offer.JobID,
		Nonce:     job.Offer.Nonce,
		Requester: requester,
		Job: wasm.Job{
			Module:     job.Module,
			ModuleHash: job.Offer.Manifest.ModuleHash,
			Args:       job.Args,
			Stdin:      job.Stdin,
			Limits: wasm.Limits{
				MemoryMB:  l.MemoryMB,
				Timeout:   time.Duration(l.TimeoutMS) * time.Millisecond,
				StdoutCap: l.StdoutCap,
				StderrCap: l.StderrCap,
			},
			Deterministic: job.Offer.Deterministic,
			Seed:          job.Offer.Seed,
		},
	}
}

// Ran is one finished run as the node will report it: the job, what came
// out (output already cut to the applied caps), the signed receipt and how
// long the job waited for a run slot. A hook may change any of it before
// Reply builds the message.
type Ran struct {
	Spec    Spec
	Result  wasm.Result
	Receipt *receipt.Receipt
	Queue   time.Duration

	id   *identity.Identity
	sign SignFunc
}

// Resign signs the (changed) receipt again as the node signs receipts.
func (r *Ran) Resign() error {
	r.Receipt.Signature = ""
	sign := r.sign
	if sign == nil {
		sign = func(rc *receipt.Receipt, id *identity.Identity) error { return rc.Sign(id.Ed25519()) }
	}
	return sign(r.Receipt, r.id)
}

// Restate replaces the run's output (cut to the applied caps, truncation
// flags unchanged) and signs a fresh receipt for it, as the node would have
// for that output: a liar's tool, kept here so it signs like the node.
func (r *Ran) Restate(stdout, stderr []byte) error {
	l := r.Spec.Job.Limits
	r.Result.Stdout = stdout[:min(len(stdout), l.StdoutCap)]
	r.Result.Stderr = stderr[:min(len(stderr), l.StderrCap)]
	rc, err := SignWith(r.id, r.Spec, r.Result, r.sign)
	if err != nil {
		return err
	}
	r.Receipt = rc
	return nil
}

// SignFunc signs a receipt; nil means rc.Sign with the node's key.
type SignFunc func(rc *receipt.Receipt, id *identity.Identity) error

// Finish applies the zero output caps wasm cannot express, signs the
// receipt and returns the run, ready for Reply.
func Finish(id *identity.Identity, spec Spec, res wasm.Result, received time.Time, sign SignFunc) (*Ran, error) {
	l := spec.Job.Limits
	res.Stdout, res.StdoutTruncated = capOutput(res.Stdout, res.StdoutTruncated, l.StdoutCap)
	res.Stderr, res.StderrTruncated = capOutput(res.Stderr, res.StderrTruncated, l.StderrCap)
	rc, err := SignWith(id, spec, res, sign)
	if err != nil {
		return nil, err
	}
	var queue time.Duration
	if !res.Started.IsZero() && res.Started.After(received) {
		queue = res.Started.Sub(received)
	}
	return &Ran{Spec: spec, Result: res, Receipt: rc, Queue: queue, id: id, sign: sign}, nil
}

// Reply is the pure builder "run + receipt → result message and output
// frames" (JOB-9).
func (r *Ran) Reply() session.Reply {
	rcJSON, err := json.Marshal(r.Receipt)
	if err != nil {
		return session.Reply{Error: &wire.ErrorMsg{Code: phase.CodeInternal, Detail: "the node could not encode the receipt"}}
	}
	res := r.Result
	return session.Reply{
		Result: &wire.Result{
			Outcome:         string(res.Outcome),
			ExitCode:        r.Receipt.ExitCode,
			Detail:          phase.Clip(res.Detail, maxDetail),
			StdoutSize:      int64(len(res.Stdout)),
			StderrSize:      int64(len(res.Stderr)),
			StdoutTruncated: res.StdoutTruncated,
			StderrTruncated: res.StderrTruncated,
			WallTimeMS:      res.WallTime.Milliseconds(),
			QueueTimeMS:     r.Queue.Milliseconds(),
			Receipt:         rcJSON,
		},
		Stdout: res.Stdout,
		Stderr: res.Stderr,
	}
}

// capOutput enforces a cap of zero, which wasm.Limits reads as "default".
func capOutput(b []byte, truncated bool, limit int) ([]byte, bool) {
	if len(b) > limit {
		return b[:limit], true
	}
	return b, truncated
}

// Execute runs a job locally and signs a receipt for what happened (plasmd
// run). Guest failures are outcomes in the result, not errors; the error is
// for the harness.
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

// Sign builds and signs the receipt for a finished job with the node's key.
func Sign(id *identity.Identity, spec Spec, res wasm.Result) (*receipt.Receipt, error) {
	return SignWith(id, spec, res, nil)
}

// SignWith builds the receipt for a finished job and signs it with sign
// (nil: the node's key).
func SignWith(id *identity.Identity, spec Spec, res wasm.Result, sign SignFunc) (*receipt.Receipt, error) {
	moduleHash := res.ModuleHash
	if moduleHash == "" {
		moduleHash = phase.HashBytes(spec.Job.Module)
	}
	exitCode := res.ExitCode
	if res.Outcome != phase.OutcomeExited {
		exitCode = phase.NoExitCode
	}
	l := spec.Job.Limits
	rc := &receipt.Receipt{
		Version:         receipt.Version,
		ModuleHash:      moduleHash,
		ExitCode:        exitCode,
		WallTimeMS:      res.WallTime.Milliseconds(),
		NodePubkey:      id.PublicKeyHex(),
		JobID:           spec.JobID,
		Nonce:           spec.Nonce,
		Requester:       spec.Requester,
		NodePeerID:      id.ID.String(),
		InputHash:       receipt.InputHash(spec.Job.Args, spec.Job.Stdin),
		StdoutHash:      phase.HashBytes(res.Stdout),
		StderrHash:      phase.HashBytes(res.Stderr),
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
	}
	rc.SetTimes(res.Started, res.Finished)
	if sign == nil {
		sign = func(rc *receipt.Receipt, id *identity.Identity) error { return rc.Sign(id.Ed25519()) }
	}
	if err := sign(rc, id); err != nil {
		return nil, fmt.Errorf("signing receipt for job %s: %w", spec.JobID, err)
	}
	return rc, nil
}

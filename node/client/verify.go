package client

import (
	"errors"
	"fmt"

	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

// Checks of the result message against its receipt, named like the
// receipt's own checks in metrics and attempts.
const (
	CheckOutcome       = "outcome"
	CheckExitCode      = "exit_code"
	CheckTruncated     = "truncated"
	CheckLimits        = "limits"
	CheckDeterministic = "deterministic"
)

// verify checks an attempt's result against what the client knows: see
// checkResult.
func (r *run) verify(o *offer, res *wire.Result, stdout, stderr []byte) (*verified, string, error) {
	exp := receipt.Expect{
		PeerID:      o.s.Conn().RemotePeer(),
		JobID:       o.msg.JobID,
		Nonce:       o.msg.Nonce,
		Requester:   r.c.Host.ID().String(),
		ModuleHash:  r.s.moduleHash,
		InputHash:   r.s.inputHash,
		Stdout:      stdout,
		Stderr:      stderr,
		CheckStdout: true,
		CheckStderr: true,
	}
	rc, check, err := checkResult(res, o.acc, exp, r.job.Deterministic)
	if err != nil {
		return nil, check, err
	}
	return &verified{
		node:   o.node.ID,
		res:    res,
		stdout: stdout,
		stderr: stderr,
		rc:     rc,
		rcJSON: res.Receipt,
	}, "", nil
}

// checkResult accepts a result only if its receipt is well formed, signed
// by the peer actually dialled (exp.PeerID), bound to this attempt's job id
// and nonce, to this client, module and input, and to the exact bytes
// received; and if the result message says what the receipt says. On
// failure it returns the failed check's name with the error.
func checkResult(res *wire.Result, acc *wire.Accepted, exp receipt.Expect, deterministic bool) (*receipt.Receipt, string, error) {
	rc, err := receipt.Parse(res.Receipt)
	if err != nil {
		return nil, checkName(err), err
	}
	if err := receipt.Verify(rc, exp); err != nil {
		return nil, checkName(err), err
	}
	if check, err := matchResult(res, rc, acc, deterministic); err != nil {
		return nil, check, err
	}
	return rc, "", nil
}

// matchResult checks that the unsigned result message agrees with the signed
// receipt, so nothing the caller reads comes from outside the signature.
func matchResult(res *wire.Result, rc *receipt.Receipt, acc *wire.Accepted, deterministic bool) (string, error) {
	mismatch := func(check, format string, args ...any) (string, error) {
		return check, fmt.Errorf("result and receipt disagree: %s", fmt.Sprintf(format, args...))
	}
	if res.Outcome != rc.Outcome {
		return mismatch(CheckOutcome, "result outcome %s, receipt outcome %s", res.Outcome, rc.Outcome)
	}
	if res.Outcome == wire.OutcomeExited && res.ExitCode != rc.ExitCode {
		return mismatch(CheckExitCode, "result exit code %d, receipt exit code %d", res.ExitCode, rc.ExitCode)
	}
	if res.StdoutTruncated != rc.StdoutTruncated || res.StderrTruncated != rc.StderrTruncated {
		return mismatch(CheckTruncated, "result truncation stdout=%t stderr=%t, receipt stdout=%t stderr=%t",
			res.StdoutTruncated, res.StderrTruncated, rc.StdoutTruncated, rc.StderrTruncated)
	}
	want := receipt.Limits{MemoryMB: acc.Limits.MemoryMB, TimeoutMS: acc.Limits.TimeoutMS, StdoutCap: acc.Limits.StdoutCap, StderrCap: acc.Limits.StderrCap}
	if rc.Limits != want {
		return mismatch(CheckLimits, "accepted limits %+v, receipt limits %+v", want, rc.Limits)
	}
	if rc.Deterministic != deterministic {
		return mismatch(CheckDeterministic, "job asked deterministic=%t, receipt says %t", deterministic, rc.Deterministic)
	}
	return "", nil
}

// checkName is the receipt check an error failed, for metrics and attempts.
func checkName(err error) string {
	var ce *receipt.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return receipt.CheckFormat
}

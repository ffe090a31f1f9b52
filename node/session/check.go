package session

import (
	"errors"
	"fmt"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wire"
)

// Checks of the result message against its receipt, named like the
// receipt's own checks in metrics, attempts and the conformance report.
const (
	CheckOutcome       = "outcome"
	CheckExitCode      = "exit_code"
	CheckTruncated     = "truncated"
	CheckLimits        = "limits"
	CheckDeterministic = "deterministic"
)

// Expect is what a client knows about its own job: the receipt facts
// (signer = the peer dialled, job id, nonce, requester, module and input
// hashes) and what it asked for.
type Expect struct {
	Receipt       receipt.Expect
	Deterministic bool
}

// Check accepts a result only if its receipt is well formed, signed by the
// peer actually dialled, bound to this exchange's job id and nonce, to this
// client, module and input, and to the exact bytes received (RCPT-4 to
// RCPT-9); and if the unsigned result message says what the receipt says, so
// nothing the caller reads comes from outside the signature (RCPT-10). On
// failure it returns the failed check's name with the error.
func Check(out *Output, acc *wire.Accepted, exp Expect) (*receipt.Receipt, string, error) {
	rc, err := receipt.Parse(out.Result.Receipt)
	if err != nil {
		return nil, checkName(err), err
	}
	e := exp.Receipt
	e.Stdout, e.Stderr, e.CheckStdout, e.CheckStderr = out.Stdout, out.Stderr, true, true
	if err := receipt.Verify(rc, e); err != nil {
		return nil, checkName(err), err
	}
	if check, err := matchResult(out.Result, rc, acc, exp.Deterministic); err != nil {
		return nil, check, err
	}
	return rc, "", nil
}

func matchResult(res *wire.Result, rc *receipt.Receipt, acc *wire.Accepted, deterministic bool) (string, error) {
	mismatch := func(check, format string, args ...any) (string, error) {
		return check, fmt.Errorf("result and receipt disagree: %s", fmt.Sprintf(format, args...))
	}
	if res.Outcome != rc.Outcome {
		return mismatch(CheckOutcome, "result outcome %s, receipt outcome %s", res.Outcome, rc.Outcome)
	}
	if res.Outcome == phase.OutcomeExited && res.ExitCode != rc.ExitCode {
		return mismatch(CheckExitCode, "result exit code %d, receipt exit code %d", res.ExitCode, rc.ExitCode)
	}
	if res.StdoutTruncated != rc.StdoutTruncated || res.StderrTruncated != rc.StderrTruncated {
		return mismatch(CheckTruncated, "result truncation stdout=%t stderr=%t, receipt stdout=%t stderr=%t",
			res.StdoutTruncated, res.StderrTruncated, rc.StdoutTruncated, rc.StderrTruncated)
	}
	if acc != nil {
		want := receipt.Limits{MemoryMB: acc.Limits.MemoryMB, TimeoutMS: acc.Limits.TimeoutMS, StdoutCap: acc.Limits.StdoutCap, StderrCap: acc.Limits.StderrCap}
		if rc.Limits != want {
			return mismatch(CheckLimits, "accepted limits %+v, receipt limits %+v", want, rc.Limits)
		}
	}
	if rc.Deterministic != deterministic {
		return mismatch(CheckDeterministic, "job asked deterministic=%t, receipt says %t", deterministic, rc.Deterministic)
	}
	return "", nil
}

// checkName is the receipt check an error failed.
func checkName(err error) string {
	var ce *receipt.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return receipt.CheckFormat
}

// Package scripted builds real Phase nodes that depart from the protocol on
// purpose: the misbehaving nodes of the simulator, the liars and stallers of
// the client tests, and the conformance suite's nodes that play against a
// client under test. It ships in non-test code, the way memberlist ships its
// mock transport, so all three share one implementation.
//
// A scripted node is node.New with node.Options.JobHooks (and BuildRecord)
// set: the honest job server with hooks at each step (jobs.Hooks), never a
// replaced stream handler. Named behaviours (WrongOutput, ForgedReceipt, …)
// are ready-made hook sets; the builders below (Reject, StallOffer, Tamper,
// …) make others.
package scripted

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wire"
)

// Named misbehaviours.
const (
	// WrongOutput runs the job and returns other output under a valid
	// receipt for it; each liar's wrong answer is its own.
	WrongOutput = "wrong_output"
	// ColludingOutput is WrongOutput where every liar returns the same wrong
	// output, so liars agree with each other as replicas.
	ColludingOutput = "colluding_output"
	// ForgedReceipt returns honest output with a receipt altered after
	// signing.
	ForgedReceipt = "forged_receipt"
	// ReplayedReceipt returns the result and receipt of its first job for
	// every later job.
	ReplayedReceipt = "replayed_receipt"
	// ForeignReceipt returns honest output with a receipt signed by another
	// node's key.
	ForeignReceipt = "foreign_receipt"
	// LyingCaps advertises far more than it has, and refuses what that
	// attracts.
	LyingCaps = "lying_caps"
	// AcceptThenStall accepts, reads the payload, and never answers.
	AcceptThenStall = "accept_then_stall"
	// RejectAll answers every offer with queue_full.
	RejectAll = "reject_all"
	// TruncateOutput cuts stdout (or stderr) in half and signs that, with
	// the truncation flag unset.
	TruncateOutput = "truncate_output"
)

// Behaviours lists every named misbehaviour, in a fixed order.
func Behaviours() []string {
	return []string{WrongOutput, ForgedReceipt, ReplayedReceipt, ForeignReceipt, LyingCaps, AcceptThenStall, RejectAll, TruncateOutput, ColludingOutput}
}

// Behave returns the hooks and the record override of a named behaviour
// ("" is honest: nil, nil). foreign is the key ForeignReceipt signs with.
func Behave(behaviour string, foreign *identity.Identity) (*jobs.Hooks, func(caps.Record) caps.Record, error) {
	switch behaviour {
	case "":
		return nil, nil, nil
	case WrongOutput:
		return Tamper(func(r *jobs.Ran) error {
			out := fmt.Appendf(append([]byte(nil), r.Result.Stdout...), "[%s]\n", phase.ShortID(r.Receipt.NodePeerID))
			return r.Restate(out, r.Result.Stderr)
		}), nil, nil
	case ColludingOutput:
		return Tamper(func(r *jobs.Ran) error {
			return r.Restate(append(append([]byte(nil), r.Result.Stdout...), "[agreed lie]\n"...), r.Result.Stderr)
		}), nil, nil
	case ForgedReceipt:
		return Tamper(func(r *jobs.Ran) error {
			r.Receipt.WallTimeMS++ // any change after signing breaks the signature
			return nil
		}), nil, nil
	case ReplayedReceipt:
		return Replay(), nil, nil
	case ForeignReceipt:
		if foreign == nil {
			return nil, nil, fmt.Errorf("scripted: %s needs a foreign identity", behaviour)
		}
		return &jobs.Hooks{Sign: func(rc *receipt.Receipt, _ *identity.Identity) error {
			return ResignAs(rc, foreign)
		}}, nil, nil
	case LyingCaps:
		return nil, LieInRecord, nil
	case AcceptThenStall:
		return StallAfterAccept(nil), nil, nil
	case RejectAll:
		return Reject(phase.ReasonQueueFull, "busy"), nil, nil
	case TruncateOutput:
		return Tamper(func(r *jobs.Ran) error {
			stdout, stderr := r.Result.Stdout, r.Result.Stderr
			switch {
			case len(stdout) > 0:
				stdout = stdout[:len(stdout)/2]
			case len(stderr) > 0:
				stderr = stderr[:len(stderr)/2]
			}
			return r.Restate(stdout, stderr)
		}), nil, nil
	}
	return nil, nil, fmt.Errorf("scripted: unknown behaviour %q (known: %v)", behaviour, Behaviours())
}

// Configure returns the configuration a node of this behaviour really runs
// with: a LyingCaps node has far less than it advertises (16 MB, one job).
func Configure(behaviour string, cfg config.Config) config.Config {
	if behaviour == LyingCaps {
		cfg.Jobs.MaxMemoryMB = 16
		cfg.Jobs.MaxConcurrent = 1
		cfg.Jobs.MaxPerPeer = 1
	}
	return cfg
}

// LieInRecord advertises the most of everything and never any load, so the
// node ranks first for every job.
func LieInRecord(r caps.Record) caps.Record {
	r.CPUCores = phase.MaxCPUCores
	r.MemoryMB = 1 << 20
	r.Limits.MaxMemoryMB = phase.MaxMemoryMB
	r.Limits.MaxTimeoutSeconds = phase.MaxTimeoutSeconds
	r.Limits.MaxConcurrentJobs = 1024
	r.Limits.MaxJobsPerPeer = 1024
	r.Limits.MaxStdinBytes = 1 << 30
	r.Limits.MaxModuleBytes = 1 << 30
	r.Load = caps.Load{}
	return r
}

// Reject answers every offer with rejected(reason).
func Reject(reason, detail string) *jobs.Hooks {
	return &jobs.Hooks{Offer: func(_ context.Context, _ *wire.Offer, d session.Decision) session.Decision {
		if d.Release != nil {
			d.Release()
		}
		return session.Decision{Reject: &wire.Rejected{Reason: reason, Detail: detail}}
	}}
}

// ErrorAtOffer answers every offer with an error message.
func ErrorAtOffer(code, detail string) *jobs.Hooks {
	return &jobs.Hooks{Offer: func(_ context.Context, _ *wire.Offer, d session.Decision) session.Decision {
		if d.Release != nil {
			d.Release()
		}
		return session.Decision{Error: &wire.ErrorMsg{Code: code, Detail: detail}}
	}}
}

// StallOffer reads offers and never answers (until the node stops).
func StallOffer() *jobs.Hooks {
	return &jobs.Hooks{Offer: func(ctx context.Context, _ *wire.Offer, d session.Decision) session.Decision {
		<-ctx.Done()
		if d.Release != nil {
			d.Release()
		}
		return session.Decision{Error: &wire.ErrorMsg{Code: phase.CodeInternal, Detail: "node stopped"}}
	}}
}

// StallAfterAccept accepts, reads the payload, and never sends a result
// (until the node stops). held, when set, is called each time a job is
// held.
//
// It says nothing while it holds: no progress messages either.
func StallAfterAccept(held func()) *jobs.Hooks {
	return &jobs.Hooks{
		Reply: func(ctx context.Context, _ *jobs.Ran, _ session.Reply) session.Reply {
			if held != nil {
				held()
			}
			<-ctx.Done()
			return session.Reply{}
		},
		Session: &session.NodeHooks{Send: func(_ context.Context, step session.Step, frame []byte) []byte {
			if step == session.StepProgress {
				return []byte{} // silence
			}
			return frame
		}},
	}
}

// Tamper changes each finished run before it is sent; edit may change the
// receipt (Restate re-signs it for new output) and the output.
func Tamper(edit func(r *jobs.Ran) error) *jobs.Hooks {
	return &jobs.Hooks{Reply: func(_ context.Context, r *jobs.Ran, honest session.Reply) session.Reply {
		if err := edit(r); err != nil {
			return session.Reply{Error: &wire.ErrorMsg{Code: phase.CodeInternal, Detail: err.Error()}}
		}
		return r.Reply()
	}}
}

// Replay sends the first run's result and receipt for every later job.
func Replay() *jobs.Hooks {
	var (
		mu    sync.Mutex
		first *session.Reply
	)
	return &jobs.Hooks{Reply: func(_ context.Context, _ *jobs.Ran, honest session.Reply) session.Reply {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = &honest
		}
		return *first
	}}
}

// ResignAs signs rc with another identity's key, claiming to be it, so the
// signature is good but the signer is not the peer the client dialled.
func ResignAs(rc *receipt.Receipt, other *identity.Identity) error {
	rc.NodePubkey = other.PublicKeyHex()
	rc.NodePeerID = other.ID.String()
	rc.Signature = ""
	return rc.Sign(other.Ed25519())
}

// Combine merges hook sets; for a field several set, the last wins.
func Combine(hs ...*jobs.Hooks) *jobs.Hooks {
	out := &jobs.Hooks{}
	for _, h := range slices.DeleteFunc(slices.Clone(hs), func(h *jobs.Hooks) bool { return h == nil }) {
		if h.State != nil {
			out.State = h.State
		}
		if h.Offer != nil {
			out.Offer = h.Offer
		}
		if h.Exec != nil {
			out.Exec = h.Exec
		}
		if h.Sign != nil {
			out.Sign = h.Sign
		}
		if h.Reply != nil {
			out.Reply = h.Reply
		}
		if h.Session != nil {
			out.Session = h.Session
		}
	}
	return out
}

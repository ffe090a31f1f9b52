package conformance

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// Mutant is a deliberately broken variant of Plasm's node: the honest node
// with one hook that breaks one requirement. The suite must fail on it,
// naming a requirement of Breaks.
type Mutant struct {
	Name   string
	Breaks []string
	About  string
	Hooks  func() *jobs.Hooks
	Stamp  func(*caps.Record)
	// API wraps the node's local HTTP API handler (an API mutant).
	API func(http.Handler) http.Handler
}

// signAs signs a receipt's signing bytes with priv, whatever the receipt
// says its key is (Receipt.Sign refuses to).
func signAs(rc *receipt.Receipt, priv ed25519.PrivateKey, msg []byte) {
	rc.Signature = hex.EncodeToString(ed25519.Sign(priv, msg))
}

// Mutants lists every mutant.
func Mutants() []Mutant {
	sign := func(f func(rc *receipt.Receipt, id *identity.Identity) error) func() *jobs.Hooks {
		return func() *jobs.Hooks { return &jobs.Hooks{Sign: f} }
	}
	exec := func(f func(j *wasm.Job)) func() *jobs.Hooks {
		return func() *jobs.Hooks { return &jobs.Hooks{Exec: f} }
	}
	tamper := func(f func(r *jobs.Ran) error) func() *jobs.Hooks {
		return func() *jobs.Hooks {
			return &jobs.Hooks{Reply: func(_ context.Context, r *jobs.Ran, honest session.Reply) session.Reply {
				if err := f(r); err != nil {
					return honest
				}
				return r.Reply()
			}}
		}
	}
	return append([]Mutant{
		{Name: "skip-hash-check", Breaks: []string{"JOB-8"}, About: "runs received module bytes without checking them against the manifest",
			Hooks: func() *jobs.Hooks {
				return &jobs.Hooks{Session: &session.NodeHooks{SkipHashCheck: true}, Exec: func(j *wasm.Job) { j.ModuleHash = "" }}
			}},
		{Name: "sign-without-nonce", Breaks: []string{"RCPT-7"}, About: "puts a constant nonce in every receipt",
			Hooks: sign(func(rc *receipt.Receipt, id *identity.Identity) error {
				rc.Nonce = strings.Repeat("0", 64)
				return rc.Sign(id.Ed25519())
			})},
		{Name: "unsigned-field", Breaks: []string{"RCPT-3", "RCPT-6"}, About: "leaves wall_time_ms out of the signed bytes",
			Hooks: sign(func(rc *receipt.Receipt, id *identity.Identity) error {
				wall := rc.WallTimeMS
				rc.WallTimeMS = 0
				msg, err := rc.SigningBytes()
				if err != nil {
					return err
				}
				rc.WallTimeMS = wall + 1
				signAs(rc, id.Ed25519(), msg)
				return nil
			})},
		{Name: "foreign-key", Breaks: []string{"RCPT-5", "ID-1"}, About: "signs receipts with a key other than its peer key",
			Hooks: func() *jobs.Hooks {
				other, _ := identity.Generate()
				return &jobs.Hooks{Sign: func(rc *receipt.Receipt, _ *identity.Identity) error {
					rc.NodePubkey, rc.NodePeerID, rc.Signature = other.PublicKeyHex(), other.ID.String(), ""
					return rc.Sign(other.Ed25519())
				}}
			}},
		{Name: "wrong-input-hash", Breaks: []string{"RCPT-8"}, About: "binds receipts to the input without the stdin",
			Hooks: sign(func(rc *receipt.Receipt, id *identity.Identity) error {
				rc.InputHash = phase.HashBytes([]byte("input"))
				return rc.Sign(id.Ed25519())
			})},
		{Name: "ignore-timeout", Breaks: []string{"EXEC-3"}, About: "runs every job for 20 s whatever its time limit",
			Hooks: exec(func(j *wasm.Job) { j.Limits.Timeout = 20 * time.Second })},
		{Name: "ignore-memory-limit", Breaks: []string{"EXEC-2"}, About: "gives every job 64 MB whatever its memory limit",
			Hooks: exec(func(j *wasm.Job) { j.Limits.MemoryMB = 64 })},
		{Name: "pass-no-args", Breaks: []string{"EXEC-1"}, About: "drops the job's arguments",
			Hooks: exec(func(j *wasm.Job) { j.Args = nil })},
		{Name: "stdout-over-cap", Breaks: []string{"JOB-10", "EXEC-4"}, About: "returns more stdout than the accepted cap",
			Hooks: exec(func(j *wasm.Job) { j.Limits.StdoutCap *= 4 })},
		{Name: "accept-replayed-nonce", Breaks: []string{"JOB-15"}, About: "forgets the nonces it has seen",
			Hooks: func() *jobs.Hooks { return &jobs.Hooks{State: func(s *jobs.State) { s.NonceSeen = false }} }},
		{Name: "mislabel-outcome", Breaks: []string{"EXEC-5"}, About: "reports a trap as a timeout",
			Hooks: tamper(func(r *jobs.Ran) error {
				if r.Result.Outcome != phase.OutcomeTrapped {
					return fmt.Errorf("honest")
				}
				r.Result.Outcome = phase.OutcomeTimeout
				return r.Restate(r.Result.Stdout, r.Result.Stderr)
			})},
		{Name: "truncation-unflagged", Breaks: []string{"EXEC-4"}, About: "cuts output at the cap but says it did not",
			Hooks: tamper(func(r *jobs.Ran) error {
				if !r.Result.StdoutTruncated {
					return fmt.Errorf("honest")
				}
				r.Result.StdoutTruncated = false
				return r.Restate(r.Result.Stdout, r.Result.Stderr)
			})},
		{Name: "clamp-up", Breaks: []string{"JOB-11", "EXEC-7"}, About: "accepts with more memory than the manifest asked for",
			Hooks: func() *jobs.Hooks {
				return &jobs.Hooks{Offer: func(_ context.Context, o *wire.Offer, d session.Decision) session.Decision {
					if d.Accept != nil {
						a := *d.Accept
						a.Limits.MemoryMB = o.Manifest.MemoryMB + 1
						d.Accept = &a
					}
					return d
				}}
			}},
		{Name: "have-module-lie", Breaks: []string{"JOB-16"}, About: "always says it has the module",
			Hooks: func() *jobs.Hooks {
				return &jobs.Hooks{Offer: func(_ context.Context, _ *wire.Offer, d session.Decision) session.Decision {
					if d.Accept != nil {
						a := *d.Accept
						a.HaveModule = true
						d.Accept = &a
					}
					return d
				}}
			}},
		{Name: "hang-on-bad-frame", Breaks: []string{"JOB-3", "JOB-13"}, About: "answers nothing to a bad frame and holds the stream",
			Hooks: func() *jobs.Hooks {
				return &jobs.Hooks{Session: &session.NodeHooks{ReadFailed: func(ctx context.Context, _ session.Step, _ error, s session.Stream) {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Second):
					}
					_ = s.Reset()
				}}}
			}},
		{Name: "accept-oversized-frame", Breaks: []string{"WIRE-8", "WIRE-6"}, About: "reads control frames of up to 1 MiB",
			Hooks: func() *jobs.Hooks { return &jobs.Hooks{Session: &session.NodeHooks{ControlCap: 1 << 20}} }},
		{Name: "silent-progress", Breaks: []string{"JOB-18"}, About: "promises progress and never sends it",
			Hooks: func() *jobs.Hooks {
				return &jobs.Hooks{Session: &session.NodeHooks{Send: func(_ context.Context, step session.Step, frame []byte) []byte {
					if step == session.StepProgress {
						return []byte{}
					}
					return frame
				}}}
			}},
		{Name: "stale-seq", Breaks: []string{"CAP-2"}, About: "signs every capability record with seq 1",
			Stamp: func(r *caps.Record) { r.Seq = 1 }},
	}, apiMutants()...)
}

// RunMutants starts Plasm's node once per mutant, runs the node-side cases
// that check what the mutant breaks, and says whether the suite killed it:
// failed, naming one of the requirements the mutant breaks.
func (s *Suite) RunMutants(ctx context.Context, dir string, names []string, opts Options) []MutantKill {
	var out []MutantKill
	for _, m := range Mutants() {
		if len(names) > 0 && !slices.Contains(names, m.Name) {
			continue
		}
		k := MutantKill{Name: m.Name, Breaks: m.Breaks}
		o := InProcessOptions{Dir: fmt.Sprintf("%s/mutant-%s", dir, m.Name), Stamp: m.Stamp, API: m.API}
		if m.Hooks != nil {
			o.Hooks = m.Hooks()
		}
		env, err := InProcess(ctx, o)
		if err != nil {
			k.Message = "could not start: " + err.Error()
			out = append(out, k)
			continue
		}
		mo := opts
		mo.Run = nil
		// The cases of one requirement mostly wait on the mutant (a hang,
		// a missing answer): many at once keep the run short.
		mo.Parallel = max(opts.Parallel, 12)
		keep := func(c Case) bool {
			return slices.ContainsFunc(c.Reqs, func(id string) bool { return slices.Contains(m.Breaks, id) })
		}
		side := SideNode
		if m.API != nil {
			side = SideAPI
		}
		rep := s.runFiltered(ctx, env, side, mo, keep)
		env.Close()
		k.Failed = rep.Failed()
		k.Killed = slices.ContainsFunc(k.Failed, func(id string) bool { return slices.Contains(m.Breaks, id) })
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "mutant %-24s killed=%-5v %5.1fs failed: %s\n", m.Name, k.Killed, rep.Duration.Seconds(), strings.Join(k.Failed, " "))
		}
		out = append(out, k)
	}
	return out
}

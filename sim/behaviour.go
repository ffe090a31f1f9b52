package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/receipt"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// liarConfig is the configuration a misbehaving node really runs with.
// A lying_caps node has far less than it advertises: 16 MB for one job.
func liarConfig(behaviour string, cfg config.Config) config.Config {
	if behaviour == LyingCaps {
		cfg.Jobs.MaxMemoryMB = 16
		cfg.Jobs.MaxConcurrent = 1
		cfg.Jobs.MaxPerPeer = 1
	}
	return cfg
}

// lyingRecord is what a lying_caps node advertises: the most of
// everything, and never any load, so it ranks first for every job.
func lyingRecord(r caps.Record) caps.Record {
	r.CPUCores = 64
	r.MemoryMB = 1 << 20
	r.Limits.MaxMemoryMB = 32768
	r.Limits.MaxTimeoutSeconds = 3600
	r.Limits.MaxConcurrentJobs = 1024
	r.Limits.MaxModuleBytes = 1 << 30
	r.Load = caps.Load{}
	return r
}

// liar serves the job protocol the way one misbehaviour does. It speaks
// the wire protocol correctly (node/wire), runs jobs on the node's own
// executor (jobs.Execute) and signs with jobs.Sign: only the lie itself
// differs from an honest node.
type liar struct {
	behaviour string
	n         *node.Node
	policy    jobs.Policy
	step      time.Duration
	foreign   *identity.Identity // foreign_receipt signs with this key
	log       *slog.Logger

	mu     sync.Mutex
	replay *storedResult // replayed_receipt: the first result, sent again forever
	ctx    context.Context
}

type storedResult struct {
	result         wire.Result
	stdout, stderr []byte
}

// installLiar replaces the node's honest job handler. It is a no-op for
// behaviours that need no handler (lying_caps lies in its record).
func installLiar(ctx context.Context, behaviour string, n *node.Node, foreign *identity.Identity, log *slog.Logger) error {
	if behaviour == LyingCaps || behaviour == "" {
		return nil
	}
	p, err := jobs.NewPolicy(n.Config().Jobs)
	if err != nil {
		return fmt.Errorf("misbehaving node policy: %w", err)
	}
	l := &liar{behaviour: behaviour, n: n, policy: p, step: n.Config().Jobs.StepTimeout.D(), foreign: foreign, log: log, ctx: ctx}
	n.Host.SetStreamHandler(wire.ProtocolJob, l.handle)
	return nil
}

func (l *liar) handle(s network.Stream) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("misbehaving handler panic", "event", "sim_liar_panic", "panic", fmt.Sprint(p))
			_ = s.Reset()
		}
	}()
	br := bufio.NewReader(s)
	_ = s.SetDeadline(time.Now().Add(l.step))
	msg, err := wire.ReadExpect(br, wire.TypeOffer)
	if err != nil {
		_ = s.Reset()
		return
	}
	offer := msg.(*wire.Offer)
	if l.behaviour == RejectAll {
		_ = wire.WriteControl(s, wire.Rejected{Reason: wire.ReasonQueueFull, Detail: "busy"})
		_ = s.Close()
		return
	}
	limits, rej := jobs.Admit(l.policy, jobs.State{}, s.Conn().RemotePeer(), offer)
	if rej != nil {
		_ = wire.WriteControl(s, *rej)
		_ = s.Close()
		return
	}
	if err := wire.WriteControl(s, wire.Accepted{Limits: limits}); err != nil {
		_ = s.Reset()
		return
	}
	pmsg, err := wire.ReadExpect(br, wire.TypePayload)
	if err != nil {
		_ = s.Reset()
		return
	}
	payload := pmsg.(*wire.Payload)
	module, err := wire.ReadDeclared(br, offer.ModuleSize, int(l.policy.MaxModuleBytes), wire.KindModule)
	if err != nil {
		_ = s.Reset()
		return
	}
	stdin, err := wire.ReadDeclared(br, offer.StdinSize, int(l.policy.MaxStdinBytes), wire.KindStdin)
	if err != nil {
		_ = s.Reset()
		return
	}
	if l.behaviour == AcceptThenStall {
		// Hold the stream without a word until the node shuts down; the
		// client has to give up on its own clock.
		_ = s.SetDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, br) // ends at the client's half-close or reset
		<-l.ctx.Done()
		_ = s.Reset()
		return
	}

	spec := jobs.Spec{
		JobID: offer.JobID, Nonce: offer.Nonce, Requester: s.Conn().RemotePeer().String(),
		Job: wasm.Job{
			Module: module, ModuleHash: offer.Manifest.ModuleHash, Args: payload.Args, Stdin: stdin,
			Limits: wasm.Limits{MemoryMB: limits.MemoryMB, Timeout: time.Duration(limits.TimeoutMS) * time.Millisecond,
				StdoutCap: limits.StdoutCap, StderrCap: limits.StderrCap},
			Deterministic: offer.Deterministic, Seed: offer.Seed,
		},
	}
	res, rc, err := jobs.Execute(l.ctx, l.n.Exec, l.n.ID, spec)
	if err != nil {
		_ = s.Reset()
		return
	}
	out, err := l.lie(spec, res, rc)
	if err != nil {
		l.log.Error("misbehaving node could not build its lie", "event", "sim_liar_error", "error", err.Error())
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(l.step))
	bw := bufio.NewWriter(s)
	if wire.WriteControl(bw, out.result) != nil || wire.WriteFrame(bw, out.stdout) != nil ||
		wire.WriteFrame(bw, out.stderr) != nil || bw.Flush() != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// lie turns an honest run into this behaviour's result.
func (l *liar) lie(spec jobs.Spec, res wasm.Result, rc *receipt.Receipt) (*storedResult, error) {
	var err error
	switch l.behaviour {
	case WrongOutput:
		// Each liar's wrong answer is its own: liars do not collude.
		res.Stdout = append(append([]byte(nil), res.Stdout...), fmt.Sprintf("[%s]\n", l.n.Host.ID().ShortString())...)
		res.Stdout = res.Stdout[:min(len(res.Stdout), spec.Job.Limits.StdoutCap)]
		rc, err = jobs.Sign(l.n.ID, spec, res)
	case TruncateOutput:
		switch {
		case len(res.Stdout) > 0:
			res.Stdout = res.Stdout[:len(res.Stdout)/2]
		case len(res.Stderr) > 0:
			res.Stderr = res.Stderr[:len(res.Stderr)/2]
		}
		rc, err = jobs.Sign(l.n.ID, spec, res)
	case ForeignReceipt:
		rc, err = jobs.Sign(l.foreign, spec, res)
	case ForgedReceipt:
		rc.WallTimeMS++ // any change after signing breaks the signature
	case ReplayedReceipt:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.replay != nil {
			return l.replay, nil
		}
	}
	if err != nil {
		return nil, err
	}
	rcJSON, err := json.Marshal(rc)
	if err != nil {
		return nil, fmt.Errorf("encoding receipt: %w", err)
	}
	out := &storedResult{
		result: wire.Result{
			Outcome: rc.Outcome, ExitCode: rc.ExitCode, Detail: res.Detail,
			StdoutSize: int64(len(res.Stdout)), StderrSize: int64(len(res.Stderr)),
			StdoutTruncated: rc.StdoutTruncated, StderrTruncated: rc.StderrTruncated,
			WallTimeMS: res.WallTime.Milliseconds(), Receipt: rcJSON,
		},
		stdout: res.Stdout, stderr: res.Stderr,
	}
	if l.behaviour == ReplayedReceipt {
		l.replay = out
	}
	return out, nil
}

package jobs

import (
	"context"

	"github.com/phase-protocol/plasm/node/session"
	"github.com/phase-protocol/plasm/node/wasm"
	"github.com/phase-protocol/plasm/node/wire"
)

// Hooks let a node depart from the protocol at each step of a job: the
// scriptable node (node/scripted) builds its misbehaviours, the
// simulator's liars and the conformance suite's mutants from them. Every
// field is optional; the zero Hooks is an honest node. The context hooks
// get ends when the node begins to shut down.
type Hooks struct {
	// State may change what admission sees (a node that forgets nonces).
	State func(*State)
	// Offer may replace the decision on an offer: reject everything,
	// accept with other limits, or block to stall before answering.
	Offer func(ctx context.Context, o *wire.Offer, d session.Decision) session.Decision
	// Exec may change the sandbox job before it runs (ignore a limit).
	Exec func(*wasm.Job)
	// Sign signs receipts instead of the node's key (another key, or
	// bytes that leave a field out).
	Sign SignFunc
	// Reply may change what goes back (wrong output, a forged or replayed
	// receipt), or block until ctx ends (stall after accepting).
	Reply func(ctx context.Context, r *Ran, honest session.Reply) session.Reply
	// Session are the I/O-level hooks of the exchange.
	Session *session.NodeHooks
}

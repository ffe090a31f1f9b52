package scripted

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/wasm"
)

// Options build a scripted node.
type Options struct {
	// Config is the node's configuration; the zero value takes
	// LoopbackConfig("").
	Config config.Config
	// Identity is the node's key; nil: a fresh one.
	Identity *identity.Identity
	// Behaviour is a named misbehaviour ("" for none).
	Behaviour string
	// Foreign is the key a ForeignReceipt node signs with.
	Foreign *identity.Identity
	// Hooks are further hooks, applied over the behaviour's.
	Hooks *jobs.Hooks
	// Record overrides the capability record over the behaviour's.
	Record func(caps.Record) caps.Record
	// Stamp changes each record after its seq and times are set.
	Stamp func(*caps.Record)
	// Logger receives the node's logs; nil: discard.
	Logger *slog.Logger
	// Executor, when set, is shared with other nodes of the process.
	Executor *wasm.Executor
}

// LoopbackConfig is a node that listens on a free loopback TCP port, serves
// no API, keeps its state in dataDir ("" for none) and joins no one.
func LoopbackConfig(dataDir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.API = ""
	cfg.Network.HolePunching = false
	return cfg
}

// Start builds and starts a real node that behaves as o says.
func Start(ctx context.Context, o Options) (*node.Node, error) {
	cfg := o.Config
	if cfg.Listen == nil {
		cfg = LoopbackConfig("")
	}
	cfg = Configure(o.Behaviour, cfg)
	hooks, record, err := Behave(o.Behaviour, o.Foreign)
	if err != nil {
		return nil, err
	}
	if o.Hooks != nil {
		hooks = Combine(hooks, o.Hooks)
	}
	if o.Record != nil {
		record = o.Record
	}
	id := o.Identity
	if id == nil {
		if id, err = identity.Generate(); err != nil {
			return nil, err
		}
	}
	n, err := node.New(ctx, node.Options{Config: cfg, Identity: id, Logger: o.Logger, Executor: o.Executor, JobHooks: hooks, BuildRecord: record, StampRecord: o.Stamp})
	if err != nil {
		return nil, fmt.Errorf("scripted node: %w", err)
	}
	if err := n.Start(ctx); err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("scripted node: start: %w", err)
	}
	return n, nil
}

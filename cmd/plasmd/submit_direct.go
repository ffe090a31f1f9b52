package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
)

// joinTimeout bounds how long a temporary client node waits to join.
const joinTimeout = 30 * time.Second

// submitDirect runs the job through a temporary client node that joins
// the network through the bootstrap peers, and leaves afterwards. A
// non-zero deadline bounds the whole run, joining included.
func submitDirect(ctx context.Context, bootstrap []string, req api.JobRequest, deadline time.Duration) (*api.JobResponse, *api.JobError, error) {
	start := time.Now()
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "plasmd-submit-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Listen = []string{"/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"}
	cfg.Bootstrap = bootstrap
	cfg.DHT.ClientMode = true
	cfg.API = ""
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("--bootstrap: %w", err)
	}
	n, err := node.New(ctx, node.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, nil, err
	}
	defer n.Close()
	if err := n.Start(ctx); err != nil {
		return nil, nil, err
	}
	join := joinTimeout
	if deadline > 0 {
		join = min(join, deadline)
	}
	select {
	case <-n.Ready():
	case <-time.After(join):
		return nil, nil, fmt.Errorf("could not join the network through %v within %v", bootstrap, join)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	opts := client.Options{}
	if deadline > 0 {
		if opts.Deadline = deadline - time.Since(start); opts.Deadline <= 0 {
			return nil, nil, fmt.Errorf("--deadline of %s passed while joining the network", deadline)
		}
	}
	res, err := n.Client().Run(ctx, req.Job(), opts)
	if err != nil {
		f := api.Failure(err)
		return nil, &f, nil
	}
	resp := api.Response(res)
	return &resp, nil, nil
}

func peerIDOf(s string) (peer.ID, error) { return peer.Decode(s) }

package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/session"
)

// StreamTimeout bounds a whole caps exchange, on both sides.
const StreamTimeout = 5 * time.Second

// ServeCaps answers /phase/caps/1.0.0 with the record current returns,
// through session.ServeCaps (one caps_request in, one caps or error out).
// Each stream is handled on its own goroutine by libp2p, so a slow or
// hostile peer only holds its own stream, and only until StreamTimeout.
func ServeCaps(h host.Host, current func() *caps.Record, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	record := func() ([]byte, error) {
		rec := current()
		if rec == nil {
			return nil, errors.New("not published yet")
		}
		return rec.Marshal()
	}
	h.SetStreamHandler(phase.ProtocolCaps, func(s network.Stream) {
		remote := s.Conn().RemotePeer()
		if err := session.ServeCaps(context.Background(), s, record, StreamTimeout); err != nil {
			// Peer-triggered, so Debug: a hostile peer must not flood the logs.
			log.Debug("caps request failed", "event", "caps_request_rejected", "peer", remote.String(), "error", phase.Clip(err.Error(), 200))
			return
		}
		log.Debug("caps served", "event", "caps_served", "peer", remote.String())
	})
}

// QueryCaps asks peer id for its live record over /phase/caps/1.0.0 and
// returns it only if it parses, verifies and belongs to id (CAPS-4). The
// exchange is bounded by ctx and by StreamTimeout.
func QueryCaps(ctx context.Context, h host.Host, id peer.ID) (_ *caps.Record, err error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	// Relayed (limited) connections are how NATed nodes are reached.
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "phase caps"), id, phase.ProtocolCaps)
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: open stream: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = s.Reset()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	timeout := StreamTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	raw, err := session.QueryCaps(s, timeout)
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	rec, err := caps.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	if err := caps.Verify(rec, time.Now()); err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	if rec.PeerID != id.String() {
		return nil, fmt.Errorf("query caps of %s: %w: record names %s", id, caps.ErrWrongPeer, rec.PeerID)
	}
	return rec, nil
}

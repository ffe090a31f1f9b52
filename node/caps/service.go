package caps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/phase-protocol/plasm/node/wire"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the live capability query protocol.
const ProtocolID protocol.ID = "/phase/caps/1.0.0"

const (
	// StreamTimeout bounds a whole caps exchange, on both sides.
	StreamTimeout = 5 * time.Second

	maxRequestFrame  = 1024
	maxResponseFrame = MaxRecordSize + 64 // record plus the envelope

	msgCapsRequest = "caps_request"
	msgCaps        = "caps"
)

var capsRequest = []byte(`{"type":"caps_request"}`)

// ServeCaps answers /phase/caps/1.0.0 with the record current returns. A
// request must be one frame holding {"type":"caps_request"}; anything else,
// or no record yet, resets the stream. Each stream is handled in its own
// goroutine by libp2p, so a slow or hostile peer only holds its own stream,
// and only until the StreamTimeout deadline.
func ServeCaps(h host.Host, current func() *Record, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		serveStream(s, current, log)
	})
}

func serveStream(s network.Stream, current func() *Record, log *slog.Logger) {
	remote := s.Conn().RemotePeer()
	if err := s.SetDeadline(time.Now().Add(StreamTimeout)); err != nil {
		log.Warn("caps stream deadline", "event", "caps_request_failed", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	body, err := wire.ReadFrame(s, maxRequestFrame, "caps request")
	if err == nil {
		err = parseRequest(body)
	}
	if err != nil {
		// Peer-triggered, so Debug: a hostile peer must not flood the logs.
		log.Debug("bad caps request", "event", "caps_request_rejected", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	rec := current()
	if rec == nil {
		log.Info("caps request before first record", "event", "caps_unavailable", "peer", remote)
		_ = s.Reset()
		return
	}
	resp, err := encodeResponse(rec)
	if err == nil {
		err = wire.WriteFrame(s, resp)
	}
	if err != nil {
		log.Warn("caps response failed", "event", "caps_request_failed", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
	log.Debug("caps served", "event", "caps_served", "peer", remote, "seq", rec.Seq)
}

// parseRequest accepts exactly {"type":"caps_request"} (whitespace allowed).
func parseRequest(body []byte) error {
	var m map[string]json.RawMessage
	if err := strictUnmarshal(body, &m); err != nil {
		return fmt.Errorf("caps request: %w", err)
	}
	if err := expectType(m, msgCapsRequest); err != nil {
		return fmt.Errorf("caps request: %w", err)
	}
	if len(m) != 1 {
		return errors.New("caps request: unexpected fields besides \"type\"")
	}
	return nil
}

func encodeResponse(rec *Record) ([]byte, error) {
	raw, err := rec.Marshal()
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Type   string          `json:"type"`
		Record json.RawMessage `json:"record"`
	}{msgCaps, raw})
}

// parseResponse decodes {"type":"caps","record":{...}} and parses the
// record strictly. It does not verify it.
func parseResponse(body []byte) (*Record, error) {
	var m map[string]json.RawMessage
	if err := strictUnmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("caps response: %w", err)
	}
	if err := expectType(m, msgCaps); err != nil {
		return nil, fmt.Errorf("caps response: %w", err)
	}
	raw, ok := m["record"]
	if !ok {
		return nil, errors.New(`caps response: missing "record"`)
	}
	if len(m) != 2 {
		return nil, errors.New(`caps response: unexpected fields besides "type" and "record"`)
	}
	rec, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("caps response: %w", err)
	}
	return rec, nil
}

func strictUnmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func expectType(m map[string]json.RawMessage, want string) error {
	raw, ok := m["type"]
	if !ok {
		return errors.New(`missing "type"`)
	}
	var typ string
	if err := json.Unmarshal(raw, &typ); err != nil {
		return fmt.Errorf(`"type" is not a string: %w`, err)
	}
	if typ != want {
		return fmt.Errorf(`"type" is %q, want %q`, truncate(typ), want)
	}
	return nil
}

// QueryCaps asks peer id for its live record over /phase/caps/1.0.0 and
// returns it only if it parses, verifies and belongs to id. The exchange is
// bounded by ctx and by StreamTimeout.
func QueryCaps(ctx context.Context, h host.Host, id peer.ID) (_ *Record, err error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, id, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: open stream: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = s.Reset()
		}
	}()
	// The deadline bounds blocked reads; AfterFunc covers cancellation.
	if d, ok := ctx.Deadline(); ok {
		if err := s.SetDeadline(d); err != nil {
			return nil, fmt.Errorf("query caps of %s: set deadline: %w", id, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	if err := wire.WriteFrame(s, capsRequest); err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("query caps of %s: close write: %w", id, err)
	}
	body, err := wire.ReadFrame(s, maxResponseFrame, "caps response")
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	rec, err := parseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	if err := Verify(rec, time.Now()); err != nil {
		return nil, fmt.Errorf("query caps of %s: %w", id, err)
	}
	if rec.PeerID != id.String() {
		return nil, fmt.Errorf("query caps of %s: %w: record names %s", id, ErrWrongPeer, rec.PeerID)
	}
	_ = s.Close()
	return rec, nil
}

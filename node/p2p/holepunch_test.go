package p2p

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHolePunchLog(t *testing.T) {
	remote := peer.ID("remote-peer")
	cases := []struct {
		name  string
		evt   *holepunch.Event
		level string
		want  map[string]any
	}{
		{"start", &holepunch.Event{Remote: remote, Type: holepunch.StartHolePunchEvtT,
			Evt: &holepunch.StartHolePunchEvt{RemoteAddrs: []string{"/ip4/11.77.4.7/udp/4747/quic-v1"}, RTT: 4 * time.Millisecond}},
			"INFO", map[string]any{"kind": "StartHolePunch", "addrs": []any{"/ip4/11.77.4.7/udp/4747/quic-v1"}, "rtt": "4ms"}},
		{"attempt", &holepunch.Event{Remote: remote, Type: holepunch.HolePunchAttemptEvtT, Evt: &holepunch.HolePunchAttemptEvt{Attempt: 2}},
			"INFO", map[string]any{"kind": "HolePunchAttempt", "attempt": 2.0}},
		{"success", &holepunch.Event{Remote: remote, Type: holepunch.EndHolePunchEvtT,
			Evt: &holepunch.EndHolePunchEvt{Success: true, EllapsedTime: 50 * time.Millisecond}},
			"INFO", map[string]any{"kind": "EndHolePunch", "success": true, "took": "50ms"}},
		{"failure", &holepunch.Event{Remote: remote, Type: holepunch.EndHolePunchEvtT,
			Evt: &holepunch.EndHolePunchEvt{EllapsedTime: 5 * time.Second, Error: "all dials failed"}},
			"INFO", map[string]any{"kind": "EndHolePunch", "success": false, "took": "5s", "error": "all dials failed"}},
		{"direct dial", &holepunch.Event{Remote: remote, Type: holepunch.DirectDialEvtT,
			Evt: &holepunch.DirectDialEvt{EllapsedTime: time.Second, Error: "refused"}},
			"INFO", map[string]any{"kind": "DirectDial", "success": false, "error": "refused"}},
		{"protocol error", &holepunch.Event{Remote: remote, Type: holepunch.ProtocolErrorEvtT, Evt: &holepunch.ProtocolErrorEvt{Error: "no public address"}},
			"WARN", map[string]any{"kind": "ProtocolError", "error": "no public address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			holePunchLog{log: slog.New(slog.NewJSONHandler(&buf, nil))}.Trace(c.evt)
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not one JSON line: %v: %q", err, buf.String())
			}
			if got["event"] != "holepunch" || got["peer"] != remote.String() || got["level"] != c.level {
				t.Errorf("event, peer, level = %v, %v, %v; want holepunch, %s, %s", got["event"], got["peer"], got["level"], remote, c.level)
			}
			for k, v := range c.want {
				if b, _ := json.Marshal(got[k]); string(b) != mustJSON(t, v) {
					t.Errorf("%s = %s, want %s", k, b, mustJSON(t, v))
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHolePunchOptions(t *testing.T) {
	if opts := holePunchOptions(nil, nil); opts != nil {
		t.Errorf("no logger: %d options, want none (libp2p's defaults)", len(opts))
	}
	log := slog.New(slog.DiscardHandler)
	if n := len(holePunchOptions(log, nil)); n != 1 {
		t.Errorf("logger: %d options, want 1", n)
	}
	if n := len(holePunchOptions(log, prometheus.NewRegistry())); n != 1 {
		t.Errorf("logger and registry: %d options, want 1", n)
	}
}

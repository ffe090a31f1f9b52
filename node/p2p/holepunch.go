package p2p

import (
	"context"
	"log/slog"

	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/prometheus/client_golang/prometheus"
)

// holePunchLog logs the DCUtR service's events, one structured line
// each (event "holepunch", kind the libp2p event type): the direct dial
// tried before a punch, the start of a punch with the peer's addresses,
// each attempt, its end (success or the error) and protocol errors.
// They come once per relayed connection at most, so logging them all
// costs nothing on a busy node.
type holePunchLog struct{ log *slog.Logger }

func (l holePunchLog) Trace(e *holepunch.Event) {
	attrs := []any{"event", "holepunch", "kind", e.Type, "peer", e.Remote.String()}
	level := slog.LevelInfo
	switch ev := e.Evt.(type) {
	case *holepunch.DirectDialEvt:
		attrs = append(attrs, "success", ev.Success, "took", ev.EllapsedTime.String())
		if ev.Error != "" {
			attrs = append(attrs, "error", ev.Error)
		}
	case *holepunch.StartHolePunchEvt:
		attrs = append(attrs, "addrs", ev.RemoteAddrs, "rtt", ev.RTT.String())
	case *holepunch.HolePunchAttemptEvt:
		attrs = append(attrs, "attempt", ev.Attempt)
	case *holepunch.EndHolePunchEvt:
		attrs = append(attrs, "success", ev.Success, "took", ev.EllapsedTime.String())
		if ev.Error != "" {
			attrs = append(attrs, "error", ev.Error)
		}
	case *holepunch.ProtocolErrorEvt:
		attrs = append(attrs, "error", ev.Error)
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "hole punch", attrs...)
}

// holePunchOptions are the DCUtR service's options: events logged to
// log, and libp2p's hole punching metrics kept when reg is set (the
// tracer option given here replaces the metrics tracer libp2p would
// install by itself).
func holePunchOptions(log *slog.Logger, reg prometheus.Registerer) []holepunch.Option {
	if log == nil {
		return nil
	}
	et := holePunchLog{log: log}
	if reg == nil {
		return []holepunch.Option{holepunch.WithTracer(et)}
	}
	return []holepunch.Option{holepunch.WithMetricsAndEventTracer(holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)), et)}
}

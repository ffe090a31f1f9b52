package sim

import (
	"context"
	"log/slog"
	"sync"
)

// eventLog is a slog.Handler that keeps count of the node's structured
// events (the "event" attribute every node log line carries) and drops
// the lines themselves: the simulator learns from the production code's
// own logging when a node has bootstrapped or published its record.
type eventLog struct {
	mu     sync.Mutex
	counts map[string]int
	notify func(event string, r slog.Record) // optional, called outside the lock
}

func newEventLog(notify func(string, slog.Record)) *eventLog {
	return &eventLog{counts: map[string]int{}, notify: notify}
}

func (e *eventLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (e *eventLog) Handle(_ context.Context, r slog.Record) error {
	var ev string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			ev = a.Value.String()
			return false
		}
		return true
	})
	if ev == "" {
		return nil
	}
	e.mu.Lock()
	e.counts[ev]++
	e.mu.Unlock()
	if e.notify != nil {
		e.notify(ev, r)
	}
	return nil
}

func (e *eventLog) WithAttrs([]slog.Attr) slog.Handler { return e }
func (e *eventLog) WithGroup(string) slog.Handler      { return e }

// Count is how many times event was logged.
func (e *eventLog) Count(event string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[event]
}

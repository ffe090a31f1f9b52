package sim

import (
	"sync"
	"time"
)

// findSample is one discovery (a client's Find).
type findSample struct {
	At      time.Duration // after the workload started
	Latency time.Duration
	Found   int
	Err     bool
}

// TimelineEvent is a fault applied, or a phase reached, in simulated time.
type TimelineEvent struct {
	At   time.Duration `json:"at_ns"` // after the workload started (negative: before)
	What string        `json:"what"`
}

// stats collects what the run observed; safe for concurrent use.
type stats struct {
	mu       sync.Mutex
	start    time.Time // the workload's start; zero before
	finds    []findSample
	jobs     []JobRecord
	timeline []TimelineEvent
}

func (s *stats) since() time.Duration {
	if s.start.IsZero() {
		return 0
	}
	return time.Since(s.start)
}

func (s *stats) discovery(d time.Duration, found int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finds = append(s.finds, findSample{At: s.since(), Latency: d, Found: found, Err: err != nil})
}

func (s *stats) job(r JobRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, r)
}

func (s *stats) event(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Duration(0)
	if !s.start.IsZero() {
		at = time.Since(s.start)
	}
	s.timeline = append(s.timeline, TimelineEvent{At: at, What: what})
}

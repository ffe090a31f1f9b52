package sim

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// Phases of a run, in order.
const (
	PhaseSetup    = "setup"
	PhaseBoot     = "boot"
	PhaseConverge = "converge"
	PhaseWorkload = "workload"
	PhaseShutdown = "shutdown"
	PhaseDone     = "done"
)

// Progress is a running simulation's state, updated with atomics so that
// a goroutine outside the synctest bubble (the CLI's progress bar, on the
// real clock) can read it while the run goes on.
type Progress struct {
	phase      atomic.Pointer[string]
	NodesUp    atomic.Int64
	NodesTotal atomic.Int64
	Published  atomic.Int64
	JobsTotal  atomic.Int64
	JobsOK     atomic.Int64
	JobsFailed atomic.Int64
	SimNanos   atomic.Int64 // simulated time since the run began
}

// SetPhase records the phase the run is in.
func (p *Progress) SetPhase(s string) { p.phase.Store(&s) }

// Phase is the phase the run is in.
func (p *Progress) Phase() string {
	if s := p.phase.Load(); s != nil {
		return *s
	}
	return PhaseSetup
}

// Line is a one-line progress bar of the given width in columns.
func (p *Progress) Line(width int, wall time.Duration) string {
	total := p.JobsTotal.Load()
	done := p.JobsOK.Load() + p.JobsFailed.Load()
	frac := 0.0
	switch p.Phase() {
	case PhaseBoot, PhaseConverge:
		if n := p.NodesTotal.Load(); n > 0 {
			frac = float64(p.Published.Load()) / float64(n)
		}
	case PhaseWorkload, PhaseShutdown, PhaseDone:
		if total > 0 {
			frac = float64(done) / float64(total)
		}
	}
	frac = min(max(frac, 0), 1)
	info := fmt.Sprintf(" %-8s nodes %d/%d  jobs %d/%d ok %d failed %d  sim %s  wall %s",
		p.Phase(), p.NodesUp.Load(), p.NodesTotal.Load(), done, total, p.JobsOK.Load(), p.JobsFailed.Load(),
		clock(time.Duration(p.SimNanos.Load())), clock(wall))
	bar := max(10, width-len(info)-2)
	filled := int(frac * float64(bar))
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", bar-filled) + "]" + info
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// Render redraws the progress line on w (a terminal's stderr) every
// interval of real time until ctx ends, then draws it one last time and
// ends the line. Call it outside the synctest bubble.
func (p *Progress) Render(ctx context.Context, w io.Writer, interval time.Duration, width int) {
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fmt.Fprintf(w, "\r%s", p.Line(width, time.Since(start)))
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "\r%s\n", p.Line(width, time.Since(start)))
			return
		case <-t.C:
		}
	}
}

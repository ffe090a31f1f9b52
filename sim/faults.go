package sim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/phase-protocol/plasm/node/discovery"
)

// runFaults applies the fault schedule, each event at its time after the
// workload's start, until the schedule ends or ctx does (the workload is
// over).
func (r *runner) runFaults(ctx context.Context) {
	var probes sync.WaitGroup
	defer probes.Wait()
	for _, e := range r.plan.Events {
		if wait := e.At - time.Since(r.workStart); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := r.apply(e); err != nil {
			r.fail(err)
			return
		}
		desc := e.Kind
		switch e.Kind {
		case EvSlow:
			desc += fmt.Sprintf(" ×%g", e.Factor)
		case EvLoss:
			desc += fmt.Sprintf(" p=%g", e.Loss)
		}
		if len(e.Nodes) > 0 {
			desc += " nodes " + nodeList(e.Nodes)
		}
		r.stats.event(desc)
		switch e.Kind {
		case EvHeal, EvRestart:
			probes.Go(func() { r.probe(ctx, e.Kind, e.Nodes) })
		}
	}
}

// probe asks the given nodes for their live capability record, from the
// first client, until each answers (or a minute passes), and notes on the
// timeline how long the network took to reach them again after a heal or
// a restart.
func (r *runner) probe(ctx context.Context, what string, nodes []int) {
	from := r.c.members[r.plan.Servers].node()
	if from == nil || len(nodes) == 0 {
		return
	}
	start := time.Now()
	var mu sync.Mutex
	pending := map[int]bool{}
	for _, i := range nodes {
		pending[i] = true
	}
	sem := make(chan struct{}, 16)
	for len(pending) > 0 && time.Since(start) < time.Minute && ctx.Err() == nil {
		var wg sync.WaitGroup
		mu.Lock()
		round := slices.Sorted(maps.Keys(pending))
		mu.Unlock()
		for _, i := range round {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				m := r.c.members[i]
				from.Host.Peerstore().AddAddrs(m.id.ID, []ma.Multiaddr{ma.StringCast(ListenAddr(i))}, peerstore.TempAddrTTL)
				qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := discovery.QueryCaps(qctx, from.Host, m.id.ID); err == nil {
					mu.Lock()
					delete(pending, i)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(pending) > 0 && !sleepCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	mu.Lock()
	left := len(pending)
	mu.Unlock()
	r.stats.event(fmt.Sprintf("after %s: %d of %d nodes answer again, %.1fs later", what, len(nodes)-left, len(nodes), time.Since(start).Seconds()))
}

func (r *runner) apply(e Event) error {
	c := r.c
	switch e.Kind {
	case EvCrash:
		for _, i := range e.Nodes {
			c.crash(i, false)
		}
	case EvLeave:
		for _, i := range e.Nodes {
			c.crash(i, true)
		}
	case EvRestart, EvJoin:
		// Nodes come back in parallel, as they would after an outage.
		errs := make(chan error, len(e.Nodes))
		for _, i := range e.Nodes {
			go func() { errs <- c.start(i) }()
		}
		for range e.Nodes {
			if err := <-errs; err != nil {
				return fmt.Errorf("%s: %w", e.Kind, err)
			}
		}
		if e.Kind == EvJoin {
			r.prog.NodesTotal.Add(int64(len(e.Nodes)))
		}
	case EvPartition:
		groups := make([]int, len(c.members))
		for _, i := range e.Nodes {
			groups[i] = 1
		}
		c.nw.Partition(groups)
	case EvHeal:
		c.nw.Partition(nil)
	case EvSlow:
		for _, i := range e.Nodes {
			c.nw.SetSlow(i, e.Factor)
		}
	case EvUnslow:
		for _, i := range e.Nodes {
			c.nw.SetSlow(i, 0)
		}
	case EvLoss:
		c.nw.SetLoss(e.Loss)
	default:
		return fmt.Errorf("unknown fault event %q", e.Kind)
	}
	return nil
}

// sleepCtx sleeps for d, or until ctx ends; it reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package discovery

import (
	"context"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/caps"
)

// DefaultRefresh is how long a Finder answers from its cache before it
// looks the providers up again to learn of nodes that joined since. Each
// refresh learns Enough(limit) nodes the cache did not hold, so a busy
// client's pool of candidates grows by that much every DefaultRefresh.
const DefaultRefresh = 10 * time.Second

// refreshTimeout bounds a background refresh.
const refreshTimeout = 30 * time.Second

// Finder is Find with a memory: the verified records it fetched are kept
// until they expire (each record says when), so a client that found
// capable nodes a moment ago does not walk the DHT and query every node
// again for its next job. A Find is answered from the cache when it holds
// Enough(limit) unexpired matching records (or that lookup saw every
// provider) and the last lookup is younger than Refresh; otherwise it looks up again, using cached records instead
// of querying those nodes. After RefreshInBackground, a cache that holds
// enough but is older than Refresh still answers at once, and the lookup
// runs in the background: a job never waits for a refresh. Forget drops a
// node that turned out to be gone. Safe for concurrent use.
type Finder struct {
	Host    host.Host
	DHT     *dht.IpfsDHT
	Refresh time.Duration    // 0: DefaultRefresh
	Now     func() time.Time // nil: time.Now

	mu         sync.Mutex
	records    map[peer.ID]caps.Found
	lookedUp   time.Time       // end of the last lookup that found something
	complete   bool            // that lookup saw every provider (a small network)
	bgCtx      context.Context // nil: no background refresh (not asked for, or closed)
	refreshing bool            // a background refresh is running
	bg         sync.WaitGroup
}

// RefreshInBackground lets Find refresh a stale cache that still holds
// enough records in the background, under ctx (the owner's lifetime);
// Close waits for a refresh in flight.
func (f *Finder) RefreshInBackground(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bgCtx = ctx
}

// Close stops new background refreshes and waits for the one in flight
// (cancel the context given to RefreshInBackground first to cut it short).
func (f *Finder) Close() {
	f.mu.Lock()
	f.bgCtx = nil
	f.mu.Unlock()
	f.bg.Wait()
}

// Find returns up to limit nodes whose records meet req, ranked as Find
// ranks them (limit <= 0: all, and always a full lookup that queries every
// node live, refreshing the cache).
func (f *Finder) Find(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
	want := Enough(limit)
	cached, fresh, complete := f.cached(req)
	enough := want > 0 && (len(cached) >= want || complete && len(cached) > 0)
	if enough && (fresh || f.refreshLater(req, limit)) {
		return rankFound(cached, req, limit), nil
	}
	return f.Lookup(ctx, req, limit)
}

// refreshLater starts a background lookup unless one is running, and
// reports whether the stale cache may answer meanwhile (false: no
// background context, or the Finder is closed; the caller looks up).
func (f *Finder) refreshLater(req caps.Requirements, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bgCtx == nil || f.bgCtx.Err() != nil {
		return false
	}
	if f.refreshing {
		return true
	}
	f.refreshing = true
	f.bg.Add(1)
	ctx := f.bgCtx
	go func() {
		defer f.bg.Done()
		defer func() {
			f.mu.Lock()
			f.refreshing = false
			f.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		// An error leaves the cache and lookedUp as they were: the next
		// Find starts another refresh.
		_, _ = f.Lookup(ctx, req, limit)
	}()
	return true
}

// Lookup is Find without the cache's answer: it always asks the DHT who
// provides, so it sees nodes that joined since the last lookup (a listing
// such as the API's GET /v1/find wants that; a job does not need it). The
// cache still stands in for live queries of the nodes it knows (limit > 0).
func (f *Finder) Lookup(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
	want := Enough(limit)
	known := f.known
	if want == 0 {
		known = nil // a survey of every node (limit <= 0) asks each for its live record
	}
	found, complete, err := lookup(ctx, f.Host, f.DHT, req, want, known, f.keep)
	cached, _, _ := f.cached(req)
	if err != nil && len(cached) == 0 {
		return nil, err
	}
	if err == nil {
		f.mu.Lock()
		f.lookedUp, f.complete = f.now(), complete
		f.mu.Unlock()
	}
	for id, r := range found {
		cached[id] = r
	}
	return rankFound(cached, req, limit), nil
}

// Forget drops a node's cached record (it did not answer, or left).
func (f *Finder) Forget(id peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.records, id)
}

func (f *Finder) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// cached returns the unexpired cached records that match req (dropping
// expired ones from the cache), whether the last lookup is recent, and
// whether it saw every provider.
func (f *Finder) cached(req caps.Requirements) (_ map[peer.ID]caps.Found, fresh, complete bool) {
	now := f.now()
	refresh := f.Refresh
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[peer.ID]caps.Found, len(f.records))
	for id, r := range f.records {
		if r.Record.ExpiresAt <= now.Unix() {
			delete(f.records, id)
			continue
		}
		if ok, _ := caps.Match(r.Record, req); ok {
			out[id] = r
		}
	}
	fresh = !f.lookedUp.IsZero() && now.Sub(f.lookedUp) < refresh
	return out, fresh, f.complete
}

// known gives a lookup the unexpired cached record of id.
func (f *Finder) known(id peer.ID) (caps.Found, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[id]
	if !ok || r.Record.ExpiresAt <= f.now().Unix() {
		return caps.Found{}, false
	}
	return r, true
}

// keep caches a record a lookup fetched and verified; a newer seq wins.
func (f *Finder) keep(r caps.Found) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = map[peer.ID]caps.Found{}
	}
	if prev, ok := f.records[r.Peer.ID]; ok && prev.Record.Seq > r.Record.Seq {
		return
	}
	f.records[r.Peer.ID] = r
}

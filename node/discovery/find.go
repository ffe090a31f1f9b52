package discovery

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/phase"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	// liveTimeout bounds one live query: an unresponsive provider costs
	// this much, in parallel with the others, never a serial stall.
	liveTimeout = 3 * time.Second
	// dhtTimeout bounds the DHT fallback for one provider.
	dhtTimeout = 5 * time.Second
	// fetchWorkers bounds concurrent record fetches.
	fetchWorkers = 8
	// maxCandidates bounds how many providers one Find looks at.
	maxCandidates = 200
	// maxReasons bounds the per-peer reasons listed in a no-match error.
	maxReasons = 8
)

// Find looks up providers of the ABI key (req.ABI, default phase.ABIWASIP1) and,
// when req.RequireArch, of the arch key; fetches each provider's live record
// (falling back to its DHT record when the live query fails); keeps only
// records that verify, belong to the provider and match req; and returns up
// to limit of them ranked by caps.Rank (limit <= 0: all). With limit > 0 it
// stops once Enough(limit) matching records are in hand. Self is skipped.
// When nothing matches, the error wraps caps.ErrNoMatch and says why for
// each peer. Find keeps nothing between calls; Finder does.
func Find(ctx context.Context, h host.Host, d *dht.IpfsDHT, req caps.Requirements, limit int) ([]caps.Found, error) {
	found, _, err := lookup(ctx, h, d, req, Enough(limit), nil, nil)
	if err != nil {
		return nil, err
	}
	return rankFound(found, req, limit), nil
}

// Enough is how many matching records a search for limit nodes gathers
// before it stops: twice the limit, so that the ranking (and its salted
// tie-break) still has a choice and load spreads beyond the first nodes to
// answer. 0 (limit <= 0) means every provider.
func Enough(limit int) int {
	if limit <= 0 {
		return 0
	}
	return min(2*limit, maxCandidates)
}

// rankFound orders found by caps.Rank and cuts it to limit (limit <= 0: all).
func rankFound(found map[peer.ID]caps.Found, req caps.Requirements, limit int) []caps.Found {
	recs := make([]*caps.Record, 0, len(found))
	for _, f := range found {
		recs = append(recs, f.Record)
	}
	ranked := caps.Rank(recs, req)
	out := make([]caps.Found, 0, len(ranked))
	for _, r := range ranked {
		id, _ := peer.Decode(r.PeerID) // verified when fetched
		out = append(out, found[id])
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// lookup finds providers and fetches their records until want match
// (want 0: all); complete says it did not stop early, so every provider
// the DHT named was looked at. known, when set, gives a verified record already in hand
// for a peer (no query then); keep, when set, is told every record fetched
// and verified, matching or not.
func lookup(ctx context.Context, h host.Host, d *dht.IpfsDHT, req caps.Requirements, want int,
	known func(peer.ID) (caps.Found, bool), keep func(caps.Found)) (found map[peer.ID]caps.Found, complete bool, err error) {
	if req.ABI == "" {
		req.ABI = phase.ABIWASIP1
	}
	keys := []string{caps.RuntimeKey(req.ABI)}
	if req.RequireArch && req.Arch != "" {
		a, err := phase.NormalizeArch(req.Arch)
		if err != nil {
			return nil, false, fmt.Errorf("find: requirements: %w", err)
		}
		keys = append(keys, caps.ArchKey(a))
	}

	// fetchCtx ends the lookup and every fetch still out once enough
	// records match: the slowest providers then cost nothing.
	fetchCtx, stop := context.WithCancel(ctx)
	defer stop()
	lookupCtx, stopLookup := context.WithCancel(fetchCtx)
	defer stopLookup()
	candidates := make(chan peer.AddrInfo)
	var lookups sync.WaitGroup
	for _, k := range keys {
		ch := d.FindProvidersAsync(lookupCtx, caps.ProviderCID(k), maxCandidates)
		lookups.Go(func() {
			for ai := range ch {
				select {
				case candidates <- ai:
				case <-lookupCtx.Done():
					return
				}
			}
		})
	}
	go func() {
		lookups.Wait()
		close(candidates)
	}()

	found = map[peer.ID]caps.Found{}
	var (
		mu      sync.Mutex
		early   bool
		reasons []string
		fetches sync.WaitGroup
		sem     = make(chan struct{}, fetchWorkers)
		seen    = map[peer.ID]bool{h.ID(): true}
	)
	note := func(id peer.ID, why string) {
		mu.Lock()
		defer mu.Unlock()
		reasons = append(reasons, fmt.Sprintf("%s: %s", id.ShortString(), why))
	}
	// Only records fetched by this lookup count towards want: a lookup
	// that refreshes a cache then learns want nodes it did not know,
	// instead of stopping at the first want providers it already knew,
	// so a client's pool of candidates keeps growing and its jobs spread
	// over more of a large network.
	fetched := 0
	add := func(f caps.Found, isNew bool) {
		if ok, why := caps.Match(f.Record, req); !ok {
			note(f.Peer.ID, why)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		found[f.Peer.ID] = f
		if isNew {
			fetched++
		}
		if want > 0 && fetched >= want {
			early = true
			stop()
		}
	}
	// Select on fetchCtx too: once enough records match, return at once
	// rather than wait for the DHT walk to wind down.
loop:
	for {
		var ai peer.AddrInfo
		select {
		case next, ok := <-candidates:
			if !ok {
				break loop
			}
			ai = next
		case <-fetchCtx.Done():
			break loop
		}
		if seen[ai.ID] {
			continue
		}
		seen[ai.ID] = true
		if len(seen) > maxCandidates {
			early = true
			break loop
		}
		if len(ai.Addrs) > 0 {
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		}
		if known != nil {
			if f, ok := known(ai.ID); ok {
				add(f, false)
				continue
			}
		}
		select {
		case sem <- struct{}{}:
		case <-fetchCtx.Done():
		}
		if fetchCtx.Err() != nil {
			break loop
		}
		fetches.Go(func() {
			defer func() { <-sem }()
			rec, live, err := fetchRecord(fetchCtx, h, d, ai.ID)
			if err != nil {
				if fetchCtx.Err() == nil || ctx.Err() != nil {
					note(ai.ID, err.Error())
				}
				return
			}
			info := ai
			if len(info.Addrs) == 0 {
				info = h.Peerstore().PeerInfo(ai.ID)
			}
			f := caps.Found{Peer: info, Record: rec, Live: live}
			if keep != nil {
				keep(f)
			}
			add(f, true)
		})
	}
	stopLookup()
	fetches.Wait()
	mu.Lock()
	defer mu.Unlock()
	complete = !early && ctx.Err() == nil
	if len(found) > 0 {
		return found, complete, nil
	}
	return nil, complete, noMatchError(keys, len(seen)-1, reasons, ctx.Err())
}

func noMatchError(keys []string, providers int, reasons []string, ctxErr error) error {
	var b strings.Builder
	if providers == 0 {
		fmt.Fprintf(&b, "no providers of %s", strings.Join(keys, " or "))
	} else {
		fmt.Fprintf(&b, "%d providers of %s, none usable", providers, strings.Join(keys, " or "))
		if len(reasons) > 0 {
			shown := reasons[:min(len(reasons), maxReasons)]
			fmt.Fprintf(&b, ": %s", strings.Join(shown, "; "))
			if len(reasons) > maxReasons {
				fmt.Fprintf(&b, "; and %d more", len(reasons)-maxReasons)
			}
		}
	}
	if ctxErr != nil {
		return fmt.Errorf("find: %w: %s (%w)", caps.ErrNoMatch, b.String(), ctxErr)
	}
	return fmt.Errorf("find: %w: %s", caps.ErrNoMatch, b.String())
}

// fetchRecord gets a verified record for id: live first, then the DHT.
func fetchRecord(ctx context.Context, h host.Host, d *dht.IpfsDHT, id peer.ID) (*caps.Record, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, liveTimeout)
	rec, liveErr := QueryCaps(qctx, h, id)
	cancel()
	if liveErr == nil {
		return rec, true, nil
	}
	rec, err := dhtRecord(ctx, d, id)
	if err != nil {
		return nil, false, fmt.Errorf("live query failed (%v); DHT record: %w", liveErr, err)
	}
	return rec, false, nil
}

func dhtRecord(ctx context.Context, d *dht.IpfsDHT, id peer.ID) (*caps.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, dhtTimeout)
	defer cancel()
	data, err := d.GetValue(ctx, caps.Key(id))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", caps.Key(id), err)
	}
	rec, err := caps.Parse(data)
	if err != nil {
		return nil, err
	}
	// The DHT validator already checked this; checked again so that Find
	// never depends on how the caller configured its DHT.
	if err := caps.Verify(rec, time.Now()); err != nil {
		return nil, err
	}
	if rec.PeerID != id.String() {
		return nil, fmt.Errorf("%w: DHT record names %s", caps.ErrWrongPeer, rec.PeerID)
	}
	return rec, nil
}

package caps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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

// ErrNoMatch is returned (wrapped, with the reasons) when Find finds no node
// that satisfies the requirements.
var ErrNoMatch = errors.New("no matching node")

// Found is one candidate node returned by Find.
type Found struct {
	Peer   peer.AddrInfo
	Record *Record
	Live   bool // record came from /phase/caps/1.0.0, not from the DHT
}

// Find looks up providers of the ABI key (req.ABI, default DefaultABI) and,
// when req.RequireArch, of the arch key; fetches each provider's live record
// (falling back to its DHT record when the live query fails); keeps only
// records that verify, belong to the provider and match req; and returns up
// to limit of them ranked by Rank (limit <= 0: all). Self is skipped. When
// nothing matches, the error wraps ErrNoMatch and says why for each peer.
func Find(ctx context.Context, h host.Host, d *dht.IpfsDHT, req Requirements, limit int) ([]Found, error) {
	if req.ABI == "" {
		req.ABI = DefaultABI
	}
	keys := []string{RuntimeKey(req.ABI)}
	if req.RequireArch && req.Arch != "" {
		a, err := NormalizeArch(req.Arch)
		if err != nil {
			return nil, fmt.Errorf("find: requirements: %w", err)
		}
		keys = append(keys, ArchKey(a))
	}

	lookupCtx, cancelLookup := context.WithCancel(ctx)
	defer cancelLookup()
	candidates := make(chan peer.AddrInfo)
	var lookups sync.WaitGroup
	for _, k := range keys {
		ch := d.FindProvidersAsync(lookupCtx, ProviderCID(k), maxCandidates)
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

	var (
		mu      sync.Mutex
		found   = map[peer.ID]Found{}
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
	for ai := range candidates {
		if seen[ai.ID] {
			continue
		}
		seen[ai.ID] = true
		if len(seen) > maxCandidates {
			cancelLookup()
			break
		}
		if len(ai.Addrs) > 0 {
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		fetches.Go(func() {
			defer func() { <-sem }()
			rec, live, err := fetchRecord(ctx, h, d, ai.ID)
			if err != nil {
				note(ai.ID, err.Error())
				return
			}
			if ok, why := Match(rec, req); !ok {
				note(ai.ID, why)
				return
			}
			info := ai
			if len(info.Addrs) == 0 {
				info = h.Peerstore().PeerInfo(ai.ID)
			}
			mu.Lock()
			found[ai.ID] = Found{Peer: info, Record: rec, Live: live}
			mu.Unlock()
		})
	}
	cancelLookup()
	fetches.Wait()

	recs := make([]*Record, 0, len(found))
	for _, f := range found {
		recs = append(recs, f.Record)
	}
	ranked := Rank(recs, req)
	if limit > 0 && len(ranked) > limit {
		ranked = ranked[:limit]
	}
	out := make([]Found, 0, len(ranked))
	for _, r := range ranked {
		id, _ := peer.Decode(r.PeerID) // verified above
		out = append(out, found[id])
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, noMatchError(keys, len(seen)-1, reasons, ctx.Err())
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
		return fmt.Errorf("find: %w: %s (%w)", ErrNoMatch, b.String(), ctxErr)
	}
	return fmt.Errorf("find: %w: %s", ErrNoMatch, b.String())
}

// fetchRecord gets a verified record for id: live first, then the DHT.
func fetchRecord(ctx context.Context, h host.Host, d *dht.IpfsDHT, id peer.ID) (*Record, bool, error) {
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

func dhtRecord(ctx context.Context, d *dht.IpfsDHT, id peer.ID) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, dhtTimeout)
	defer cancel()
	data, err := d.GetValue(ctx, Key(id))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", Key(id), err)
	}
	rec, err := Parse(data)
	if err != nil {
		return nil, err
	}
	// The DHT validator already checked this; checked again so that Find
	// never depends on how the caller configured its DHT.
	if err := Verify(rec, time.Now()); err != nil {
		return nil, err
	}
	if rec.PeerID != id.String() {
		return nil, fmt.Errorf("%w: DHT record names %s", ErrWrongPeer, rec.PeerID)
	}
	return rec, nil
}

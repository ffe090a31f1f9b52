package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/datadir"
)

// PeersFile is where a node saves the peers it knew at shutdown.
const PeersFile = "peers.json"

// Bounds of peers.json: dht.saved_peers (at most MaxSavedPeers) peers of
// at most maxSavedAddrs addresses each; a larger file is not read.
const (
	MaxSavedPeers     = 1024
	maxSavedAddrs     = 8
	maxPeersFileBytes = 1 << 20
)

// Bootstrapper connects a node to its bootstrap peers (and the peers it
// saved last time) and keeps trying, with backoff, while it has none.
type Bootstrapper struct {
	Host     host.Host
	DHT      *dht.IpfsDHT
	Peers    []peer.AddrInfo // configured bootstrap peers
	Saved    []peer.AddrInfo // peers saved at the last shutdown
	RetryMin time.Duration
	RetryMax time.Duration
	Log      *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}
}

// Ready is closed once the node has reached at least one peer and
// refreshed its routing table.
func (b *Bootstrapper) Ready() <-chan struct{} {
	b.readyOnce.Do(func() { b.ready = make(chan struct{}) })
	return b.ready
}

// Run keeps the node connected until ctx ends. A node with no bootstrap
// peers at all is the first of its network and simply waits to be found.
func (b *Bootstrapper) Run(ctx context.Context) {
	b.Ready()
	candidates := append(append([]peer.AddrInfo{}, b.Peers...), b.Saved...)
	if len(candidates) == 0 {
		b.Log.Info("no bootstrap peers configured; waiting for others to connect", "event", "bootstrap_skipped")
		closeOnce(b.ready)
		return
	}
	delay := b.RetryMin
	for attempt := 1; ; attempt++ {
		n := b.connectAll(ctx, candidates)
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			// Peers enter the routing table once identify has confirmed
			// they speak the DHT; refreshing before that finds no one.
			b.waitRoutingTable(ctx, 5*time.Second)
			err := <-b.DHT.RefreshRoutingTable()
			b.Log.Info("bootstrap complete", "event", "bootstrap_ok", "attempt", attempt, "connected", n,
				"routing_table", b.DHT.RoutingTable().Size(), "refresh_error", errString(err))
			closeOnce(b.ready)
			// Watch for losing every peer; then start over with backoff.
			if !b.waitIsolated(ctx) {
				return
			}
			b.Log.Warn("lost all peers; bootstrapping again", "event", "bootstrap_lost")
			delay = b.RetryMin
			continue
		}
		wait := jitter(delay)
		b.Log.Warn("no bootstrap peer reachable; retrying", "event", "bootstrap_retry", "attempt", attempt,
			"peers_tried", len(candidates), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, b.RetryMax)
	}
}

// connectAll dials every candidate at once and returns how many answered.
func (b *Bootstrapper) connectAll(ctx context.Context, peers []peer.AddrInfo) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for _, p := range peers {
		if p.ID == b.Host.ID() {
			continue // never dial ourselves
		}
		wg.Add(1)
		go func(p peer.AddrInfo) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := b.Host.Connect(cctx, p); err != nil {
				b.Log.Debug("bootstrap peer unreachable", "event", "bootstrap_dial_failed", "peer", p.ID.String(), "error", err.Error())
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return n
}

// waitRoutingTable waits until the routing table has a peer, or limit.
func (b *Bootstrapper) waitRoutingTable(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for b.DHT.RoutingTable().Size() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// waitIsolated returns true when the node has had no connections for a
// while, false when ctx ends first.
func (b *Bootstrapper) waitIsolated(ctx context.Context) bool {
	t := time.NewTicker(max(b.RetryMin, time.Second))
	defer t.Stop()
	empty := 0
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if len(b.Host.Network().Peers()) == 0 {
			empty++
		} else {
			empty = 0
		}
		if empty >= 3 {
			return true
		}
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// jitter spreads retries of many nodes apart: a delay in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// savedPeer is one line of peers.json.
type savedPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// SavePeers writes the peers the host is connected to (at most max, each
// with at most 8 addresses), so the next start can rejoin without the
// bootstrap node. The file is replaced atomically: a full or read-only disk
// leaves the previous file as it was and returns the error.
func SavePeers(fsys datadir.FS, dataDir string, h host.Host, max int) error {
	out := []savedPeer{}
	for _, id := range h.Network().Peers() {
		if len(out) >= min(max, MaxSavedPeers) {
			break
		}
		if h.Network().Connectedness(id) != network.Connected {
			continue
		}
		sp := savedPeer{ID: id.String()}
		for _, a := range h.Peerstore().Addrs(id) {
			if len(sp.Addrs) == maxSavedAddrs {
				break
			}
			sp.Addrs = append(sp.Addrs, a.String())
		}
		if len(sp.Addrs) == 0 {
			continue
		}
		out = append(out, sp)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := datadir.WriteFile(fsys, filepath.Join(dataDir, PeersFile), b, 0o600, true); err != nil {
		return fmt.Errorf("saving peers: %w", err)
	}
	return nil
}

// LoadPeers reads the peers saved by SavePeers. A missing file is no
// peers; a damaged one is an error naming the file.
func LoadPeers(dataDir string) ([]peer.AddrInfo, error) {
	path := filepath.Join(dataDir, PeersFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading saved peers: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPeersFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading saved peers: %w", err)
	}
	if len(b) > maxPeersFileBytes {
		return nil, fmt.Errorf("saved peers %s: larger than %d bytes", path, maxPeersFileBytes)
	}
	var in []savedPeer
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("saved peers %s: %w", path, err)
	}
	var out []peer.AddrInfo
	for i, sp := range in {
		if i == MaxSavedPeers {
			break
		}
		id, err := peer.Decode(sp.ID)
		if err != nil {
			return nil, fmt.Errorf("saved peers %s: entry %d: %w", path, i, err)
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range sp.Addrs {
			a, err := multiaddrOf(s)
			if err != nil {
				return nil, fmt.Errorf("saved peers %s: entry %d: %w", path, i, err)
			}
			if len(ai.Addrs) < maxSavedAddrs {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		out = append(out, ai)
	}
	return out, nil
}

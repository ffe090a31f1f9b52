package config

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// ParseBootstrap turns bootstrap multiaddrs into peers. Each must end in
// /p2p/<peer-id>, so the node knows whom it is dialling; addresses of one
// peer are merged; more than MaxBootstrap peers is an error.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var order []peer.ID
	byID := map[peer.ID]*peer.AddrInfo{}
	for _, s := range addrs {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a multiaddr: %w", s, err)
		}
		if _, err := ma.ValueForProtocol(multiaddr.P_P2P); err != nil {
			return nil, fmt.Errorf("%q has no /p2p/<peer-id> component: a bootstrap address must name its peer", s)
		}
		ai, err := peer.AddrInfoFromP2pAddr(ma)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		if prev, ok := byID[ai.ID]; ok {
			prev.Addrs = append(prev.Addrs, ai.Addrs...)
			continue
		}
		order = append(order, ai.ID)
		byID[ai.ID] = ai
	}
	if len(order) > MaxBootstrap {
		return nil, fmt.Errorf("%d bootstrap peers given, at most %d are taken", len(order), MaxBootstrap)
	}
	out := make([]peer.AddrInfo, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

func peerID(s string) (peer.ID, error) { return peer.Decode(s) }

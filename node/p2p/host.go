// Package p2p builds the libp2p host and the private Kademlia DHT a Phase
// node runs on, and keeps the node connected to its bootstrap peers.
package p2p

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
)

// HostOptions is what a node's libp2p host is built from.
type HostOptions struct {
	Key             crypto.PrivKey
	Listen          []string
	NATPortMap      bool // off by default: a compute node should not open router ports unasked
	RelayService    bool
	StaticRelays    []peer.AddrInfo
	HolePunching    bool
	ConnLow         int
	ConnHigh        int
	MaxMemoryMB     int
	MaxFDs          int
	MaxConnsPerPeer int
	// Protocols whose inbound streams the resource manager should budget
	// per peer (the job protocol): at most StreamsPerPeer each.
	Protocols      []protocol.ID
	StreamsPerPeer int
	// Registerer receives libp2p's own metrics; nil disables them (several
	// hosts in one process would otherwise collide on one registry).
	Registerer prometheus.Registerer
	// Extra options are applied last (the simulator swaps transports here).
	Extra []libp2p.Option
}

// NewHost builds the host: QUIC-v1 and TCP (Noise, yamux), identify and
// ping (libp2p defaults), a resource manager, a connection manager,
// AutoNAT, circuit relay v2 and DCUtR.
func NewHost(o HostOptions) (host.Host, error) {
	if err := CheckPortsFree(o.Listen); err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(o.ConnLow, o.ConnHigh, connmgr.WithGracePeriod(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	rm, err := newResourceManager(o)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(o.Key),
		libp2p.ListenAddrStrings(o.Listen...),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.Ping(true),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableRelay(),
	}
	if o.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(o.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if o.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if o.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if len(o.StaticRelays) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(o.StaticRelays))
	}
	if o.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	opts = append(opts, o.Extra...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	return h, nil
}

// newResourceManager scales libp2p's default limits to the memory and
// file descriptors the operator gave libp2p, and caps each peer's
// connections and job streams so one peer cannot crowd out the rest.
func newResourceManager(o HostOptions) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, p := range o.Protocols {
		limits.AddProtocolLimit(p, rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(p, rcmgr.BaseLimit{StreamsInbound: max(o.StreamsPerPeer, 1), StreamsOutbound: 64, Streams: 64 + max(o.StreamsPerPeer, 1), Memory: 16 << 20},
			rcmgr.BaseLimitIncrease{})
	}
	scaled := limits.Scale(int64(o.MaxMemoryMB)<<20, o.MaxFDs)
	partial := rcmgr.PartialLimitConfig{
		PeerDefault: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(o.MaxConnsPerPeer),
			ConnsInbound:  rcmgr.LimitVal(o.MaxConnsPerPeer),
			ConnsOutbound: rcmgr.LimitVal(o.MaxConnsPerPeer),
		},
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaled)))
}

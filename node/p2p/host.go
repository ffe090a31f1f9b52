// Package p2p builds the libp2p host and the private Kademlia DHT a Phase
// node runs on, and keeps the node connected to its bootstrap peers.
package p2p

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
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
	"github.com/libp2p/go-libp2p/x/rate"
	"github.com/prometheus/client_golang/prometheus"
)

// Reachability settings: AutoNAT decides, or the operator does.
const (
	ReachabilityAuto    = "auto"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

// HostOptions is what a node's libp2p host is built from.
type HostOptions struct {
	Key          crypto.PrivKey
	Listen       []string
	NATPortMap   bool // off by default: a compute node should not open router ports unasked
	RelayService bool
	StaticRelays []peer.AddrInfo
	HolePunching bool
	// Reachability, when ReachabilityPublic or ReachabilityPrivate, skips
	// AutoNAT's verdict: a relay that must serve at once, or a node known
	// to sit behind a NAT that should reserve relay slots without waiting.
	Reachability    string
	ConnLow         int
	ConnHigh        int
	MaxMemoryMB     int
	MaxFDs          int
	MaxConnsPerPeer int
	// TrustedNetworks are exempt from libp2p's per-IP connection limits
	// (new connections per second and concurrent connections per
	// address), as loopback is by default.
	TrustedNetworks []netip.Prefix
	// Protocols whose inbound streams the resource manager should budget
	// (the job protocol): at most Streams open at once node-wide, and
	// StreamsPerPeer from one peer.
	Protocols      []protocol.ID
	Streams        int
	StreamsPerPeer int
	// Registerer receives libp2p's own metrics; nil disables them (several
	// hosts in one process would otherwise collide on one registry).
	Registerer prometheus.Registerer
	// Log, when set, receives the hole punching (DCUtR) events, one line
	// each with event "holepunch".
	Log *slog.Logger
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
		opts = append(opts, libp2p.EnableHolePunching(holePunchOptions(o.Log, o.Registerer)...))
	}
	switch o.Reachability {
	case "", ReachabilityAuto:
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	default:
		return nil, fmt.Errorf("reachability %q is not one of %s, %s, %s", o.Reachability, ReachabilityAuto, ReachabilityPublic, ReachabilityPrivate)
	}
	opts = append(opts, o.Extra...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	return h, nil
}

// Resource manager limits that do not follow from the configuration.
const (
	// connMemory bounds what one connection's muxer may buffer (yamux
	// grows a stream's receive window up to 16 MiB when the reader keeps
	// up, and reserves the growth here): a peer that sends and then stalls
	// leaves at most this much per connection in the node's memory.
	connMemory = 16 << 20
	// peerMemoryShare: one peer may take at most this fraction of the
	// memory given to libp2p, and never more than peerMemoryMax.
	peerMemoryShare = 8
	peerMemoryMax   = 64 << 20
	// streamSlack is room above the configured stream counts for streams
	// the job server is about to refuse or close (a rejection lingers up
	// to a second, JOB-19).
	streamSlack = 32
)

// newResourceManager configures libp2p's resource manager from the
// node's configuration rather than leaving it at libp2p's defaults:
//
//   - system: network.max_memory_mb of memory and network.max_fds file
//     descriptors in all; libp2p's default stream and connection counts
//     scaled to them;
//   - each peer: network.max_conns_per_peer connections, and memory of
//     max_memory_mb/8 (at most 64 MiB); each connection 16 MiB;
//   - the job protocol (Protocols): Streams inbound streams node-wide, and
//     StreamsPerPeer from one peer. Streams past these are reset by libp2p
//     before the job server sees them; the job server's own limits
//     (uploads, queue, per prefix) apply below these;
//   - TrustedNetworks: no per-IP connection rate or count limit.
func newResourceManager(o HostOptions) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	perPeer := max(o.StreamsPerPeer, 1)
	streams := max(o.Streams, perPeer) + streamSlack
	for _, p := range o.Protocols {
		limits.AddProtocolLimit(p, rcmgr.BaseLimit{StreamsInbound: streams, StreamsOutbound: 256, Streams: streams + 256, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(p, rcmgr.BaseLimit{StreamsInbound: perPeer, StreamsOutbound: 64, Streams: 64 + perPeer, Memory: 16 << 20},
			rcmgr.BaseLimitIncrease{})
	}
	memory := int64(o.MaxMemoryMB) << 20
	scaled := limits.Scale(memory, o.MaxFDs)
	peerMemory := min(memory/peerMemoryShare, peerMemoryMax)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Memory: rcmgr.LimitVal64(memory),
			FD:     rcmgr.LimitVal(o.MaxFDs),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(o.MaxConnsPerPeer),
			ConnsInbound:  rcmgr.LimitVal(o.MaxConnsPerPeer),
			ConnsOutbound: rcmgr.LimitVal(o.MaxConnsPerPeer),
			Memory:        rcmgr.LimitVal64(peerMemory),
		},
		Conn: rcmgr.ResourceLimits{
			Memory: rcmgr.LimitVal64(min(connMemory, peerMemory)),
		},
	}
	opts := trustedNetworkOptions(o.TrustedNetworks)
	if o.Registerer == nil {
		// Without this the resource manager reports every event to
		// Prometheus's global registry even with libp2p's metrics off: a
		// formatted timestamp and shared, locked vectors per stream and
		// connection (3 % of a 100-node simulation's CPU).
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaled)), opts...)
}

// libp2p's per-IP limits on new connections (go-libp2p v0.51's
// resource manager defaults, which it does not export): a burst of 16
// then one every 5 s per IPv4 address or IPv6 /56, and more per /48.
var (
	connRateV4 = []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 0.2, Burst: 16}}}
	connRateV6 = []rate.SubnetLimit{
		{PrefixLength: 56, Limit: rate.Limit{RPS: 0.2, Burst: 16}},
		{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5, Burst: 80}},
	}
)

// trustedNetworkOptions exempts the trusted networks, beside loopback,
// from the per-IP connection rate and count limits; libp2p's defaults
// stand when there are none. Many clients behind one NAT, or a test
// harness dialling from one address, would otherwise be reset after
// the first 16 connections.
func trustedNetworkOptions(trusted []netip.Prefix) []rcmgr.Option {
	if len(trusted) == 0 {
		return nil
	}
	exempt := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	exempt = append(exempt, trusted...)
	var rates []rate.PrefixLimit
	var v4, v6 []rcmgr.NetworkPrefixLimit
	for _, p := range exempt {
		p = p.Masked()
		rates = append(rates, rate.PrefixLimit{Prefix: p}) // a zero Limit is no limit
		count := rcmgr.NetworkPrefixLimit{Network: p, ConnCount: math.MaxInt}
		if p.Addr().Is4() {
			v4 = append(v4, count)
		} else {
			v6 = append(v6, count)
		}
	}
	return []rcmgr.Option{
		rcmgr.WithConnRateLimiters(&rate.Limiter{
			NetworkPrefixLimits: rates,
			SubnetRateLimiter: rate.SubnetLimiter{
				IPv4SubnetLimits: connRateV4, IPv6SubnetLimits: connRateV6, GracePeriod: time.Minute,
			},
		}),
		rcmgr.WithNetworkPrefixLimit(v4, v6),
	}
}

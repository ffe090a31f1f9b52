package sim

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// simPort is the UDP port every simulated node listens on; nodes differ by
// IP address.
const simPort = 4747

// Network is the simulated packet network under every node: simnet's
// links (bandwidth, queueing) and router (latency), plus the faults
// simnet has no notion of: nodes that are down, partitions and packet
// loss, applied where a node sends.
type Network struct {
	sim *simnet.Simnet

	baseLatency []time.Duration // per node: one-way latency of its access link
	jitter      time.Duration
	tick        time.Duration // deliveries land on multiples of this (0: exact)

	mu     sync.RWMutex
	byIP   map[[4]byte]int // node index by IP
	down   []bool          // crashed or departed: sends nothing, receives nothing
	slow   []float64       // latency multiplier while a slow fault lasts (0: none)
	group  []int           // partition group; nil when the network is whole
	loss   float64         // probability that any packet is dropped
	rng    *rand.Rand      // jitter and loss draws (under mu)
	conns  []*faultConn    // every endpoint ever opened, for traffic counts
	closed bool

	dropped atomic.Int64
}

// NewNetwork builds the network for n node slots. latency[i] is node i's
// one-way access latency: a packet from a to b takes latency[a]+latency[b]
// plus up to jitter.
func NewNetwork(latency []time.Duration, jitter, tick time.Duration, seed uint64) *Network {
	nw := &Network{
		baseLatency: latency,
		jitter:      jitter,
		tick:        tick,
		byIP:        make(map[[4]byte]int, len(latency)),
		down:        make([]bool, len(latency)),
		slow:        make([]float64, len(latency)),
		rng:         rand.New(rand.NewPCG(seed, 0x6e6574)),
	}
	for i := range latency {
		nw.byIP[ip4(NodeIP(i))] = i
	}
	// simnet logs every unroutable packet at warn level; a crashed node's
	// peers produce thousands of them, which are expected here.
	nw.sim = &simnet.Simnet{LatencyFunc: nw.latency, Logger: discardLogger()}
	return nw
}

// Start starts the router and links.
func (nw *Network) Start() { nw.sim.Start() }

// Close stops the router and every link goroutine.
func (nw *Network) Close() {
	nw.mu.Lock()
	nw.closed = true
	nw.mu.Unlock()
	nw.sim.Close()
}

// NodeIP is the simulated public IPv4 address of node slot i.
func NodeIP(i int) net.IP { return simnet.IntToPublicIPv4(i) }

// ListenAddr is node slot i's QUIC listen multiaddr.
func ListenAddr(i int) string { return fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", NodeIP(i), simPort) }

func ip4(ip net.IP) [4]byte {
	var k [4]byte
	copy(k[:], ip.To4())
	return k
}

func (nw *Network) index(a net.Addr) (int, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return 0, false
	}
	i, ok := nw.byIP[ip4(u.IP)]
	return i, ok
}

// latency is simnet's LatencyFunc: both access links, slowed when a node
// is slow, plus jitter. It runs on simnet's router goroutine.
func (nw *Network) latency(p *simnet.Packet) time.Duration {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var d time.Duration
	for _, a := range []net.Addr{p.From, p.To} {
		if i, ok := nw.index(a); ok {
			l := nw.baseLatency[i]
			if f := nw.slow[i]; f > 0 {
				l = time.Duration(float64(l) * f)
			}
			d += l
		}
	}
	if nw.jitter > 0 {
		d += time.Duration(nw.rng.Int64N(int64(nw.jitter) + 1))
	}
	return onTick(time.Now(), d, nw.tick)
}

// onTick lengthens delay d so that now+d falls on a multiple of tick.
// Packets then arrive together at few instants of virtual time, and the
// nodes they wake run side by side instead of one instant each.
func onTick(now time.Time, d, tick time.Duration) time.Duration {
	if tick <= 0 {
		return d
	}
	if r := time.Duration(now.Add(d).UnixNano() % int64(tick)); r > 0 {
		d += tick - r
	}
	return d
}

// pass reports whether a packet from node a to address to gets through.
func (nw *Network) pass(a int, to net.Addr) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	b, ok := nw.index(to)
	if !ok || nw.down[a] || nw.down[b] {
		return false
	}
	if nw.group != nil && nw.group[a] != nw.group[b] {
		return false
	}
	if nw.loss > 0 && nw.rng.Float64() < nw.loss {
		return false
	}
	return true
}

// SetDown cuts node i off (a crash or a departure) or reconnects it.
func (nw *Network) SetDown(i int, down bool) {
	nw.mu.Lock()
	nw.down[i] = down
	nw.mu.Unlock()
}

// Partition splits the network: nodes in different groups cannot reach
// each other. nil heals it.
func (nw *Network) Partition(group []int) {
	nw.mu.Lock()
	nw.group = group
	nw.mu.Unlock()
}

// SetSlow multiplies node i's access latency by factor (≤ 1: normal).
func (nw *Network) SetSlow(i int, factor float64) {
	nw.mu.Lock()
	if factor <= 1 {
		factor = 0
	}
	nw.slow[i] = factor
	nw.mu.Unlock()
}

// SetLoss sets the probability that a packet is dropped.
func (nw *Network) SetLoss(p float64) {
	nw.mu.Lock()
	nw.loss = p
	nw.mu.Unlock()
}

// Traffic is what the network carried.
type Traffic struct {
	Packets int64 // packets sent by all nodes
	Bytes   int64 // bytes sent by all nodes
	Dropped int64 // packets dropped by faults (down, partition, loss)
}

// Traffic sums the counters of every endpoint opened so far.
func (nw *Network) Traffic() Traffic {
	nw.mu.RLock()
	conns := append([]*faultConn(nil), nw.conns...)
	nw.mu.RUnlock()
	var t Traffic
	for _, c := range conns {
		s := c.Stats()
		t.Packets += int64(s.PacketsSent)
		t.Bytes += int64(s.BytesSent)
	}
	t.Dropped = nw.dropped.Load()
	return t
}

// faultConn is a node's simulated UDP socket: simnet's, with the
// network's faults applied to what it sends.
type faultConn struct {
	*simnet.SimConn
	nw   *Network
	self int
}

func (c *faultConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.nw.pass(c.self, addr) {
		c.nw.dropped.Add(1)
		return len(p), nil // lost on the wire: the sender cannot tell
	}
	return c.SimConn.WriteTo(p, addr)
}

// sourceIP answers quicreuse's source address question: a simulated node
// has exactly one address.
type sourceIP struct{ ip net.IP }

func (s sourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) { return s.ip, nil }

// Transport returns the libp2p options that put node slot i on this
// network (QUIC over a simulated socket with the given link settings),
// and switch off what has no place in a simulated public network:
// AutoNAT, relays, hole punching, identify's address discovery (it stalls
// synctest, see go-libp2p's x/simlibp2p) and the UDP black-hole detector
// (crashes and partitions would make it refuse all dials).
func (nw *Network) Transport(i int, link simnet.NodeBiDiLinkSettings) []libp2p.Option {
	ip := NodeIP(i)
	reuse := []quicreuse.Option{
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return sourceIP{ip}, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			if !addr.IP.Equal(ip) {
				return nil, fmt.Errorf("sim: node %d may only listen on %s, not %s", i, ip, addr.IP)
			}
			c := &faultConn{SimConn: nw.sim.NewEndpoint(addr, link), nw: nw, self: i}
			nw.mu.Lock()
			nw.conns = append(nw.conns, c)
			nw.mu.Unlock()
			return c, nil
		}),
	}
	quicReuse := libp2p.QUICReuse(func(l fx.Lifecycle, srk quic.StatelessResetKey, tk quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
		cm, err := quicreuse.NewConnManager(srk, tk, opts...)
		if err != nil {
			return nil, err
		}
		// A connection manager passed in this way is not closed by
		// libp2p (see x/simlibp2p).
		l.Append(fx.StopHook(cm.Close))
		return cm, nil
	}, reuse...)
	simOnly := func(cfg *config.Config) error {
		cfg.EnableAutoNATv2 = false
		cfg.AutoNATConfig = config.AutoNATConfig{}
		cfg.Relay, cfg.RelayCustom = false, true
		cfg.EnableRelayService = false
		cfg.EnableAutoRelay = false
		cfg.EnableHolePunching = false
		cfg.NATManager = nil
		cfg.DisableIdentifyAddressDiscovery = true
		cfg.UDPBlackHoleSuccessCounter, cfg.CustomUDPBlackHoleSuccessCounter = nil, true
		cfg.IPv6BlackHoleSuccessCounter, cfg.CustomIPv6BlackHoleSuccessCounter = nil, true
		return nil
	}
	return []libp2p.Option{quicReuse, simOnly}
}

// Link is the settings of one node's access link, both ways.
func Link(bitsPerSecond int) simnet.NodeBiDiLinkSettings {
	return simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: bitsPerSecond},
		Uplink:   simnet.LinkSettings{BitsPerSecond: bitsPerSecond},
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

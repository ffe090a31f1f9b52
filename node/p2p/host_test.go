package p2p

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The resource manager caps the job protocol's inbound streams per peer
// and node-wide as configured, whatever libp2p's defaults are.
func TestResourceManagerCapsProtocolStreams(t *testing.T) {
	const proto = protocol.ID("/phase/test/1.0.0")
	key, _, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	h, err := NewHost(HostOptions{
		Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		ConnLow: 10, ConnHigh: 20, MaxMemoryMB: 256, MaxFDs: 256, MaxConnsPerPeer: 4,
		Protocols: []protocol.ID{proto}, Streams: 8, StreamsPerPeer: 2,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	h.SetStreamHandler(proto, func(s network.Stream) { _, _ = io.Copy(io.Discard, s) }) // holds each stream open

	// open opens a stream from c and reports whether the node kept it.
	open := func(c host.Host) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.NewStream(ctx, h.ID(), proto)
		if err != nil {
			return false
		}
		t.Cleanup(func() { _ = s.Reset() })
		if _, err := s.Write([]byte{1}); err != nil {
			return false
		}
		_ = s.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = s.Read(make([]byte, 1))
		var ne net.Error
		return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() // still open: the read timed out instead of failing
	}
	client := func() host.Host {
		c, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}))
		return c
	}
	a, b := client(), client()
	assert.True(t, open(a))
	assert.True(t, open(a))
	assert.False(t, open(a), "a third stream from one peer passes StreamsPerPeer 2")
	assert.True(t, open(b), "another peer still gets in")
}

func TestNewHostReachability(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	base := HostOptions{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, ConnLow: 1, ConnHigh: 4,
		MaxMemoryMB: 64, MaxFDs: 64, MaxConnsPerPeer: 4}
	for _, tc := range []struct {
		reach   string
		wantErr string
	}{
		{"", ""},
		{ReachabilityAuto, ""},
		{ReachabilityPublic, ""},
		{ReachabilityPrivate, ""},
		{"sometimes", `reachability "sometimes"`},
	} {
		t.Run(tc.reach, func(t *testing.T) {
			o := base
			o.Reachability = tc.reach
			h, err := NewHost(o)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, h.Close())
		})
	}
}

// connections sums libp2p's resource-manager connection gauge.
func connections(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "libp2p_rcmgr_connections" {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestResourceManagerReportsOnlyWithARegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	rcmgr.MustRegisterWith(reg) // libp2p's vectors are package-global: watch them here
	tests := []struct {
		name    string
		reg     prometheus.Registerer
		reports bool
	}{
		{"no registerer: silent", nil, false},
		{"registerer: reports", prometheus.NewRegistry(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rm, err := newResourceManager(HostOptions{MaxMemoryMB: 64, MaxFDs: 64, MaxConnsPerPeer: 4, Registerer: tt.reg})
			require.NoError(t, err)
			defer rm.Close()
			before := connections(t, reg)
			c, err := rm.OpenConnection(network.DirInbound, true, ma.StringCast("/ip4/10.0.0.1/udp/1/quic-v1"))
			require.NoError(t, err)
			defer c.Done()
			if tt.reports {
				assert.Greater(t, connections(t, reg), before)
			} else {
				assert.Equal(t, before, connections(t, reg))
			}
		})
	}
}

// Trusted networks are exempt from libp2p's per-IP connection rate limit
// (a burst of 16, then one every 5 s); other addresses still meet it.
func TestResourceManagerTrustedNetworks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		trusted  []netip.Prefix
		from     string
		wantOpen int // of 40 connections opened (and closed) at once
	}{
		{"no trusted networks", nil, "/ip4/10.1.2.3/tcp/4000", 16},
		{"trusted v4", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "/ip4/10.1.2.3/tcp/4000", 40},
		{"outside the trusted network", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "/ip4/192.0.2.9/tcp/4000", 16},
		{"trusted v6", []netip.Prefix{netip.MustParsePrefix("fd00::/8")}, "/ip6/fd00::7/tcp/4000", 40},
		{"loopback stays exempt", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "/ip4/127.0.0.1/tcp/4000", 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rm, err := newResourceManager(HostOptions{MaxMemoryMB: 64, MaxFDs: 256, MaxConnsPerPeer: 4, TrustedNetworks: tc.trusted})
			require.NoError(t, err)
			defer rm.Close()
			from := ma.StringCast(tc.from)
			opened := 0
			for range 40 {
				scope, err := rm.OpenConnection(network.DirInbound, false, from)
				if err != nil {
					assert.ErrorContains(t, err, "rate limit")
					continue
				}
				opened++
				scope.Done()
			}
			assert.Equal(t, tc.wantOpen, opened)
		})
	}
}

// Trusted networks are also exempt from the per-IP count of connections
// open at once (8 by default).
func TestResourceManagerTrustedNetworksConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		trusted  []netip.Prefix
		wantOpen int
	}{
		{"untrusted", nil, 8},
		{"trusted", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rm, err := newResourceManager(HostOptions{MaxMemoryMB: 64, MaxFDs: 256, MaxConnsPerPeer: 4, TrustedNetworks: tc.trusted})
			require.NoError(t, err)
			defer rm.Close()
			from := ma.StringCast("/ip4/10.1.2.3/tcp/4000")
			var open []network.ConnManagementScope
			for range 12 {
				if scope, err := rm.OpenConnection(network.DirInbound, false, from); err == nil {
					open = append(open, scope)
				}
			}
			assert.Len(t, open, tc.wantOpen)
			for _, s := range open {
				s.Done()
			}
		})
	}
}

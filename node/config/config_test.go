package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const peerA = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

func TestDefaultIsValid(t *testing.T) {
	require.NoError(t, Default().Validate())
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"api":"127.0.0.1:9999","jobs":{"max_concurrent":3,"max_per_peer":2,"auth":{"mode":"allowlist","allow":["` + peerA + `"]}},"caps":{"republish_interval":"1m","ttl":"5m"}}`))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", c.API)
	assert.Equal(t, 3, c.Jobs.MaxConcurrent)
	assert.Equal(t, "allowlist", c.Jobs.Auth.Mode)
	assert.Equal(t, time.Minute, c.Caps.RepublishInterval.D())
	// Fields the file leaves out keep their defaults.
	assert.Equal(t, Default().Jobs.MaxModuleBytes, c.Jobs.MaxModuleBytes)
	assert.Equal(t, Default().Listen, c.Listen)
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", `{"lisen":[]}`, `unknown field "lisen"`},
		{"unknown nested field", `{"jobs":{"max_conc":1}}`, `unknown field "max_conc"`},
		{"wrong type", `{"jobs":{"max_concurrent":"8"}}`, "max_concurrent"},
		{"bad multiaddr", `{"listen":["tcp:4747"]}`, "listen[0]"},
		{"bootstrap without peer id", `{"bootstrap":["/ip4/127.0.0.1/tcp/4747"]}`, "no /p2p/<peer-id>"},
		{"out of range", `{"jobs":{"max_memory_mb":0}}`, "jobs.max_memory_mb: 0 out of range 1–32768"},
		{"per peer over global", `{"jobs":{"max_concurrent":2,"max_per_peer":3}}`, "jobs.max_per_peer"},
		{"bad duration", `{"caps":{"ttl":"soon"}}`, "ttl"},
		{"ttl under interval", `{"caps":{"republish_interval":"10m","ttl":"5m"}}`, "caps.ttl"},
		{"bad auth mode", `{"jobs":{"auth":{"mode":"closed"}}}`, "jobs.auth.mode"},
		{"bad wasm tier", `{"wasm":{"tier":"jit"}}`, "wasm.tier"},
		{"tiny memory cache", `{"wasm":{"memory_cache_mb":1}}`, "wasm.memory_cache_mb"},
		{"bad peer id in deny", `{"jobs":{"auth":{"deny":["nope"]}}}`, "jobs.auth.deny[0]"},
		{"bad log level", `{"log":{"level":"loud"}}`, "log.level"},
		{"bad reachability", `{"network":{"reachability":"sometimes"}}`, "network.reachability"},
		{"trailing data", `{} {}`, "trailing data"},
		{"conn high under low", `{"network":{"conn_low":10,"conn_high":5}}`, "network.conn_high"},
		{"trusted network not a CIDR", `{"network":{"trusted_networks":["10.0.0.0/8","10.0.0.1"]}}`, `network.trusted_networks[1]: "10.0.0.1" is not a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestTrustedPrefixes(t *testing.T) {
	c, err := Parse([]byte(`{"network":{"trusted_networks":["10.1.2.3/16","fd00::/8"]}}`))
	require.NoError(t, err)
	got, err := c.Network.TrustedPrefixes()
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}, got)
	got, err = Default().Network.TrustedPrefixes()
	require.NoError(t, err)
	assert.Empty(t, got, "no network is trusted by default")
}

func TestDHT2_ParseBootstrap(t *testing.T) {
	addr := "/ip4/127.0.0.1/tcp/4747/p2p/" + peerA
	peers, err := ParseBootstrap([]string{addr, "/ip4/127.0.0.1/udp/4747/quic-v1/p2p/" + peerA})
	require.NoError(t, err)
	require.Len(t, peers, 1, "addresses of one peer merge")
	assert.Len(t, peers[0].Addrs, 2)

	_, err = ParseBootstrap([]string{"/ip4/127.0.0.1/tcp/4747"})
	assert.ErrorContains(t, err, "/p2p/")

	many := make([]string, MaxBootstrap+1)
	for i := range many {
		many[i] = "/ip4/127.0.0.1/tcp/4747/p2p/" + testPeer(t, i)
	}
	_, err = ParseBootstrap(many)
	assert.ErrorContains(t, err, "at most 64")
	_, err = ParseBootstrap(many[:MaxBootstrap])
	assert.NoError(t, err)
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "plasmd.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"jobs":{"max_timeout_seconds":99999}}`), 0o600))
	_, err := Load(p)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), p) && strings.Contains(err.Error(), "jobs.max_timeout_seconds"), err.Error())
	_, err = Load(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "reading config")
}

func TestShippedExampleConfigIsValid(t *testing.T) {
	_, err := Load(filepath.Join("..", "..", "docs", "plasmd.example.json"))
	require.NoError(t, err)
}

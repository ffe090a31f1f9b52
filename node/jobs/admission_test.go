package jobs

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wire"
)

func testPeer(tb testing.TB) peer.ID {
	tb.Helper()
	id, err := identity.Generate()
	require.NoError(tb, err)
	return id.ID
}

func testPolicy() Policy {
	return Policy{
		Mode: AuthOpen, Allow: map[peer.ID]bool{}, Deny: map[peer.ID]bool{},
		Arch: "amd64", ABIs: []string{"wasi_snapshot_preview1"}, Deterministic: true,
		CPUCores: 4, MemoryMB: 2048,
		MaxModuleBytes: 1 << 20, MaxStdinBytes: 1 << 10,
		MaxMemoryMB: 512, MaxTimeoutSeconds: 60,
		StdoutCap: 1000, StderrCap: 100,
		MaxConcurrent: 2, QueueSize: 2, MaxPerPeer: 2,
		MaxUploads: 8, MaxUploadsPerPrefix: 4, MaxJobsPerPrefix: 3,
	}
}

func testOffer() *wire.Offer {
	return &wire.Offer{
		Type: wire.TypeOffer, JobID: "job-1", Nonce: strings.Repeat("ab", 32),
		Manifest: manifest.Manifest{Version: "0.1", ModuleHash: "sha256:" + strings.Repeat("0", 64),
			CPUCores: 1, MemoryMB: 64, TimeoutSeconds: 10},
		ModuleSize: 1000, StdinSize: 10, ArgsCount: 2,
	}
}

func TestEXEC7_JOB15_Admit(t *testing.T) {
	me, other := testPeer(t), testPeer(t)
	for _, tc := range []struct {
		name   string
		policy func(*Policy)
		state  State
		offer  func(*wire.Offer) // nil offer when it sets o.JobID to "<nil>"
		reason string            // "" = accepted
		detail string            // substring of the rejection detail
		limits wire.AppliedLimits
	}{
		{name: "accepted as asked", limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "memory clamped to the per-job max", offer: func(o *wire.Offer) { o.Manifest.MemoryMB = 1024 },
			limits: wire.AppliedLimits{MemoryMB: 512, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "timeout clamped to the per-job max", offer: func(o *wire.Offer) { o.Manifest.TimeoutSeconds = 3600 },
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 60000, StdoutCap: 1000, StderrCap: 100}},
		{name: "arch preference only", offer: func(o *wire.Offer) { o.Arch = "arm64" },
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "required arch matches through an alias", offer: func(o *wire.Offer) { o.Arch, o.RequireArch = "x86_64", true },
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "allowlisted peer", policy: func(p *Policy) { p.Mode = AuthAllowlist; p.Allow[me] = true },
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "sizes at the limits", offer: func(o *wire.Offer) { o.ModuleSize, o.StdinSize = 1<<20, 1<<10 },
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "last queue place", state: State{Admitted: 3, PeerInFlight: 1},
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},

		{name: "nil offer", offer: func(o *wire.Offer) { o.JobID = "<nil>" }, reason: phase.ReasonInvalidRequest, detail: "no offer"},
		{name: "denylisted", policy: func(p *Policy) { p.Deny[me] = true }, reason: phase.ReasonUnauthorized, detail: "does not take jobs"},
		{name: "deny beats allow", policy: func(p *Policy) { p.Mode = AuthAllowlist; p.Allow[me] = true; p.Deny[me] = true }, reason: phase.ReasonUnauthorized},
		{name: "not on the allowlist", policy: func(p *Policy) { p.Mode = AuthAllowlist; p.Allow[other] = true }, reason: phase.ReasonUnauthorized, detail: "allowlist"},
		{name: "unauthorized before invalid", policy: func(p *Policy) { p.Deny[me] = true }, offer: func(o *wire.Offer) { o.Nonce = "x" }, reason: phase.ReasonUnauthorized},
		{name: "bad nonce", offer: func(o *wire.Offer) { o.Nonce = "XYZ" }, reason: phase.ReasonInvalidRequest, detail: `"nonce"`},
		{name: "bad job id", offer: func(o *wire.Offer) { o.JobID = "a b" }, reason: phase.ReasonInvalidRequest, detail: `"job_id"`},
		{name: "manifest memory out of range", offer: func(o *wire.Offer) { o.Manifest.MemoryMB = 0 }, reason: phase.ReasonInvalidRequest, detail: "memory_mb"},
		{name: "manifest bad hash", offer: func(o *wire.Offer) { o.Manifest.ModuleHash = "md5:x" }, reason: phase.ReasonInvalidRequest, detail: "module_hash"},
		{name: "negative module size", offer: func(o *wire.Offer) { o.ModuleSize = -1 }, reason: phase.ReasonInvalidRequest, detail: "module_size"},
		{name: "too many args", offer: func(o *wire.Offer) { o.ArgsCount = phase.MaxArgs + 1 }, reason: phase.ReasonInvalidRequest, detail: "args_count"},
		{name: "unknown arch", offer: func(o *wire.Offer) { o.Arch = "vax" }, reason: phase.ReasonInvalidRequest, detail: "arch"},
		{name: "seed without deterministic", offer: func(o *wire.Offer) { o.Seed = 5 }, reason: phase.ReasonInvalidRequest, detail: "seed"},
		{name: "runtime without WASI", policy: func(p *Policy) { p.ABIs = []string{"wasi_preview2"} }, reason: phase.ReasonRuntimeNotSupported, detail: "wasi_snapshot_preview1"},
		{name: "no deterministic mode", policy: func(p *Policy) { p.Deterministic = false }, offer: func(o *wire.Offer) { o.Deterministic = true }, reason: phase.ReasonRuntimeNotSupported, detail: "deterministic"},
		{name: "required arch differs", offer: func(o *wire.Offer) { o.Arch, o.RequireArch = "aarch64", true }, reason: phase.ReasonArchMismatch, detail: "arm64"},
		{name: "module too large", offer: func(o *wire.Offer) { o.ModuleSize = 1<<20 + 1 }, reason: phase.ReasonTooLarge, detail: "module_size"},
		{name: "stdin too large", offer: func(o *wire.Offer) { o.StdinSize = 1<<10 + 1 }, reason: phase.ReasonTooLarge, detail: "stdin_size"},
		{name: "too many cores", offer: func(o *wire.Offer) { o.Manifest.CPUCores = 5 }, reason: phase.ReasonInsufficientResources, detail: "CPU cores"},
		{name: "more memory than the node has", offer: func(o *wire.Offer) { o.Manifest.MemoryMB = 4096 }, reason: phase.ReasonInsufficientResources, detail: "memory"},
		{name: "replayed nonce", state: State{NonceSeen: true}, reason: phase.ReasonReplayedNonce, detail: "already used"},
		{name: "replay before load", state: State{NonceSeen: true, Admitted: 100}, reason: phase.ReasonReplayedNonce},
		{name: "draining", state: State{Draining: true}, reason: phase.ReasonQueueFull, detail: "shutting down"},
		{name: "global queue full", state: State{Admitted: 4}, reason: phase.ReasonQueueFull, detail: "busy"},
		{name: "peer at its limit", state: State{Admitted: 2, PeerInFlight: 2}, reason: phase.ReasonQueueFull, detail: "in flight"},
		{name: "uploads hold no queue place", state: State{Admitted: 3, Uploads: 7, PrefixUploads: 3},
			limits: wire.AppliedLimits{MemoryMB: 64, TimeoutMS: 10000, StdoutCap: 1000, StderrCap: 100}},
		{name: "prefix at its job limit", state: State{Admitted: 3, PrefixJobs: 3}, reason: phase.ReasonQueueFull, detail: "address prefix already has 3 jobs"},
		{name: "uploads full", state: State{Uploads: 8}, reason: phase.ReasonQueueFull, detail: "still sending their payload"},
		{name: "prefix uploads full", state: State{Uploads: 4, PrefixUploads: 4}, reason: phase.ReasonQueueFull, detail: "address prefix already has 4 streams"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			o := testOffer()
			if tc.offer != nil {
				tc.offer(o)
			}
			if o.JobID == "<nil>" {
				o = nil
			}
			limits, rej := Admit(p, tc.state, me, o)
			if tc.reason == "" {
				require.Nil(t, rej, "rejected: %+v", rej)
				assert.Equal(t, tc.limits, limits)
				require.NoError(t, wire.Accepted{Limits: limits}.Validate())
				require.NoError(t, o.CheckAccepted(&wire.Accepted{Limits: limits}), "JOB-11: never clamp up")
				return
			}
			require.NotNil(t, rej, "accepted with %+v", limits)
			assert.Equal(t, tc.reason, rej.Reason)
			assert.Contains(t, rej.Detail, tc.detail)
			require.NoError(t, rej.Validate())
			assert.Zero(t, limits)
		})
	}
}

func TestNewPolicy(t *testing.T) {
	allowed := testPeer(t)
	t.Run("defaults", func(t *testing.T) {
		cfg := config.Default().Jobs
		cfg.Auth = config.Auth{Mode: AuthAllowlist, Allow: []string{allowed.String()}}
		p, err := NewPolicy(cfg)
		require.NoError(t, err)
		assert.True(t, p.Allow[allowed])
		assert.Equal(t, cfg.MaxConcurrent, p.QueueSize)
		assert.Equal(t, cfg.MaxMemoryMB*cfg.MaxConcurrent, p.MemoryMB)
		assert.Positive(t, p.CPUCores)
		assert.NotEmpty(t, p.Arch)
		_, rej := Admit(p, State{}, allowed, testOffer())
		assert.Nil(t, rej)
	})
	for _, tc := range []struct {
		name   string
		mutate func(*config.Jobs)
		want   string
	}{
		{"zero concurrency", func(c *config.Jobs) { c.MaxConcurrent = 0 }, "jobs.max_concurrent"},
		{"zero per peer", func(c *config.Jobs) { c.MaxPerPeer = 0 }, "jobs.max_per_peer"},
		{"zero step timeout", func(c *config.Jobs) { c.StepTimeout = 0 }, "jobs.step_timeout"},
		{"negative stdout cap", func(c *config.Jobs) { c.StdoutCap = -1 }, "jobs.stdout_cap"},
		{"timeout over protocol max", func(c *config.Jobs) { c.MaxTimeoutSeconds = 7200 }, "jobs.max_timeout_seconds"},
		{"memory over protocol max", func(c *config.Jobs) { c.MaxMemoryMB = 40000 }, "jobs.max_memory_mb"},
		{"bad auth mode", func(c *config.Jobs) { c.Auth.Mode = "closed" }, "jobs.auth.mode"},
		{"bad peer id", func(c *config.Jobs) { c.Auth.Deny = []string{"nope"} }, "jobs.auth.deny[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().Jobs
			cfg.StepTimeout = config.Duration(time.Second)
			tc.mutate(&cfg)
			_, err := NewPolicy(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzAdmit: no offer, however odd, makes Admit panic, and whatever it
// accepts gets limits that validate and never exceed the request.
func FuzzJOB3_Admit(f *testing.F) {
	seed, _ := json.Marshal(testOffer())
	f.Add(seed, 0, 0, false)
	f.Add([]byte(`{"type":"offer","job_id":"j","nonce":"`+strings.Repeat("0", 64)+`","manifest":{"version":"0.1","module_hash":"sha256:`+strings.Repeat("a", 64)+`","cpu_cores":64,"memory_mb":32768,"timeout_seconds":3600},"module_size":0,"stdin_size":0,"args_count":0,"arch":"aarch64","require_arch":true}`), 3, 1, true)
	f.Add([]byte(`{"type":"offer"}`), 100, 100, false)
	f.Add([]byte(`{"type":"offer","module_size":-5,"stdin_size":9223372036854775807}`), -1, -1, false)
	p := testPolicy()
	from := peer.ID("fuzz-peer")
	f.Fuzz(func(t *testing.T, body []byte, admitted, inflight int, seen bool) {
		var o wire.Offer
		if json.Unmarshal(body, &o) != nil {
			return
		}
		limits, rej := Admit(p, State{Admitted: admitted, PeerInFlight: inflight, NonceSeen: seen}, from, &o)
		if rej != nil {
			if err := rej.Validate(); err != nil {
				t.Fatalf("invalid rejection %+v: %v", rej, err)
			}
			return
		}
		if err := (wire.Accepted{Limits: limits}).Validate(); err != nil {
			t.Fatalf("accepted with invalid limits %+v: %v", limits, err)
		}
		if err := o.CheckAccepted(&wire.Accepted{Limits: limits}); err != nil {
			t.Fatalf("clamped up: %v", err)
		}
		if o.ModuleSize > p.MaxModuleBytes || o.StdinSize > p.MaxStdinBytes {
			t.Fatalf("accepted sizes %d/%d over the caps", o.ModuleSize, o.StdinSize)
		}
	})
}

func TestAddrPrefix(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"203.0.113.1", "203.0.113.0/24"},
		{"203.0.114.1", "203.0.114.0/24"},
		{"::ffff:203.0.113.9", "203.0.113.0/24"}, // IPv4-mapped counts as IPv4
		{"2001:db8:abcd:12::1", "2001:db8:abcd::/48"},
		{"2001:db8:abce::1", "2001:db8:abce::/48"},
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"::1", "loopback"},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			assert.Equal(t, tc.want, AddrPrefix(net.ParseIP(tc.ip)))
		})
	}
	assert.Equal(t, "", AddrPrefix(nil))
}

func TestNewPolicyUploadLimits(t *testing.T) {
	cfg := config.Default().Jobs
	cfg.MaxUploads, cfg.MaxUploadsPerPrefix, cfg.MaxJobsPerPrefix = 0, 0, 0 // a config written before these keys
	p, err := NewPolicy(cfg)
	require.NoError(t, err)
	def := config.Default().Jobs
	assert.Equal(t, def.MaxUploads, p.MaxUploads)
	assert.Equal(t, def.MaxUploadsPerPrefix, p.MaxUploadsPerPrefix)
	assert.Equal(t, def.MaxJobsPerPrefix, p.MaxJobsPerPrefix)

	cfg.MaxConcurrent, cfg.MaxPerPeer, cfg.MaxJobsPerPrefix = 2, 2, 100
	p, err = NewPolicy(cfg)
	require.NoError(t, err)
	assert.Equal(t, 4, p.MaxJobsPerPrefix, "no more than the queue and the run slots")
}

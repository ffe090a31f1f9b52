package caps

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/phase-protocol/plasm/node/phase"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCAP5_Match(t *testing.T) {
	r := baseRecord(mustID(t, 1)) // amd64, 4 cores, 4096 MB, per-job 1024 MB, 8 MiB modules, 300 s, load 1+2
	r.MemoryMB = 900              // less than the per-job limit: both are checked

	tests := []struct {
		name string
		req  Requirements
		why  string // "" = match; else a substring naming the field
	}{
		{"no requirements", Requirements{}, ""},
		{"everything at the limit", Requirements{Runtime: "wazero", ABI: phase.ABIWASIP1, Arch: "amd64", RequireArch: true,
			MinMemoryMB: 900, MinCores: 4, MaxModuleBytes: 8 << 20, TimeoutSeconds: 300, MaxLoad: 3}, ""},
		{"runtime", Requirements{Runtime: "wasmtime"}, "runtime:"},
		{"abi", Requirements{ABI: "wasi_snapshot_preview2"}, "abis:"},
		{"arch required", Requirements{Arch: "arm64", RequireArch: true}, "arch:"},
		{"arch required via alias", Requirements{Arch: "aarch64", RequireArch: true}, "arch: node is amd64, job requires arm64"},
		{"arch alias matches", Requirements{Arch: "x86_64", RequireArch: true}, ""},
		{"arch only preferred", Requirements{Arch: "arm64"}, ""},
		{"stdin size", Requirements{StdinBytes: 1<<20 + 1}, "limits.max_stdin_bytes"},
		{"memory available", Requirements{MinMemoryMB: 901}, "memory_mb: node has 900 MB"},
		{"cores", Requirements{MinCores: 5}, "cpu_cores"},
		{"module size", Requirements{MaxModuleBytes: 8<<20 + 1}, "limits.max_module_bytes"},
		{"load", Requirements{MaxLoad: 2}, "load: node has 3"},
		{"first unmet wins", Requirements{Runtime: "x", MinCores: 99}, "runtime:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := Match(&r, tc.req)
			if tc.why == "" {
				assert.True(t, ok, why)
				assert.Empty(t, why)
				return
			}
			assert.False(t, ok)
			assert.Contains(t, why, tc.why)
		})
	}
	ok, why := Match(nil, Requirements{})
	assert.False(t, ok)
	assert.NotEmpty(t, why)
}

// CAP-6: the per-job maxima are clamped (EXEC-7), not refused, so they do
// not filter; Rank puts the nodes that run a job unclamped first.
func TestCAP6_ClampedNodesMatchAndRankLast(t *testing.T) {
	small := baseRecord(mustID(t, 1)) // per-job 1024 MB, 300 s; 4096 MB in all
	big := baseRecord(mustID(t, 2))
	big.Limits.MaxMemoryMB, big.Limits.MaxTimeoutSeconds = 4096, 3600
	big.Load = Load{RunningJobs: 7} // busier: would rank last on load alone
	for _, req := range []Requirements{{MinMemoryMB: 2048}, {TimeoutSeconds: 600}} {
		ok, why := Match(&small, req)
		assert.True(t, ok, why)
		assert.False(t, Unclamped(&small, req))
		assert.True(t, Unclamped(&big, req))
		ranked := Rank([]*Record{&small, &big}, req)
		require.Len(t, ranked, 2)
		assert.Equal(t, big.PeerID, ranked[0].PeerID, "%+v", req)
	}
	ok, _ := Match(&small, Requirements{MinMemoryMB: 4097})
	assert.False(t, ok, "more memory than the node offers in all is refused")
}

func mustID(t *testing.T, n byte) peer.ID {
	_, id := testKey(t, n)
	return id
}

func TestRank(t *testing.T) {
	mk := func(n byte, arch string, running, queued, maxJobs, mem int) *Record {
		r := baseRecord(mustID(t, n))
		r.Arch, r.Load, r.Limits.MaxConcurrentJobs, r.MemoryMB = arch, Load{running, queued}, maxJobs, mem
		return &r
	}
	idle := mk(1, "amd64", 0, 0, 4, 2048)
	half := mk(2, "amd64", 2, 0, 4, 2048)    // 0.5
	halfBig := mk(3, "amd64", 3, 1, 8, 8192) // 0.5, more memory
	busy := mk(4, "amd64", 4, 4, 4, 2048)    // 2.0
	armIdle := mk(5, "arm64", 0, 0, 4, 2048)
	armBusy := mk(6, "arm64", 4, 0, 4, 2048)
	tooSmall := mk(7, "amd64", 0, 0, 4, 512)
	// Same memory and ratio as idle: ordered by peer ID.
	idleTwin := mk(8, "amd64", 0, 0, 2, 2048)

	all := []*Record{busy, nil, tooSmall, armBusy, half, idleTwin, halfBig, armIdle, idle}
	name := func(rs []*Record) []string {
		names := map[*Record]string{idle: "idle", half: "half", halfBig: "halfBig", busy: "busy",
			armIdle: "armIdle", armBusy: "armBusy", idleTwin: "idleTwin", tooSmall: "tooSmall"}
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = names[r]
		}
		return out
	}
	first, second := "idle", "idleTwin"
	if idleTwin.PeerID < idle.PeerID {
		first, second = second, first
	}

	t.Run("no arch preference", func(t *testing.T) {
		got := Rank(all, Requirements{MinMemoryMB: 1024})
		idles := []string{first, second, "armIdle"}
		// The three idle 2048 MB nodes tie on ratio and memory: peer ID order.
		require.Len(t, got, 7)
		assert.ElementsMatch(t, idles, name(got[:3]))
		for i := 1; i < 3; i++ {
			assert.Less(t, got[i-1].PeerID, got[i].PeerID)
		}
		assert.Equal(t, []string{"halfBig", "half", "armBusy", "busy"}, name(got[3:]))
	})
	t.Run("arch preferred", func(t *testing.T) {
		got := Rank(all, Requirements{MinMemoryMB: 1024, Arch: "aarch64"})
		assert.Equal(t, []string{"armIdle", "armBusy"}, name(got[:2]))
		assert.Len(t, got, 7, "preference does not filter")
	})
	t.Run("arch required", func(t *testing.T) {
		got := Rank(all, Requirements{Arch: "arm64", RequireArch: true})
		assert.Equal(t, []string{"armIdle", "armBusy"}, name(got))
	})
	t.Run("deterministic regardless of input order", func(t *testing.T) {
		req := Requirements{MinMemoryMB: 1024}
		want := name(Rank(all, req))
		rev := make([]*Record, len(all))
		for i, r := range all {
			rev[len(all)-1-i] = r
		}
		assert.Equal(t, want, name(Rank(rev, req)))
	})
	t.Run("salt breaks ties, never the order of load", func(t *testing.T) {
		req := Requirements{MinMemoryMB: 1024, Salt: 42}
		again := name(Rank(all, req))
		assert.Equal(t, again, name(Rank(all, req)), "the same salt gives the same order")
		firsts := map[string]bool{}
		for salt := range uint64(64) {
			req.Salt = salt + 1
			got := name(Rank(all, req))
			require.Len(t, got, 7)
			assert.ElementsMatch(t, []string{"idle", "idleTwin", "armIdle"}, got[:3], "idle nodes first, whatever the salt")
			assert.ElementsMatch(t, []string{"half", "halfBig"}, got[3:5], "then the half-loaded")
			assert.Equal(t, []string{"armBusy", "busy"}, got[5:])
			firsts[got[0]] = true
		}
		assert.Len(t, firsts, 3, "every idle node comes first for some salt")
	})
	t.Run("tied is what only the tie-break orders", func(t *testing.T) {
		long := mk(9, "amd64", 0, 0, 4, 2048)
		long.Limits.MaxTimeoutSeconds = 3600
		for _, c := range []struct {
			a, b *Record
			req  Requirements
			want bool
		}{
			{idle, idleTwin, Requirements{}, true},                 // ratio 0 and 0, memory differs
			{half, halfBig, Requirements{}, true},                  // 2/4 and 4/8
			{idle, half, Requirements{}, false},                    // load ratio
			{idle, armIdle, Requirements{}, true},                  // no arch preference
			{idle, armIdle, Requirements{Arch: "aarch64"}, false},  // arch preferred
			{idle, long, Requirements{}, true},                     // both unclamped
			{idle, long, Requirements{TimeoutSeconds: 600}, false}, // idle clamped: 300 s limit
		} {
			assert.Equal(t, c.want, Tied(c.a, c.b, c.req), "%s vs %s, %+v", name([]*Record{c.a})[0], name([]*Record{c.b})[0], c.req)
			assert.Equal(t, c.want, Tied(c.b, c.a, c.req), "symmetric")
		}
	})
	t.Run("duplicates keep the highest seq", func(t *testing.T) {
		newer := *busy
		newer.Seq++
		newer.Load = Load{}
		got := Rank([]*Record{busy, &newer}, Requirements{})
		require.Len(t, got, 1)
		assert.Same(t, &newer, got[0])
	})
	t.Run("nothing matches", func(t *testing.T) {
		assert.Empty(t, Rank(all, Requirements{MinCores: 1000}))
		assert.Empty(t, Rank(nil, Requirements{}))
	})
}

func TestRankLargeValuesNoOverflow(t *testing.T) {
	a := baseRecord(mustID(t, 1))
	b := baseRecord(mustID(t, 2))
	a.Load, a.Limits.MaxConcurrentJobs = Load{maxJobs, maxJobs}, maxJobs // ratio 2
	b.Load, b.Limits.MaxConcurrentJobs = Load{maxJobs, 0}, 1             // ratio 2^20
	got := Rank([]*Record{&b, &a}, Requirements{})
	require.Len(t, got, 2)
	assert.Equal(t, a.PeerID, got[0].PeerID, fmt.Sprint(got[0].Load))
}

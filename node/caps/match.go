package caps

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Requirements is what a job needs from a node. Zero values mean "no
// requirement", except ABI, which Find defaults to DefaultABI.
type Requirements struct {
	Runtime        string // runtime name, e.g. "wazero"; empty: any
	ABI            string // e.g. "wasi_snapshot_preview1"; empty: any
	Arch           string // preferred arch (aliases accepted); a filter only with RequireArch
	RequireArch    bool
	MinMemoryMB    int
	MinCores       int
	MaxModuleBytes int64 // size of the job's module
	TimeoutSeconds int
	MaxLoad        int // when > 0: running+queued must be <= MaxLoad
}

// Match reports whether the record satisfies req; when it does not, why
// names the first unmet requirement and the record field that failed it.
// Match does not check signature or expiry: call Verify first.
func Match(r *Record, req Requirements) (ok bool, why string) {
	if r == nil {
		return false, "no capability record"
	}
	if req.Runtime != "" && r.Runtime != req.Runtime {
		return false, fmt.Sprintf("runtime: node runs %q, job needs %q", r.Runtime, req.Runtime)
	}
	if req.ABI != "" && !slices.Contains(r.ABIs, req.ABI) {
		return false, fmt.Sprintf("abis: node supports %v, job needs %q", r.ABIs, req.ABI)
	}
	if req.RequireArch && req.Arch != "" && normArch(r.Arch) != normArch(req.Arch) {
		return false, fmt.Sprintf("arch: node is %s, job requires %s", normArch(r.Arch), normArch(req.Arch))
	}
	if req.MinMemoryMB > r.Limits.MaxMemoryMB {
		return false, fmt.Sprintf("limits.max_memory_mb: node allows %d MB per job, job needs %d MB", r.Limits.MaxMemoryMB, req.MinMemoryMB)
	}
	if req.MinMemoryMB > r.MemoryMB {
		return false, fmt.Sprintf("memory_mb: node has %d MB for jobs, job needs %d MB", r.MemoryMB, req.MinMemoryMB)
	}
	if req.MinCores > r.CPUCores {
		return false, fmt.Sprintf("cpu_cores: node has %d, job needs %d", r.CPUCores, req.MinCores)
	}
	if req.MaxModuleBytes > r.Limits.MaxModuleBytes {
		return false, fmt.Sprintf("limits.max_module_bytes: node accepts %d bytes, module is %d", r.Limits.MaxModuleBytes, req.MaxModuleBytes)
	}
	if req.TimeoutSeconds > r.Limits.MaxTimeoutSeconds {
		return false, fmt.Sprintf("limits.max_timeout_seconds: node allows %ds, job needs %ds", r.Limits.MaxTimeoutSeconds, req.TimeoutSeconds)
	}
	if req.MaxLoad > 0 {
		if load := r.Load.RunningJobs + r.Load.QueuedJobs; load > req.MaxLoad {
			return false, fmt.Sprintf("load: node has %d running+queued jobs, job accepts at most %d", load, req.MaxLoad)
		}
	}
	return true, ""
}

// Rank returns the records that match req, best first: an exact arch match
// first when req.Arch is set (WASM is portable, so arch is a preference),
// then the lowest load ratio (running+queued)/max_concurrent_jobs, then the
// most memory, then peer ID (so the order is deterministic). Nil records are
// dropped and, when several records share a peer ID, only the one with the
// highest seq is kept.
func Rank(records []*Record, req Requirements) []*Record {
	byPeer := make(map[string]*Record, len(records))
	for _, r := range records {
		if ok, _ := Match(r, req); !ok {
			continue
		}
		if prev, dup := byPeer[r.PeerID]; !dup || r.Seq > prev.Seq {
			byPeer[r.PeerID] = r
		}
	}
	out := make([]*Record, 0, len(byPeer))
	for _, r := range byPeer {
		out = append(out, r)
	}
	want := ""
	if req.Arch != "" {
		want = normArch(req.Arch)
	}
	slices.SortFunc(out, func(a, b *Record) int {
		if want != "" {
			am, bm := normArch(a.Arch) == want, normArch(b.Arch) == want
			if am != bm {
				if am {
					return -1
				}
				return 1
			}
		}
		// Compare (la/ma) with (lb/mb) by cross-multiplying; the range
		// limits in validate keep these products far inside int64.
		la, lb := int64(a.Load.RunningJobs+a.Load.QueuedJobs), int64(b.Load.RunningJobs+b.Load.QueuedJobs)
		ma, mb := int64(max(a.Limits.MaxConcurrentJobs, 1)), int64(max(b.Limits.MaxConcurrentJobs, 1))
		if c := cmp.Compare(la*mb, lb*ma); c != 0 {
			return c
		}
		if c := cmp.Compare(b.MemoryMB, a.MemoryMB); c != 0 {
			return c
		}
		return strings.Compare(a.PeerID, b.PeerID)
	})
	return out
}

// Capability provider keys. A node provides one runtime key per ABI it
// supports, and one arch key:
//
//	/phase/cap/runtime/<abi>   e.g. /phase/cap/runtime/wasi_snapshot_preview1
//	/phase/cap/arch/<goarch>   e.g. /phase/cap/arch/arm64 (Go name, aliases normalised)
//
// The runtime key names the ABI, not the engine (wazero): any engine that
// implements the ABI can run the job. Clients look up providers of these
// keys through ProviderCID, then fetch each provider's record.
const (
	runtimeKeyPrefix = "/phase/cap/runtime/"
	archKeyPrefix    = "/phase/cap/arch/"
)

// RuntimeKey is the provider key for an ABI.
func RuntimeKey(abi string) string { return runtimeKeyPrefix + abi }

// ArchKey is the provider key for an architecture (aliases normalised).
func ArchKey(arch string) string { return archKeyPrefix + normArch(arch) }

// ProviderKeys returns the capability keys a node with record r provides:
// RuntimeKey for each ABI, then ArchKey for its arch.
func ProviderKeys(r *Record) []string {
	keys := make([]string, 0, len(r.ABIs)+1)
	for _, abi := range r.ABIs {
		k := RuntimeKey(abi)
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if r.Arch != "" {
		keys = append(keys, ArchKey(r.Arch))
	}
	return keys
}

// ProviderCID is the CID under which a capability key is provided in the
// DHT: CIDv1, raw codec, sha2-256 multihash of the key string.
func ProviderCID(key string) cid.Cid {
	sum := sha256.Sum256([]byte(key))
	h, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		// mh.Encode only fails for an unknown code or wrong digest length,
		// both fixed here.
		panic(fmt.Sprintf("caps: encode sha2-256 multihash: %v", err))
	}
	return cid.NewCidV1(cid.Raw, h)
}

package caps

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/phase-protocol/plasm/node/phase"
)

// ErrNoMatch is returned (wrapped, with the reasons) when a search finds no
// node that satisfies the requirements.
var ErrNoMatch = errors.New("no matching node")

// Found is one candidate node a search returned: where to reach it and its
// verified record.
type Found struct {
	Peer   peer.AddrInfo
	Record *Record
	Live   bool // record came from /phase/caps/1.0.0, not from the DHT
}

// Requirements is what a job needs from a node. Zero values mean "no
// requirement", except ABI, which Find defaults to phase.ABIWASIP1.
type Requirements struct {
	Runtime        string // runtime name, e.g. "wazero"; empty: any
	ABI            string // e.g. "wasi_snapshot_preview1"; empty: any
	Arch           string // preferred arch (aliases accepted); a filter only with RequireArch
	RequireArch    bool
	MinMemoryMB    int
	MinCores       int
	MaxModuleBytes int64 // size of the job's module
	StdinBytes     int64 // size of the job's stdin
	TimeoutSeconds int
	MaxLoad        int // when > 0: running+queued must be <= MaxLoad
	// Salt, when not 0, breaks Rank's ties between equally good nodes by a
	// hash of (Salt, peer ID) instead of by peer ID. A caller that passes a
	// fresh random salt for each job spreads its jobs over every equally
	// good node; with 0 every caller prefers the same nodes.
	Salt uint64
}

// Match reports whether a node with this record would take the job
// (CAP-6): it filters on what the node would refuse — cores and total
// memory (insufficient_resources), module and stdin sizes (too_large), the
// ABI, and the arch only when required — not on what it would clamp (the
// per-job memory and time maxima, EXEC-7), which Rank uses to prefer
// nodes instead. When it does not match, why names the first unmet
// requirement and the record field that failed it. Match does not check
// signature or expiry: call Verify first.
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
	if req.RequireArch && req.Arch != "" && !phase.SameArch(r.Arch, req.Arch) {
		return false, fmt.Sprintf("arch: node is %s, job requires %s", normArch(r.Arch), normArch(req.Arch))
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
	if req.StdinBytes > r.Limits.MaxStdinBytes {
		return false, fmt.Sprintf("limits.max_stdin_bytes: node accepts %d bytes, stdin is %d", r.Limits.MaxStdinBytes, req.StdinBytes)
	}
	if req.MaxLoad > 0 {
		if load := r.Load.RunningJobs + r.Load.QueuedJobs; load > req.MaxLoad {
			return false, fmt.Sprintf("load: node has %d running+queued jobs, job accepts at most %d", load, req.MaxLoad)
		}
	}
	return true, ""
}

// Unclamped reports whether the node would run the job with the memory and
// time it asks for, not less.
func Unclamped(r *Record, req Requirements) bool {
	return req.MinMemoryMB <= r.Limits.MaxMemoryMB && req.TimeoutSeconds <= r.Limits.MaxTimeoutSeconds
}

// Rank returns the records that match req, best first: nodes that run the
// job unclamped first (CAP-6), then an exact arch match when req.Arch is
// set (WASM is portable, so arch is a preference), then the lowest load
// ratio (running+queued)/max_concurrent_jobs. Ties are broken by
// req.Salt when it is set (a hash of salt and peer ID: a random order
// that the salt fixes), otherwise by the most memory, then peer ID, so
// the order is deterministic. Nil records are dropped and, when several
// records share a peer ID, only the one with the highest seq is kept.
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
	want := wantArch(req)
	var tie map[*Record]uint64
	if req.Salt != 0 {
		tie = make(map[*Record]uint64, len(out))
		for _, r := range out {
			tie[r] = saltedHash(req.Salt, r.PeerID)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int {
		if c := compareFit(a, b, req, want); c != 0 {
			return c
		}
		if tie != nil {
			if c := cmp.Compare(tie[a], tie[b]); c != 0 {
				return c
			}
			return strings.Compare(a.PeerID, b.PeerID)
		}
		if c := cmp.Compare(b.MemoryMB, a.MemoryMB); c != 0 {
			return c
		}
		return strings.Compare(a.PeerID, b.PeerID)
	})
	return out
}

// Tied reports whether Rank orders a and b only by its tie-break (salt,
// memory, peer ID): both run the job clamped or both unclamped, both match
// the preferred arch or neither, and their load ratios are equal. Among
// tied nodes a client may prefer by what it knows itself, such as which
// of them it sent a job to a moment ago.
func Tied(a, b *Record, req Requirements) bool {
	return compareFit(a, b, req, wantArch(req)) == 0
}

// wantArch is the normalised arch req prefers, or "" for none.
func wantArch(req Requirements) string {
	if req.Arch == "" {
		return ""
	}
	return normArch(req.Arch)
}

// compareFit orders a and b by how well they fit req, before any
// tie-break: unclamped first, then the preferred arch, then the lower load
// ratio (running+queued)/max_concurrent_jobs.
func compareFit(a, b *Record, req Requirements, want string) int {
	if ua, ub := Unclamped(a, req), Unclamped(b, req); ua != ub {
		if ua {
			return -1
		}
		return 1
	}
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
	return cmp.Compare(la*mb, lb*ma)
}

// saltedHash maps (salt, peer ID) to a well-mixed 64-bit value: FNV-1a over
// the ID, seeded with the salt, then the splitmix64 finaliser.
func saltedHash(salt uint64, id string) uint64 {
	h := 14695981039346656037 ^ salt
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
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

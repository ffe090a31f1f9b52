package conformance

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// recordMembers and limitsMembers are SPEC §4.2's record.
var (
	recordMembers = []string{"version", "peer_id", "arch", "os", "cpu_cores", "memory_mb", "runtime", "runtime_version",
		"abis", "limits", "load", "seq", "issued_at", "expires_at", "signature"}
	limitsMembers = []string{"max_module_bytes", "max_stdin_bytes", "max_memory_mb", "max_timeout_seconds",
		"max_concurrent_jobs", "max_jobs_per_peer"}
)

// Record is a verified capability record.
type Record map[string]any

// Limit reads limits.<name>.
func (r Record) Limit(name string) int64 {
	l, _ := r["limits"].(map[string]any)
	return num(l[name])
}

// Int reads a top-level integer.
func (r Record) Int(name string) int64 { return num(r[name]) }

// VerifyRecord checks a record by SPEC §4.2 (CAP-1, CAP-2): exactly the
// members, the size, signed by peerID's key, not expired.
func VerifyRecord(raw []byte, peerID string, now time.Time) (Record, error) {
	if len(raw) > 4096 {
		return nil, fmt.Errorf("%d bytes, over 4096", len(raw))
	}
	m, err := ref.Object(raw)
	if err != nil {
		return nil, err
	}
	if len(m) != len(recordMembers) {
		return nil, fmt.Errorf("%d members, want %d", len(m), len(recordMembers))
	}
	for _, k := range recordMembers {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s missing", k)
		}
	}
	lim, ok := m["limits"].(map[string]any)
	if !ok || len(lim) != len(limitsMembers) {
		return nil, fmt.Errorf("limits is not an object of %d members", len(limitsMembers))
	}
	for _, k := range limitsMembers {
		if _, ok := lim[k].(json.Number); !ok {
			return nil, fmt.Errorf("limits.%s missing or not a number", k)
		}
	}
	if m["peer_id"] != peerID {
		return nil, fmt.Errorf("peer_id %v, want %s", m["peer_id"], peerID)
	}
	key, err := ref.PeerKey(peerID)
	if err != nil {
		return nil, err
	}
	sig, err := hex.DecodeString(fmt.Sprint(m["signature"]))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature is not 128 hex")
	}
	body := map[string]any{}
	for k, v := range m {
		if k != "signature" {
			body[k] = v
		}
	}
	c, err := ref.Canonical(body)
	if err != nil {
		return nil, fmt.Errorf("not canonicalisable: %w", err)
	}
	if !ed25519.Verify(key, append([]byte("phase-caps:v1:"), c...), sig) {
		return nil, fmt.Errorf("signature does not verify for %s", peerID)
	}
	r := Record(m)
	issued, expires := r.Int("issued_at"), r.Int("expires_at")
	if issued > now.Add(30*time.Second).Unix() || expires <= now.Unix() || expires-issued > 24*3600 || expires <= issued {
		return nil, fmt.Errorf("issued_at %d / expires_at %d not valid now", issued, expires)
	}
	abis, _ := m["abis"].([]any)
	if !slices.Contains(abis, any("wasi_snapshot_preview1")) {
		return nil, fmt.Errorf("abis %v lacks wasi_snapshot_preview1", abis)
	}
	return r, nil
}

// Record asks the target for its live record (CAPS-2) and verifies it.
func (t *T) Record() Record {
	c := t.Open(nil, ProtocolCaps)
	if err := c.Send(`{"type":"caps_request"}`); err != nil {
		t.Fatalf("caps_request: %v", err)
	}
	c.CloseWrite()
	m := c.Expect(10*time.Second, "caps")
	raw, _ := json.Marshal(m["record"])
	r, err := VerifyRecord(raw, t.env.Target.ID.String(), time.Now())
	if err != nil {
		t.Fatalf("the target's record does not verify: %v", err)
	}
	return r
}

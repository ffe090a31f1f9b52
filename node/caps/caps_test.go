package caps

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignParseVerifyRoundTrip(t *testing.T) {
	r, _, id := signedRecord(t, 1, nil)
	require.NoError(t, Verify(r, testNow))

	got, err := Parse(mustMarshal(t, r))
	require.NoError(t, err)
	assert.Equal(t, r, got)
	require.NoError(t, Verify(got, testNow))
	assert.Equal(t, id.String(), got.PeerID)
	assert.Len(t, got.Signature, 128)
}

// The signed bytes are pinned so that other implementations (PHP, JS) can
// check their canonical form against ours; the signature is checked with the
// standard library, independent of libp2p.
func TestCAP1_SigningBytesKnownAnswer(t *testing.T) {
	r, priv, id := signedRecord(t, 0, nil)
	want := `phase-caps:v1:{"abis":["wasi_snapshot_preview1"],"arch":"amd64","cpu_cores":4,` +
		`"expires_at":1800003600,"issued_at":1800000000,"limits":{"max_concurrent_jobs":8,"max_jobs_per_peer":4,` +
		`"max_memory_mb":1024,"max_module_bytes":8388608,"max_stdin_bytes":1048576,"max_timeout_seconds":300},` +
		`"load":{"queued_jobs":2,"running_jobs":1},"memory_mb":4096,"os":"linux","peer_id":"` + id.String() +
		`","runtime":"wazero","runtime_version":"v1.12.0","seq":1800000000000000,"version":1}`
	msg, err := r.SigningBytes()
	require.NoError(t, err)
	assert.Equal(t, want, string(msg))

	raw, err := priv.GetPublic().Raw()
	require.NoError(t, err)
	assert.Equal(t, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", hex.EncodeToString(raw),
		"seed 00..1f gives the design's known public key")
	sig, err := hex.DecodeString(r.Signature)
	require.NoError(t, err)
	assert.True(t, ed25519.Verify(ed25519.PublicKey(raw), []byte(want), sig))
}

// tamperCases changes every signed field to another valid value. The keys
// are JSON paths; TestTamperCoversEveryField keeps the list complete.
var tamperCases = map[string]func(r *Record, other peer.ID){
	"version":                    func(r *Record, _ peer.ID) { r.Version = 2 },
	"peer_id":                    func(r *Record, o peer.ID) { r.PeerID = o.String() },
	"arch":                       func(r *Record, _ peer.ID) { r.Arch = "arm64" },
	"os":                         func(r *Record, _ peer.ID) { r.OS = "darwin" },
	"cpu_cores":                  func(r *Record, _ peer.ID) { r.CPUCores++ },
	"memory_mb":                  func(r *Record, _ peer.ID) { r.MemoryMB *= 2 },
	"runtime":                    func(r *Record, _ peer.ID) { r.Runtime = "wasmtime" },
	"runtime_version":            func(r *Record, _ peer.ID) { r.RuntimeVersion = "v1.12.1" },
	"abis":                       func(r *Record, _ peer.ID) { r.ABIs = append(r.ABIs, "wasi_snapshot_preview2") },
	"limits.max_module_bytes":    func(r *Record, _ peer.ID) { r.Limits.MaxModuleBytes++ },
	"limits.max_memory_mb":       func(r *Record, _ peer.ID) { r.Limits.MaxMemoryMB++ },
	"limits.max_timeout_seconds": func(r *Record, _ peer.ID) { r.Limits.MaxTimeoutSeconds++ },
	"limits.max_concurrent_jobs": func(r *Record, _ peer.ID) { r.Limits.MaxConcurrentJobs++ },
	"limits.max_stdin_bytes":     func(r *Record, _ peer.ID) { r.Limits.MaxStdinBytes++ },
	"limits.max_jobs_per_peer":   func(r *Record, _ peer.ID) { r.Limits.MaxJobsPerPeer++ },
	"load.running_jobs":          func(r *Record, _ peer.ID) { r.Load.RunningJobs = 0 },
	"load.queued_jobs":           func(r *Record, _ peer.ID) { r.Load.QueuedJobs = 0 },
	"seq":                        func(r *Record, _ peer.ID) { r.Seq++ },
	"issued_at":                  func(r *Record, _ peer.ID) { r.IssuedAt-- },
	"expires_at":                 func(r *Record, _ peer.ID) { r.ExpiresAt++ },
	"signature": func(r *Record, _ peer.ID) {
		b := []byte(r.Signature)
		b[10] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", b[10])+1)%16]
		r.Signature = string(b)
	},
}

func TestTamperCoversEveryField(t *testing.T) {
	r, _, _ := signedRecord(t, 1, nil)
	var m map[string]any
	require.NoError(t, json.Unmarshal(mustMarshal(t, r), &m))
	var paths []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			for sk := range sub {
				paths = append(paths, k+"."+sk)
			}
			continue
		}
		paths = append(paths, k)
	}
	for _, p := range paths {
		assert.Contains(t, tamperCases, p, "no tamper case for field %s", p)
	}
	assert.Len(t, tamperCases, len(paths))
}

func TestCAP1_TamperEveryFieldFailsVerify(t *testing.T) {
	_, other := testKey(t, 99)
	for field, tamper := range tamperCases {
		t.Run(field, func(t *testing.T) {
			r, _, _ := signedRecord(t, 1, nil)
			tamper(r, other)
			err := Verify(r, testNow)
			require.Error(t, err)
			if field == "version" {
				assert.ErrorIs(t, err, ErrMalformed)
				return
			}
			assert.ErrorIs(t, err, ErrBadSignature)

			// The same through the wire form.
			rec, err := Parse(mustMarshal(t, r))
			require.NoError(t, err)
			assert.ErrorIs(t, Verify(rec, testNow), ErrBadSignature)
		})
	}
}

func TestCAP2_VerifyTimeWindow(t *testing.T) {
	r, _, _ := signedRecord(t, 1, nil)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at issue", time.Unix(testIssued, 0), nil},
		{"issued 29s ahead (skew)", time.Unix(testIssued-29, 0), nil},
		{"issued 31s ahead", time.Unix(testIssued-31, 0), ErrNotYetValid},
		{"last valid second", time.Unix(testExpires-1, 0), nil},
		{"at expiry", time.Unix(testExpires, 0), ErrExpired},
		{"long expired", time.Unix(testExpires+86400, 0), ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(r, tc.now)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestCAP1_WrongSigner(t *testing.T) {
	privB, idB := testKey(t, 2)
	_, idA := testKey(t, 1)

	// Sign refuses to sign for another peer.
	r := baseRecord(idA)
	err := r.Sign(privB)
	require.ErrorIs(t, err, ErrWrongPeer)
	assert.Empty(t, r.Signature)

	// A record signed by B, relabelled as A's, fails.
	forged := baseRecord(idB)
	require.NoError(t, forged.Sign(privB))
	forged.PeerID = idA.String()
	assert.ErrorIs(t, Verify(&forged, testNow), ErrBadSignature)

	// A signature made over A's record by B's key (bypassing Sign) fails.
	rec := baseRecord(idA)
	msg, err := rec.SigningBytes()
	require.NoError(t, err)
	sig, err := privB.Sign(msg)
	require.NoError(t, err)
	rec.Signature = hex.EncodeToString(sig)
	assert.ErrorIs(t, Verify(&rec, testNow), ErrBadSignature)
}

func TestSignFillsPeerIDAndRejectsBadInput(t *testing.T) {
	priv, id := testKey(t, 3)
	r := baseRecord(id)
	r.PeerID = ""
	require.NoError(t, r.Sign(priv))
	assert.Equal(t, id.String(), r.PeerID)

	r = baseRecord(id)
	r.CPUCores = 0
	err := r.Sign(priv)
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "cpu_cores")

	r = baseRecord(id)
	r.Arch = "sparc"
	err = r.Sign(priv)
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "arch")

	assert.Error(t, (&Record{}).Sign(nil))

	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	require.NoError(t, err)
	r = baseRecord(id)
	assert.ErrorIs(t, r.Sign(secp), ErrBadPeerID)
}

func TestVerifyRejectsNonEd25519PeerIDs(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	require.NoError(t, err)
	secpID, err := peer.IDFromPrivateKey(secp)
	require.NoError(t, err)
	sum, err := mh.Sum([]byte("not a key"), mh.SHA2_256, -1)
	require.NoError(t, err)
	hashedID := peer.ID(sum) // like an RSA peer ID: key not embedded

	for name, id := range map[string]peer.ID{"secp256k1": secpID, "sha256-hashed": hashedID} {
		t.Run(name, func(t *testing.T) {
			r := baseRecord(id)
			r.Signature = strings.Repeat("ab", 64)
			err := Verify(&r, testNow)
			assert.ErrorIs(t, err, ErrBadPeerID)
		})
	}
	assert.ErrorIs(t, Verify(nil, testNow), ErrMalformed)
}

func TestCAP2_ParseSizeCap(t *testing.T) {
	r, _, _ := signedRecord(t, 1, nil)
	b := mustMarshal(t, r)
	pad := func(n int) []byte { // whitespace keeps the JSON valid
		return append(slices.Clone(b), bytes.Repeat([]byte(" "), n-len(b))...)
	}
	_, err := Parse(pad(MaxRecordSize))
	require.NoError(t, err)
	_, err = Parse(pad(MaxRecordSize + 1))
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = Parse(bytes.Repeat([]byte("x"), 1<<20))
	assert.ErrorIs(t, err, ErrTooLarge)
}

// jsonEdit marshals the signed fixture to a generic map, applies edit, and
// returns the JSON (map key order is irrelevant to Parse).
func jsonEdit(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	r, _, _ := signedRecord(t, 1, nil)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(mustMarshal(t, r)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestCAP2_ParseRejectsMalformed(t *testing.T) {
	r, _, _ := signedRecord(t, 1, nil)
	good := string(mustMarshal(t, r))
	set := func(k string, v any) []byte {
		return jsonEdit(t, func(m map[string]any) { m[k] = v })
	}
	setSub := func(k, sk string, v any) []byte {
		return jsonEdit(t, func(m map[string]any) { m[k].(map[string]any)[sk] = v })
	}
	del := func(k string) []byte { return jsonEdit(t, func(m map[string]any) { delete(m, k) }) }

	tests := []struct {
		name  string
		in    []byte
		field string // must appear in the error
	}{
		{"empty", nil, "record"},
		{"not an object", []byte(`[1,2]`), "record"},
		{"null", []byte(`null`), "record"},
		{"truncated", []byte(good[:len(good)-5]), ""},
		{"trailing data", []byte(good + `{}`), "trailing"},
		{"unknown field", set("extra", 1), "extra"},
		{"duplicate field", []byte(`{"version":1,` + good[1:]), "version"},
		{"key case", []byte(strings.Replace(good, `"os"`, `"OS"`, 1)), "OS"},
		{"unknown nested", setSub("limits", "gpu", 1), "limits.gpu"},
		{"duplicate nested", []byte(strings.Replace(good, `"limits":{`, `"limits":{"max_memory_mb":1,`, 1)), `duplicate member name "max_memory_mb"`},
		{"missing version", del("version"), "version"},
		{"missing signature", del("signature"), "signature"},
		{"missing nested", jsonEdit(t, func(m map[string]any) { delete(m["load"].(map[string]any), "queued_jobs") }), "load.queued_jobs"},
		{"null limits", set("limits", nil), "limits"},
		{"wrong type", set("cpu_cores", "4"), "cpu_cores"},
		{"fraction", set("memory_mb", 1.5), "memory_mb"},
		{"version 2", set("version", 2), "version"},
		{"empty peer_id", set("peer_id", ""), "peer_id"},
		{"garbage peer_id", set("peer_id", "hello"), "peer_id"},
		{"non-canonical peer_id", set("peer_id", peer.ToCid(mustDecode(t, r.PeerID)).String()), "peer_id"},
		{"unknown arch", set("arch", "sparc"), "arch"},
		{"empty arch", set("arch", ""), "arch"},
		{"uppercase os", set("os", "Linux"), "os"},
		{"empty os", set("os", ""), "os"},
		{"zero cores", set("cpu_cores", 0), "cpu_cores"},
		{"negative memory", set("memory_mb", -1), "memory_mb"},
		{"runtime with space", set("runtime", "waz ero"), "runtime"},
		{"long runtime_version", set("runtime_version", strings.Repeat("v", 65)), "runtime_version"},
		{"empty abis", set("abis", []string{}), "abis"},
		{"null abis", set("abis", nil), "abis"},
		{"duplicate abi", set("abis", []string{"a", "a"}), "abis[1]"},
		{"too many abis", set("abis", manyABIs(17)), "abis"},
		{"zero module bytes", setSub("limits", "max_module_bytes", 0), "limits.max_module_bytes"},
		{"zero max memory", setSub("limits", "max_memory_mb", 0), "limits.max_memory_mb"},
		{"huge timeout", setSub("limits", "max_timeout_seconds", 1<<40), "limits.max_timeout_seconds"},
		{"zero concurrency", setSub("limits", "max_concurrent_jobs", 0), "limits.max_concurrent_jobs"},
		{"negative running", setSub("load", "running_jobs", -1), "load.running_jobs"},
		{"negative queued", setSub("load", "queued_jobs", -3), "load.queued_jobs"},
		{"seq 0", set("seq", 0), "seq"},
		{"seq over 2^53", set("seq", uint64(1)<<53), "seq"},
		{"seq negative", set("seq", -1), "seq"},
		{"issued 0", set("issued_at", 0), "issued_at"},
		{"expires before issue", set("expires_at", testIssued), "expires_at"},
		{"lifetime over 24h", set("expires_at", testIssued+86401), "expires_at"},
		{"short signature", set("signature", "abcd"), "signature"},
		{"uppercase signature", set("signature", strings.ToUpper(r.Signature)), "signature"},
		{"non-hex signature", set("signature", strings.Repeat("zz", 64)), "signature"},
		{"empty signature", set("signature", ""), "signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func manyABIs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("abi%d", i)
	}
	return out
}

func mustDecode(t *testing.T, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	require.NoError(t, err)
	return id
}

func TestFieldErrorNamesField(t *testing.T) {
	_, err := Parse(jsonEdit(t, func(m map[string]any) { m["memory_mb"] = 0 }))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "memory_mb", fe.Field)
	assert.Equal(t, `capability record: field "memory_mb": 0 out of range [1, 16777216]`, err.Error())
}

func TestArchAliases(t *testing.T) {
	// Sign normalises what the node operator wrote.
	r, _, _ := signedRecord(t, 1, func(r *Record) { r.Arch = "x86_64" })
	assert.Equal(t, "amd64", r.Arch)
	require.NoError(t, Verify(r, testNow))

	// A record another implementation signed with an alias still parses and
	// verifies (as signed), and matches and is provided under the Go name.
	priv, id := testKey(t, 4)
	alias := baseRecord(id)
	alias.Arch = "aarch64"
	msg, err := alias.SigningBytes()
	require.NoError(t, err)
	sig, err := priv.Sign(msg)
	require.NoError(t, err)
	alias.Signature = hex.EncodeToString(sig)
	got, err := Parse(mustMarshal(t, &alias))
	require.NoError(t, err)
	require.NoError(t, Verify(got, testNow))
	assert.Equal(t, "aarch64", got.Arch)

	ok, why := Match(got, Requirements{Arch: "arm64", RequireArch: true})
	assert.True(t, ok, why)
	ok, _ = Match(got, Requirements{Arch: "amd64", RequireArch: true})
	assert.False(t, ok)
	assert.Contains(t, ProviderKeys(got), "/phase/cap/arch/arm64")
}

func TestCAP3_ProviderKeysAndCID(t *testing.T) {
	r, _, _ := signedRecord(t, 1, func(r *Record) { r.ABIs = []string{"wasi_snapshot_preview1", "phase_host_v1"} })
	keys := ProviderKeys(r)
	assert.Equal(t, []string{
		"/phase/cap/runtime/wasi_snapshot_preview1",
		"/phase/cap/runtime/phase_host_v1",
		"/phase/cap/arch/amd64",
	}, keys)

	seen := map[string]bool{}
	for _, k := range keys {
		c := ProviderCID(k)
		assert.Equal(t, uint64(1), c.Version())
		assert.Equal(t, uint64(0x55), c.Type(), "raw codec")
		dec, err := mh.Decode(c.Hash())
		require.NoError(t, err)
		assert.Equal(t, uint64(mh.SHA2_256), dec.Code)
		sum := sha256.Sum256([]byte(k))
		assert.Equal(t, sum[:], dec.Digest)
		seen[c.String()] = true
	}
	assert.Len(t, seen, len(keys), "distinct keys give distinct CIDs")
	assert.Equal(t, ProviderCID(keys[0]), ProviderCID(RuntimeKey(phase.ABIWASIP1)))
}

func TestRejectReason(t *testing.T) {
	cases := map[error]string{
		ErrTooLarge:                          ReasonTooLarge,
		&FieldError{Field: "x"}:              ReasonMalformed,
		ErrBadPeerID:                         ReasonBadPeerID,
		fmt.Errorf("w: %w", ErrBadSignature): ReasonBadSignature,
		ErrExpired:                           ReasonExpired,
		ErrNotYetValid:                       ReasonNotYetValid,
		ErrWrongPeer:                         ReasonWrongPeer,
		ErrBadKey:                            ReasonBadKey,
		errors.New("other"):                  ReasonOther,
	}
	var got []string
	for err, want := range cases {
		assert.Equal(t, want, RejectReason(err), "%v", err)
		got = append(got, want)
	}
	sort.Strings(got)
	assert.Len(t, slices.Compact(got), len(cases))
}
